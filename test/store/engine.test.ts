// Engine guarantees that depend on the store, run over both stores. On PostgreSQL, "A" and "B" are two instances:
// two Engines, each with its own Store, pool and connections, on one database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { Engine, type Reviewer, type Submission } from '../../src/engine/engine.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { VelocityResolver } from '../../src/engine/resolvers/index.ts';
import type { AirlockError } from '../../src/errors.ts';
import { newId } from '../../src/ids.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import type { Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from './databases.ts';

const POLICY = `
default: review
rules:
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
  - "Review if :kind: = 'refund.create' and :agent_refunds_usd_1h: + :amount_in_usd: > 2000"
  - rule: "Review if :kind: = 'transfer.create'"
    approvals: 2
`;

/** A refund as the proxy hands it over once the charge look-up has supplied the currency. */
function refund(agent: { id: string; name: string }, cents: number, key: string | null = null): Submission {
  const params = { charge: 'ch_test', amount: String(cents) };
  const classification = { ...classify({ method: 'POST', path: '/v1/refunds', params }), currency: 'usd' };
  return {
    agent,
    method: 'POST',
    path: '/v1/refunds',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: key,
    classification,
  };
}

function transfer(agent: { id: string; name: string }, cents: number): Submission {
  const params = { amount: String(cents), currency: 'usd', destination: 'acct_1' };
  return {
    agent,
    method: 'POST',
    path: '/v1/transfers',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: null,
    classification: classify({ method: 'POST', path: '/v1/transfers', params }),
  };
}

async function settle<T>(promises: Promise<T>[]): Promise<{ ok: T[]; errors: unknown[] }> {
  const results = await Promise.allSettled(promises);
  return {
    ok: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    errors: results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : [])),
  };
}

async function ledgerTypes(store: Store, id: string): Promise<string[]> {
  return (await store.ledgerForAction(id)).map((e) => e.type);
}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`engine on ${dialect}`, () => {
    let t: TestStore;
    let a: Engine;
    let b: Engine;
    let agentSeq = 0;
    const reviewers: Reviewer[] = [];

    beforeAll(async () => {
      t = await openTestStore(dialect);
      const policy = parsePolicy(POLICY, 'test.yaml');
      a = new Engine({ store: t.store, policy, resolvers: [new VelocityResolver()] });
      b = new Engine({ store: await t.openAnother(), policy, resolvers: [new VelocityResolver()] });
      for (const email of ['ann@example.com', 'bob@example.com']) {
        const r = await createReviewer(t.store, email);
        reviewers.push({ id: r.id, email: r.email });
      }
    });
    afterAll(async () => {
      // Whatever the races above did, the chain they left must verify.
      if (t) {
        const report = await verifyLedger(t.store);
        expect(report.problems).toEqual([]);
        expect(report.ok).toBe(true);
        await t.cleanup();
      }
    });

    async function newAgent(): Promise<{ id: string; name: string }> {
      const name = `agent-${++agentSeq}-${newId('x')}`;
      return t.store.findOrCreateAgent(newId('agt'), name, new Date().toISOString());
    }

    it('moves a two-reviewer action to pending exactly once when both approve at once on different instances', async () => {
      const agent = await newAgent();
      const [ann, bob] = reviewers as [Reviewer, Reviewer];
      for (let i = 0; i < 8; i++) {
        const { action } = await a.submit(transfer(agent, 100_00));
        expect(action.status).toBe('awaiting_approval');
        expect(action.approvals_required).toBe(2);
        const { ok, errors } = await settle([
          a.approve(action.id, ann, 'ok'),
          b.approve(action.id, bob, 'ok'),
        ]);
        expect(errors).toEqual([]);
        expect(ok).toHaveLength(2);
        const row = await a.get(action.id);
        expect(row.status).toBe('pending');
        const types = await ledgerTypes(t.store, action.id);
        expect(types.filter((x) => x === 'action.approved')).toHaveLength(1);
        expect(types.filter((x) => x === 'approval.recorded')).toHaveLength(1);
        expect(await t.store.listApprovals(action.id)).toHaveLength(2);
      }
    });

    it('counts one vote when the same reviewer approves twice at once on two instances', async () => {
      const agent = await newAgent();
      const ann = reviewers[0]!;
      const { action } = await a.submit(transfer(agent, 100_00));
      const { ok, errors } = await settle([
        a.approve(action.id, ann, 'first'),
        b.approve(action.id, ann, 'second'),
      ]);
      expect(ok).toHaveLength(1);
      expect(errors).toHaveLength(1);
      expect((errors[0] as AirlockError).code).toBe('already_decided');
      expect(await t.store.listApprovals(action.id)).toHaveLength(1);
      expect((await a.get(action.id)).status).toBe('awaiting_approval');
    });

    it('lets exactly one of a racing approve and reject decide a held refund', async () => {
      const agent = await newAgent();
      const [ann, bob] = reviewers as [Reviewer, Reviewer];
      for (let i = 0; i < 8; i++) {
        const { action } = await a.submit(refund(agent, 600_00));
        expect(action.status).toBe('awaiting_approval');
        const { ok, errors } = await settle([
          a.approve(action.id, ann, null),
          b.reject(action.id, bob, null),
        ]);
        expect(ok).toHaveLength(1);
        expect(errors).toHaveLength(1);
        expect((errors[0] as AirlockError).code).toBe('already_decided');
        const row = await a.get(action.id);
        expect(['pending', 'rejected']).toContain(row.status);
        const decided = (await ledgerTypes(t.store, action.id)).filter(
          (x) => x === 'action.approved' || x === 'action.rejected',
        );
        expect(decided).toHaveLength(1);
        expect(decided[0]).toBe(row.status === 'pending' ? 'action.approved' : 'action.rejected');
      }
    });

    it('records one action when the same Idempotency-Key arrives on two instances at once', async () => {
      const agent = await newAgent();
      const key = `idem-${newId('k')}`;
      const { ok, errors } = await settle(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).submit(refund(agent, 50_00, key))),
      );
      expect(errors).toEqual([]);
      expect(new Set(ok.map((r) => r.action.id)).size).toBe(1);
      expect(ok.filter((r) => r.created)).toHaveLength(1);
      const { rows } = await t.store.listActions({ agentId: agent.id, limit: 100 });
      expect(rows).toHaveLength(1);
      expect(await ledgerTypes(t.store, rows[0]!.id)).toEqual(['action.received', 'action.decided']);
    });

    it('lets at most six of ten concurrent $300 refunds through a $2,000-per-hour rule across instances', async () => {
      const agent = await newAgent();
      const { ok, errors } = await settle(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).submit(refund(agent, 300_00))),
      );
      expect(errors).toEqual([]);
      const statuses = ok.map((r) => r.action.status);
      expect(statuses.filter((s) => s === 'pending')).toHaveLength(6);
      expect(statuses.filter((s) => s === 'awaiting_approval')).toHaveLength(4);
    });

    it('fails a guarded transition when another instance moved the action first', async () => {
      const agent = await newAgent();
      const { action } = await a.submit(refund(agent, 700_00));
      await b.reject(action.id, reviewers[1]!, 'no');
      const moved = await t.store.actions.transition(action.id, 'awaiting_approval', 'pending', {});
      expect(moved).toBeUndefined();
      expect((await a.get(action.id)).status).toBe('rejected');
      const err = await a.approve(action.id, reviewers[0]!, null).catch((e: unknown) => e);
      expect((err as AirlockError).code).toBe('already_decided');
    });
  });
}
