// Stripe Events stored through the one ingest path (webhook and backfill), over SQLite and PostgreSQL: each event
// once by its id in any order; an outside money event is a ledger event (the chain still verifies) with its alerts
// queued, unless the policy expects it; Airlock's own movements raise nothing.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { Engine } from '../../src/engine/engine.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { StripeEventIngest } from '../../src/engine/stripe-events.ts';
import { newId } from '../../src/ids.ts';
import { EmailChannel } from '../../src/notify/email.ts';
import { OutsideAlertOutbox } from '../../src/notify/outside.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { parseStripeEvent } from '../../src/stripe/events.ts';
import { actionRow } from '../helpers/action-row.ts';
import { refundEvent } from '../helpers/stripe-events.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from './databases.ts';

const POLICY = `
default: review
outside_airlock:
  expected:
    - { type: payout.created, source: automation }
`;

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`Stripe events on ${dialect}`, () => {
    let t: TestStore;
    let ingest: StripeEventIngest;
    const seen: { type: string; source: string; expected: boolean }[] = [];
    beforeAll(async () => {
      t = await openTestStore(dialect);
      const engine = new Engine({ store: t.store, policy: parsePolicy(POLICY, 'policy.yaml') });
      ingest = new StripeEventIngest(engine);
      ingest.alerts = new OutsideAlertOutbox([
        new EmailChannel({ host: '127.0.0.1', port: 1, secure: false, from: 'airlock@example.com' }),
      ]);
      ingest.observer = { outside: (e) => seen.push(e) };
      await createReviewer(t.store, 'finance@example.com');
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    it('stores each event once by its id, however often and in whatever order it is delivered', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.nat({ max: 4 }), { minLength: 1, maxLength: 12 }),
          async (deliveries) => {
            const events = Array.from({ length: 5 }, () => refundEvent());
            const before = await t.store.stripeEvents.count();
            const stored = new Set<string>();
            for (const i of deliveries) {
              const r = await ingest.ingest(events[i]!, 'webhook');
              expect(r.stored).toBe(!stored.has(events[i]!.id));
              stored.add(events[i]!.id);
            }
            expect(await t.store.stripeEvents.count()).toBe(before + stored.size);
          },
        ),
        { numRuns: 10 },
      );
    });

    it('records an outside refund in the ledger with its source, queues its alert, and the chain verifies', async () => {
      const e = refundEvent({ amount: 12345 });
      seen.length = 0;
      const r = await ingest.ingest(e, 'webhook');
      expect(r).toMatchObject({ stored: true, origin: 'outside', action: null, expected: false });
      const row = await t.store.stripeEvents.get(e.id);
      expect(row).toMatchObject({ origin: 'outside', amount: 12345, currency: 'usd', amount_usd: 123.45 });
      const alerts = await t.store.stripeEvents.alertsFor(e.id);
      expect(alerts.map((a) => [a.channel, a.recipient])).toEqual([['email', 'finance@example.com']]);
      expect(seen).toEqual([{ type: 'refund.created', source: 'outside', expected: false }]);
      // Delivered again: nothing more.
      expect((await ingest.ingest(e, 'webhook')).stored).toBe(false);
      expect(await t.store.stripeEvents.alertsFor(e.id)).toHaveLength(1);
      expect(seen).toHaveLength(1);
      const report = await verifyLedger(t.store);
      expect(report.problems).toEqual([]);
      const events = [];
      for (let after = 0; ; ) {
        const page = await t.store.ledgerPage(after, 1000);
        if (!page.length) break;
        events.push(...page);
        after = page[page.length - 1]!.seq;
      }
      const outside = events.filter((l) => l.type === 'stripe.outside' && JSON.parse(l.data).event === e.id);
      expect(outside).toHaveLength(1);
      expect(JSON.parse(outside[0]!.data)).toMatchObject({
        type: 'refund.created',
        amount: 12345,
        currency: 'usd',
        source: 'outside',
        expected: false,
      });
    });

    it("calls Stripe's own automation by its name: no request", async () => {
      const r = await ingest.ingest(refundEvent({ requestId: null }), 'webhook');
      expect(r.origin).toBe('automation');
    });

    it('raises nothing for a movement Airlock made, by its key or its metadata tag', async () => {
      const action = actionRow({
        status: 'completed',
        response_body: JSON.stringify({ id: 're_ours1', object: 'refund' }),
      });
      await t.store.transaction((tx) => tx.insertAction(action));
      seen.length = 0;
      const byKey = await ingest.ingest(
        refundEvent({ key: `airlock-${action.id}`, refund: 're_ours1' }),
        'webhook',
      );
      const byTag = await ingest.ingest(
        refundEvent({ requestId: null, metadata: { airlock_action: action.id }, refund: 're_ours1' }),
        'webhook',
      );
      expect([byKey.origin, byTag.origin]).toEqual(['airlock', 'airlock']);
      expect(byKey.action).toBe(action.id);
      expect(seen).toEqual([]);
      expect(await t.store.stripeEvents.alertsFor(byKey.id)).toEqual([]);
    });

    it("does not take a key or tag naming an unknown action, or an action of another object, for Airlock's", async () => {
      const action = actionRow({
        status: 'completed',
        response_body: JSON.stringify({ id: 're_ours2', object: 'refund' }),
      });
      await t.store.transaction((tx) => tx.insertAction(action));
      const forged = await ingest.ingest(refundEvent({ key: `airlock-${newId('act')}` }), 'webhook');
      const copied = await ingest.ingest(
        refundEvent({ key: `airlock-${action.id}`, refund: 're_other' }),
        'webhook',
      );
      const tagged = await ingest.ingest(
        refundEvent({ metadata: { airlock_action: 'act_nope' } }),
        'webhook',
      );
      // The key of an action that was never sent (rejected, held, blocked), reused with a raw key.
      const unsent: string[] = [];
      for (const status of ['rejected', 'awaiting_approval', 'blocked'] as const) {
        const row = actionRow({ status });
        await t.store.transaction((tx) => tx.insertAction(row));
        unsent.push((await ingest.ingest(refundEvent({ key: `airlock-${row.id}` }), 'webhook')).origin);
      }
      expect([forged.origin, copied.origin, tagged.origin, ...unsent]).toEqual(Array(6).fill('outside'));
    });

    it('records an expected kind without alerting; the same kind from another source still alerts', async () => {
      const payout = (requestId: string | null) =>
        parseStripeEvent({
          id: newId('evt'),
          object: 'event',
          created: Math.floor(Date.now() / 1000),
          type: 'payout.created',
          data: {
            object: { id: newId('po'), object: 'payout', amount: 50000, currency: 'usd', metadata: {} },
          },
          request: { id: requestId, idempotency_key: null },
        });
      const automatic = await ingest.ingest(payout(null), 'webhook');
      expect(automatic).toMatchObject({ origin: 'automation', expected: true });
      expect(await t.store.stripeEvents.alertsFor(automatic.id)).toEqual([]);
      const manual = await ingest.ingest(payout(newId('req')), 'webhook');
      expect(manual).toMatchObject({ origin: 'outside', expected: false });
      expect(await t.store.stripeEvents.alertsFor(manual.id)).toHaveLength(1);
    });

    it('counts outside refunds in the account windows (not the agent ones), by when Stripe made them', async () => {
      const window = (scope: 'agent' | 'account', sinceS: number, untilS: number) =>
        t.store.velocity.total({
          scope,
          subject: scope === 'agent' ? 'agt_none' : null,
          account: null,
          kinds: ['refund.create'],
          statuses: ['completed'],
          since: new Date(sinceS * 1000).toISOString(),
          until: new Date(untilS * 1000).toISOString(),
        });
      // Far in the past, so nothing else this file stores falls in the window.
      const at = 1_000_000_000;
      const before = await window('account', at - 3600, at);
      const e = { ...refundEvent({ amount: 77_700 }), created: at - 60 };
      await ingest.ingest(e, 'backfill');
      const ours = actionRow({ status: 'completed' });
      await t.store.transaction((tx) => tx.insertAction(ours));
      await ingest.ingest({ ...refundEvent({ key: `airlock-${ours.id}` }), created: at - 30 }, 'webhook');
      expect(await window('account', at - 3600, at)).toEqual({
        count: before.count + 1,
        usd: before.usd + 777,
      });
      expect(await window('account', at - 59, at)).toEqual(before);
      expect(await window('agent', at - 3600, at)).toEqual({ count: 0, usd: 0 });
      // Delivered again, counted once.
      await ingest.ingest(e, 'webhook');
      expect((await window('account', at - 3600, at)).count).toBe(before.count + 1);
    });

    it('stores an event once when two instances receive it at the same time', async () => {
      const other = await t.openAnother();
      const engineB = new Engine({ store: other, policy: parsePolicy(POLICY, 'policy.yaml') });
      const b = new StripeEventIngest(engineB);
      const events = Array.from({ length: 20 }, () => refundEvent());
      const results = await Promise.all(
        events.flatMap((e) => [
          ingest.ingest(e, 'webhook'),
          b.ingest(e, 'webhook'),
          ingest.ingest(e, 'backfill'),
        ]),
      );
      for (const e of events) expect(results.filter((r) => r.id === e.id && r.stored)).toHaveLength(1);
      await t.store.ledger.sealPending();
      const ids = new Set(events.map((e) => e.id));
      const recorded = [];
      for (let after = 0; ; ) {
        const page = await t.store.ledgerPage(after, 1000);
        if (!page.length) break;
        recorded.push(
          ...page.filter((l) => l.type === 'stripe.outside' && ids.has(JSON.parse(l.data).event)),
        );
        after = page[page.length - 1]!.seq;
      }
      expect(recorded).toHaveLength(events.length);
      expect((await verifyLedger(t.store)).problems).toEqual([]);
    });

    it('knows a charge is disputed from its charge.dispute.created event alone', async () => {
      expect(await t.store.stripeEvents.disputed('ch_disputed_store')).toBe(false);
      await ingest.ingest(
        parseStripeEvent({
          id: newId('evt'),
          object: 'event',
          created: 1,
          type: 'charge.dispute.created',
          data: { object: { id: newId('dp'), object: 'dispute', charge: 'ch_disputed_store', amount: 500 } },
          request: { id: null, idempotency_key: null },
        }),
        'webhook',
      );
      expect(await t.store.stripeEvents.disputed('ch_disputed_store')).toBe(true);
      expect(await t.store.stripeEvents.disputed('ch_other_store')).toBe(false);
    });

    it('keeps one backfill cursor, replaced on each write', async () => {
      expect(await t.store.stripeEvents.backfillCursor()).toBeNull();
      await t.store.stripeEvents.setBackfillCursor('{"after":"evt_1"}');
      await t.store.stripeEvents.setBackfillCursor('{"after":"evt_2"}');
      expect(await t.store.stripeEvents.backfillCursor()).toBe('{"after":"evt_2"}');
    });

    it('stores an event that moves no money without an origin, and lists only outside ones', async () => {
      const e = parseStripeEvent({
        id: newId('evt'),
        object: 'event',
        created: 1,
        type: 'charge.succeeded',
        data: { object: { id: 'ch_x', object: 'charge', amount: 100, currency: 'usd' } },
        request: { id: null, idempotency_key: null },
      });
      expect(await ingest.ingest(e, 'webhook')).toMatchObject({ stored: true, origin: 'none' });
      const listed = await t.store.stripeEvents.listOutside(1000);
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.every((l) => l.origin === 'outside' || l.origin === 'automation')).toBe(true);
      expect(listed.some((l) => l.id === e.id)).toBe(false);
    });
  });
}
