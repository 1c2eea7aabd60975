// The quorum: a pure function of the standing votes and the rule, and the engine doing what it says on a real
// SQLite store.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type Reviewer, type Submission } from '../../src/engine/engine.ts';
import { type QuorumRule, quorum, type Vote } from '../../src/engine/systems/review.ts';
import type { AirlockError } from '../../src/errors.ts';
import { newId } from '../../src/ids.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import { tempDir } from '../helpers/stack.ts';

const CURRENT = 'v2';
const REVIEWERS = ['ann', 'bob', 'cy', 'dee', 'eve'];

const vote = fc.record({
  reviewerId: fc.constantFrom(...REVIEWERS),
  decision: fc.constantFrom<Vote['decision']>('approve', 'reject'),
  boundHash: fc.constantFrom(CURRENT, 'v1'),
});
const rule = fc.record({ required: fc.integer({ min: 1, max: 4 }), boundHash: fc.constant(CURRENT) });

function approversOf(votes: readonly Vote[], r: QuorumRule): Set<string> {
  return new Set(
    votes.filter((v) => v.decision === 'approve' && v.boundHash === r.boundHash).map((v) => v.reviewerId),
  );
}

describe('quorum', () => {
  it('holds a two-reviewer rule after one approval and approves it after the second', () => {
    const r = { required: 2, boundHash: CURRENT };
    const ann: Vote = { reviewerId: 'ann', decision: 'approve', boundHash: CURRENT };
    const bob: Vote = { reviewerId: 'bob', decision: 'approve', boundHash: CURRENT };
    expect(quorum([], r)).toEqual({ outcome: 'waiting', approvals: 0 });
    expect(quorum([ann], r)).toEqual({ outcome: 'waiting', approvals: 1 });
    expect(quorum([ann, bob], r)).toEqual({ outcome: 'approved', approvals: 2 });
  });

  it('does not count an approval given to an earlier version of the request', () => {
    const r = { required: 2, boundHash: CURRENT };
    const votes: Vote[] = [
      { reviewerId: 'ann', decision: 'approve', boundHash: 'v1' },
      { reviewerId: 'bob', decision: 'approve', boundHash: CURRENT },
    ];
    expect(quorum(votes, r)).toEqual({ outcome: 'waiting', approvals: 1 });
  });

  it('rejects on any reject, however many approved', () => {
    fc.assert(
      fc.property(fc.array(vote, { maxLength: 8 }), vote, rule, (votes, v, r) => {
        const reject: Vote = { ...v, decision: 'reject' };
        expect(quorum([...votes, reject], r)).toEqual({ outcome: 'rejected' });
        expect(quorum([reject, ...votes], r)).toEqual({ outcome: 'rejected' });
      }),
    );
  });

  it('approves exactly when enough distinct reviewers approved the current version and none rejected', () => {
    fc.assert(
      fc.property(fc.array(vote, { maxLength: 8 }), rule, (all, r) => {
        const votes = all.filter((v) => v.decision === 'approve');
        const approvals = approversOf(votes, r).size;
        expect(quorum(votes, r)).toEqual({
          outcome: approvals >= r.required ? 'approved' : 'waiting',
          approvals,
        });
      }),
    );
  });

  it('does not depend on the order of the votes, or on a vote counted twice', () => {
    const permuted = fc
      .array(vote, { maxLength: 8 })
      .chain((votes) =>
        fc.tuple(
          fc.constant(votes),
          fc.shuffledSubarray(votes, { minLength: votes.length, maxLength: votes.length }),
        ),
      );
    fc.assert(
      fc.property(permuted, rule, ([votes, shuffled], r) => {
        expect(quorum(shuffled, r)).toEqual(quorum(votes, r));
        expect(quorum([...votes, ...votes], r)).toEqual(quorum(votes, r));
      }),
    );
  });

  it('never approves more readily when the rule asks for more', () => {
    fc.assert(
      fc.property(fc.array(vote, { maxLength: 8 }), rule, (votes, r) => {
        const stricter = quorum(votes, { ...r, required: r.required + 1 });
        if (stricter.outcome === 'approved') expect(quorum(votes, r).outcome).toBe('approved');
      }),
    );
  });
});

describe('the engine follows the quorum', () => {
  let dir: string;
  let store: Store;
  let engine: Engine;
  const reviewers: Reviewer[] = REVIEWERS.slice(0, 4).map((name) => ({
    id: newId('rev'),
    email: `${name}@example.com`,
  }));

  beforeAll(async () => {
    dir = tempDir();
    store = await openSqliteStore(join(dir, 'airlock.db'));
    engine = new Engine({ store, policy: parsePolicy('default: review\n', 'test.yaml') });
  });
  afterAll(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function transfer(): Submission {
    const params = { amount: '1000', currency: 'usd', destination: 'acct_1' };
    return {
      agent: null,
      method: 'POST',
      path: '/v1/transfers',
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: null,
      classification: classify({ method: 'POST', path: '/v1/transfers', params }),
    };
  }

  it('holds, approves or rejects a transfer as quorum() says after every vote', async () => {
    const step = fc.record({ reviewer: fc.integer({ min: 0, max: 3 }), approve: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.array(step, { minLength: 1, maxLength: 6 }),
        async (k, steps) => {
          engine.setPolicy(
            parsePolicy(
              `default: review\nrules:\n  - rule: "Review if :kind: = 'transfer.create'"\n    approvals: ${k}\n`,
              `k${k}.yaml`,
            ),
          );
          const { action } = await engine.submit(transfer());
          expect(action.status).toBe('awaiting_approval');
          expect(action.approvals_required).toBe(k);
          const standing = new Map<string, Vote>();
          let status = 'awaiting_approval';
          for (const s of steps) {
            const reviewer = reviewers[s.reviewer]!;
            const cast = s.approve
              ? engine.approve(action.id, reviewer, null)
              : engine.reject(action.id, reviewer, null);
            if (status !== 'awaiting_approval' || standing.has(reviewer.id)) {
              // Decided already, or this reviewer already voted on this version.
              await expect(cast).rejects.toMatchObject({
                code: 'already_decided',
              } satisfies Partial<AirlockError>);
              continue;
            }
            standing.set(reviewer.id, {
              reviewerId: reviewer.id,
              decision: s.approve ? 'approve' : 'reject',
              boundHash: CURRENT,
            });
            const expected = quorum([...standing.values()], { required: k, boundHash: CURRENT });
            const row = await cast;
            status = row.status;
            expect(status).toBe(
              expected.outcome === 'rejected'
                ? 'rejected'
                : expected.outcome === 'approved'
                  ? 'pending'
                  : 'awaiting_approval',
            );
          }
          const approvals = await store.listApprovals(action.id);
          expect(approvals.map((a) => a.reviewer_id).sort()).toEqual([...standing.keys()].sort());
        },
      ),
      { numRuns: 40 },
    );
  });
});
