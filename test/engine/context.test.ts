// The pure half of a hold's context (src/engine/context.ts): which stated reason wins, and how earlier actions
// count, over whole classes of input (fast-check).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  airlockHistory,
  loadContext,
  MAX_REASON_LENGTH,
  type ReasonSource,
  ruleLabels,
  statedReasons,
} from '../../src/engine/context.ts';
import { STATUSES } from '../../src/store/status.ts';
import { ContextLookups } from '../../src/stripe/lookups.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { StripeUpstream } from '../../src/stripe/upstream.ts';
import { actionRow } from '../helpers/action-row.ts';
import { openTestStore, type TestStore } from '../store/databases.ts';

const ORDER: ReasonSource[] = [
  'Airlock-Reason',
  'justification',
  'metadata[reason]',
  'description',
  'summary',
];
const maybeText = fc.option(fc.string({ maxLength: 700 }), { nil: undefined });

describe('stated reasons', () => {
  it('keeps each non-blank one trimmed, at most 500 characters, once, in the order of preference', () => {
    fc.assert(
      fc.property(
        maybeText,
        maybeText,
        maybeText,
        maybeText,
        maybeText,
        (header, justification, meta, description, summary) => {
          const row = {
            details: JSON.stringify({ reason: header, justification, summary }),
            params: JSON.stringify({
              ...(meta !== undefined ? { metadata: { reason: meta } } : {}),
              description,
            }),
            original_params: null,
          };
          const out = statedReasons(row);
          const given: [ReasonSource, string | undefined][] = [
            ['Airlock-Reason', header],
            ['justification', justification],
            ['metadata[reason]', meta],
            ['description', description],
            ['summary', summary],
          ];
          const expected: { source: ReasonSource; text: string }[] = [];
          for (const [source, v] of given) {
            const t = v?.trim().slice(0, MAX_REASON_LENGTH);
            if (t && !expected.some((e) => e.text === t)) expected.push({ source, text: t });
          }
          expect(out).toEqual(expected);
          for (const r of out) expect(r.text.length).toBeLessThanOrEqual(MAX_REASON_LENGTH);
          const ranks = out.map((r) => ORDER.indexOf(r.source));
          expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
        },
      ),
    );
  });

  it("reads what the agent sent, not a reviewer's change, and survives details that are not JSON", () => {
    const row = {
      details: '{not json',
      params: JSON.stringify({ metadata: { reason: 'changed by a reviewer' } }),
      original_params: JSON.stringify({ metadata: { reason: 'as the agent sent it' } }),
    };
    expect(statedReasons(row)).toEqual([{ source: 'metadata[reason]', text: 'as the agent sent it' }]);
    expect(statedReasons({ details: null, params: '[]', original_params: null })).toEqual([]);
  });
});

describe('rule labels', () => {
  it('pairs each matched rule with its name, and an unnamed or older decision with null', () => {
    expect(ruleLabels({ rules: ['a', 'b'], rule_names: ['Named', null] })).toEqual([
      { name: 'Named', text: 'a' },
      { name: null, text: 'b' },
    ]);
    expect(ruleLabels({ rules: ['a'] })).toEqual([{ name: null, text: 'a' }]);
  });
});

describe("a customer's history through Airlock", () => {
  it('counts every refund once by how it ended, sums what completed per currency, and counts dispute actions', () => {
    const row = fc.record({
      kind: fc.constantFrom(
        'refund.create',
        'dispute.close',
        'dispute.update',
        'payout.create',
        'charge.capture',
      ),
      status: fc.constantFrom(...STATUSES),
      amount: fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: null }),
      currency: fc.constantFrom('usd', 'eur'),
    });
    fc.assert(
      fc.property(fc.array(row, { maxLength: 60 }), fc.boolean(), (rows, truncated) => {
        const stored = rows.map((r, i) => ({ ...r, id: `act_${i}`, created_at: '2030-01-01T00:00:00.000Z' }));
        const h = airlockHistory(stored, truncated);
        const refunds = rows.filter((r) => r.kind === 'refund.create');
        expect(h.actions).toBe(rows.length);
        expect(h.refunds.total).toBe(refunds.length);
        expect(h.refunds.completed).toBe(refunds.filter((r) => r.status === 'completed').length);
        expect(h.refunds.rejected).toBe(refunds.filter((r) => r.status === 'rejected').length);
        expect(h.refunds.blocked).toBe(refunds.filter((r) => r.status === 'blocked').length);
        const { completed, rejected, blocked, open } = h.refunds;
        expect(completed + rejected + blocked + open).toBeLessThanOrEqual(h.refunds.total);
        for (const cur of ['usd', 'eur']) {
          const sum = refunds
            .filter((r) => r.status === 'completed' && r.currency === cur)
            .reduce((s, r) => s + (r.amount ?? 0), 0);
          expect(h.refunded[cur] ?? 0).toBe(sum);
        }
        expect(h.disputes).toBe(rows.filter((r) => r.kind.startsWith('dispute.')).length);
        expect(h.truncated).toBe(truncated);
      }),
    );
  });
});

describe('loading the context', () => {
  let sandbox: Sandbox;
  let upstream: StripeUpstream;
  let db: TestStore;
  beforeAll(async () => {
    sandbox = await startSandbox();
    upstream = new StripeUpstream(sandbox.url, 'sk_test_context');
    db = await openTestStore('sqlite');
  });
  afterAll(async () => {
    await db?.cleanup();
    await upstream?.close();
    await sandbox?.close();
  });

  it("looks nothing up at Stripe for a generic HTTP action, whose ids are another API's", async () => {
    const row = actionRow({
      mode: 'http',
      kind: 'order.refund',
      params: JSON.stringify({ charge: 'ch_elsewhere', payment_intent: 'pi_elsewhere' }),
      customer: null,
    });
    const before = sandbox.requests().length;
    const c = await loadContext(db.store, new ContextLookups(upstream), row);
    expect(c.charge).toBeNull();
    expect(c.customer).toBeNull();
    expect(sandbox.requests().length).toBe(before);
  });

  it('says a charge that does not exist could not be loaded, in Stripe’s words', async () => {
    const row = actionRow({ params: JSON.stringify({ charge: 'ch_missing', amount: '1000' }) });
    const c = await loadContext(db.store, new ContextLookups(upstream), row);
    expect(c.charge).toEqual({
      id: 'ch_missing',
      facts: { ok: false, error: expect.stringMatching(/^Stripe answered 404: No such charge/) },
    });
    // Without look-ups at all, the store's part is still there and the rest says why it is missing.
    const withoutStripe = await loadContext(db.store, null, { ...row, customer: 'cus_1' });
    expect(withoutStripe.customer?.stripe).toEqual({ ok: false, error: 'look-ups are not configured' });
    expect(withoutStripe.customer?.airlock.actions).toBe(0);
  });
});
