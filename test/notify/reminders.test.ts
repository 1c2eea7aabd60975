// A hold's reminder and escalation, over both stores: each claimed once in the store, however many sweeps run at
// once on however many instances, and again after a restart; the ledger records each with who was told, and still
// verifies. The clock is the engine's, moved by the test; the outbox rows are what the notifier would send.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import type { Clock } from '../../src/engine/clock.ts';
import { Engine, type Submission } from '../../src/engine/engine.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { createResources } from '../../src/engine/resources.ts';
import { transition } from '../../src/engine/transition.ts';
import { EmailChannel } from '../../src/notify/email.ts';
import { HoldOutbox } from '../../src/notify/outbox.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from '../store/databases.ts';

const POLICY = `
default: allow
rules:
  - name: big_refund
    rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
    approvals: 2
    reviewers: [group:finance]
    expires_in: 4h
    remind_before: 1h
    escalate_after: 2h
    escalate_to: [group:managers, outside@example.com]
`;

const HOUR = 3_600_000;

class MovableClock implements Clock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

function refund(agent: { id: string; name: string }, cents: number): Submission {
  const params = { charge: 'ch_test', amount: String(cents) };
  const classification = { ...classify({ method: 'POST', path: '/v1/refunds', params }), currency: 'usd' };
  return {
    agent,
    method: 'POST',
    path: '/v1/refunds',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: null,
    classification,
  };
}

// Never contacted: the rows are queued here and their delivery is the notifier's (test/notify/delivery.test.ts).
const email = new EmailChannel({ host: '127.0.0.1', port: 9, secure: false, from: 'airlock@example.com' });

function engineOn(store: Store, clock: Clock): Engine {
  const engine = new Engine({ store, clock, policy: parsePolicy(POLICY, 'policy.yaml') });
  engine.notifications = new HoldOutbox([email]);
  return engine;
}

async function events(store: Store, id: string, type: string) {
  return (await store.ledgerForAction(id)).filter((e) => e.type === type);
}

async function queued(store: Store, id: string, event: string): Promise<string[]> {
  return (await store.outbox.notificationsFor(id))
    .filter((n) => n.event === event)
    .map((n) => n.recipient)
    .sort();
}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`reminders and escalation on ${dialect}`, () => {
    let t: TestStore;
    let clock: MovableClock;
    let engines: Engine[];
    let agent: { id: string; name: string };
    const reviewer: Record<string, { id: string; email: string; groups: string[] }> = {};

    beforeAll(async () => {
      t = await openTestStore(dialect);
      clock = new MovableClock();
      // Three instances on PostgreSQL, each with its own pool; one process owns a SQLite file.
      const stores = [t.store, await t.openAnother(), await t.openAnother()];
      engines = stores.map((s) => engineOn(s, clock));
      for (const [name, groups] of [
        ['ann', ['finance']],
        ['bob', ['finance']],
        ['dan', ['managers']],
        ['sue', ['support']],
      ] as const) {
        const r = await createReviewer(t.store, `${name}@example.com`, { groups: [...groups] });
        reviewer[name] = { id: r.id, email: r.email, groups: [...groups] };
      }
      agent = await t.store.findOrCreateAgent('agt_remind', 'remind-bot', new Date().toISOString());
    });

    afterAll(async () => {
      await t?.cleanup();
    });

    /** Every instance sweeps at once, several times over. */
    async function sweepEverywhere(): Promise<number> {
      const counts = await Promise.all(engines.flatMap((e) => [e.sendDueReminders(), e.sendDueReminders()]));
      return counts.reduce((a, b) => a + b, 0);
    }

    it('escalates once and reminds once, however many sweeps race, to whom each is for', async () => {
      clock.offsetMs = 0;
      const engine = engines[0]!;
      const { action } = await engine.submit(refund(agent, 60_000));
      expect(action.status).toBe('awaiting_approval');
      expect(await queued(t.store, action.id, 'review_requested')).toEqual([
        'ann@example.com',
        'bob@example.com',
      ]);
      await engine.approve(action.id, reviewer['ann']!, 'fine by me');

      // A manager cannot decide before the escalation, and nothing is due yet.
      await expect(engine.approve(action.id, reviewer['dan']!, null)).rejects.toMatchObject({
        code: 'forbidden',
      });
      clock.offsetMs = 2 * HOUR - 60_000;
      expect(await sweepEverywhere()).toBe(0);

      clock.offsetMs = 2 * HOUR + 60_000;
      expect(await sweepEverywhere()).toBe(1);
      expect(await sweepEverywhere()).toBe(0);
      const escalated = await events(t.store, action.id, 'action.escalated');
      expect(escalated).toHaveLength(1);
      expect(JSON.parse(escalated[0]!.data)).toEqual({
        escalate_to: ['group:managers', 'outside@example.com'],
        eligible: ['group:finance', 'group:managers', 'outside@example.com'],
        notified: [
          { channel: 'email', recipient: 'dan@example.com' },
          { channel: 'email', recipient: 'outside@example.com' },
        ],
      });
      expect(await queued(t.store, action.id, 'review_escalated')).toEqual([
        'dan@example.com',
        'outside@example.com',
      ]);
      // Only the reviewer gets links: the outsider has no account to decide with.
      const rows = await t.store.outbox.notificationsFor(action.id);
      expect(rows.find((r) => r.recipient === 'outside@example.com')?.reviewer_id).toBeNull();
      expect(
        rows.find((r) => r.recipient === 'dan@example.com' && r.event === 'review_escalated')?.reviewer_id,
      ).toBe(reviewer['dan']!.id);

      clock.offsetMs = 3 * HOUR + 60_000;
      expect(await sweepEverywhere()).toBe(1);
      expect(await sweepEverywhere()).toBe(0);
      const reminded = await events(t.store, action.id, 'action.reminded');
      expect(reminded).toHaveLength(1);
      // Ann voted; Sue is not eligible; the outsider is no reviewer: Bob and the escalated manager are reminded.
      expect(await queued(t.store, action.id, 'review_reminder')).toEqual([
        'bob@example.com',
        'dan@example.com',
      ]);
      expect(JSON.parse(reminded[0]!.data).notified).toHaveLength(2);

      // The escalated manager now completes the quorum of two distinct reviewers, through the engine.
      const approved = await engine.approve(action.id, reviewer['dan']!, 'escalated to me');
      expect(approved.status).toBe('pending');
      expect((await verifyLedger(t.store)).ok).toBe(true);
    });

    it('never turns an unanswered hold into anything but expired, and sends nothing after it', async () => {
      clock.offsetMs = 0;
      const engine = engines[0]!;
      const { action } = await engine.submit(refund(agent, 70_000));
      clock.offsetMs = 2 * HOUR + 60_000;
      expect(await sweepEverywhere()).toBe(1);
      // Past the reminder and the expiry at once: the sweep expires it first, and the reminder is dropped.
      clock.offsetMs = 4 * HOUR + 60_000;
      expect(await engine.expireDue()).toBeGreaterThanOrEqual(1);
      expect(await sweepEverywhere()).toBe(0);
      const row = await engine.get(action.id);
      expect(row.status).toBe('expired');
      await expect(engine.approve(action.id, reviewer['dan']!, null)).rejects.toMatchObject({
        code: 'already_decided',
      });
      expect(await events(t.store, action.id, 'action.reminded')).toHaveLength(0);
      expect(await events(t.store, action.id, 'action.escalated')).toHaveLength(1);
      expect((await t.store.reminders.forAction(action.id)).map((r) => r.kind)).toEqual(['escalate']);
    });

    it('a hold decided before its reminder is never reminded', async () => {
      clock.offsetMs = 0;
      const engine = engines[0]!;
      const { action } = await engine.submit(refund(agent, 80_000));
      await engine.reject(action.id, reviewer['bob']!, 'no');
      clock.offsetMs = 3 * HOUR + 60_000;
      expect(await sweepEverywhere()).toBe(0);
      expect(await events(t.store, action.id, 'action.escalated')).toHaveLength(0);
      expect(await events(t.store, action.id, 'action.reminded')).toHaveLength(0);
      expect(await t.store.reminders.forAction(action.id)).toEqual([]);
    });

    it('gives a hold sent back for review (its value rose) a reminder and escalation of its own', async () => {
      clock.offsetMs = 0;
      const engine = engines[0]!;
      const { action } = await engine.submit(refund(agent, 85_000));
      clock.offsetMs = 2 * HOUR + 60_000;
      expect(await sweepEverywhere()).toBe(1);
      await engine.approve(action.id, reviewer['ann']!, null);
      const pending = await engine.approve(action.id, reviewer['dan']!, null);
      expect(pending.status).toBe('pending');
      // What the dispatcher's revalue does (systems/dispatch.ts): decided again, back to awaiting_approval.
      const first = JSON.parse(pending.decision) as Record<string, unknown>;
      const { escalated_to: _dropped, ...again } = first;
      const at = clock.now();
      const r = createResources({ store: t.store, clock, policy: engine.policy });
      r.notifications = engine.notifications;
      await t.store.transaction((tx) =>
        transition(r, tx, action.id, 'pending', 'awaiting_approval', {
          type: 'action.revalued',
          actor: 'dispatcher:test',
          data: {},
          at: at.toISOString(),
          patch: {
            decision: JSON.stringify(again),
            expires_at: new Date(at.getTime() + 4 * HOUR).toISOString(),
          },
        }),
      );
      // The fired escalation of the first hold gave way to the new hold's, due two hours after it began.
      expect(
        (await t.store.reminders.forAction(action.id)).map((x) => [x.kind, x.due_at, x.fired_at]),
      ).toEqual([
        ['escalate', new Date(at.getTime() + 2 * HOUR).toISOString(), null],
        ['remind', new Date(at.getTime() + 3 * HOUR).toISOString(), null],
      ]);
      await expect(engine.approve(action.id, reviewer['dan']!, null)).rejects.toMatchObject({
        code: 'forbidden',
      });
      clock.offsetMs += 2 * HOUR + 60_000;
      expect(await sweepEverywhere()).toBe(1);
      expect(await events(t.store, action.id, 'action.escalated')).toHaveLength(2);
    });

    // A restart reopens the same file; PostgreSQL's once-only claim is the concurrent-sweep test above.
    const sqliteOnly = dialect === 'sqlite' ? it : (_name: string, _fn: () => Promise<void>) => {};
    sqliteOnly('fires once across a restart of the process (SQLite file reopened)', async () => {
      clock.offsetMs = 0;
      const { action } = await engines[0]!.submit(refund(agent, 90_000));
      clock.offsetMs = 2 * HOUR + 60_000;
      expect(await engines[0]!.sendDueReminders()).toBe(1);
      // The same file opened again, as a restarted server does, sweeping at the same moment.
      const reopened = await openSqliteStore(t.location);
      try {
        const again = engineOn(reopened, clock);
        expect(await again.sendDueReminders()).toBe(0);
        expect(await events(reopened, action.id, 'action.escalated')).toHaveLength(1);
        expect(await queued(reopened, action.id, 'review_escalated')).toHaveLength(2);
      } finally {
        await reopened.close();
      }
    });
  });
}
