// A Cheqpoint-shaped request can never be allowed where the same request in Airlock's decisions shape would be held
// or blocked: the policy sees the same kind, amount, currency and customer, whatever the spelling.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHEQPOINT_ACTIONS } from '../../src/http/compat/schemas.ts';
import { type Stack, startStackWithPolicy } from '../helpers/stack.ts';

// Thresholds in USD and in minor units, per kind, per currency and per customer, so that most generated requests
// sit near some boundary; no velocity or risk rule, so asking twice cannot change the answer.
const POLICY = [
  'default: review',
  'rules:',
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
  `  - "Allow if :kind: = 'payout.create' and :amount_in_usd: <= 100"`,
  `  - "Block if :kind: = 'payout.create' and :amount_in_usd: > 1000"`,
  `  - "Allow if :kind: IN ('subscription.cancel', 'charge.capture')"`,
  `  - "Block if :currency: = 'eur' and :amount: > 50000"`,
  `  - "Review if :customer: = 'cus_watch'"`,
  `  - "Block if :kind: = 'transfer.create' and :amount: >= 100000"`,
  `  - "Allow if :kind: = 'transfer.create' and :amount: < 100000"`,
];

let stack: Stack;
beforeAll(async () => {
  stack = await startStackWithPolicy(POLICY);
});
afterAll(async () => {
  await stack?.close();
});

async function post(path: string, body: unknown) {
  const res = await fetch(`${stack.airlock.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.agentKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const actions = Object.keys(CHEQPOINT_ACTIONS) as (keyof typeof CHEQPOINT_ACTIONS)[];
const currency = fc
  .constantFrom('usd', 'eur', 'jpy', 'gbp')
  .chain((c) => fc.constantFrom(c, c.toUpperCase(), c[0]!.toUpperCase() + c.slice(1)));
const amount = fc.oneof(
  fc.integer({ min: 0, max: 300_000 }),
  // Around the thresholds: $100, $500 and $1,000 in cents, 50,000 and 100,000 minor units.
  fc.constantFrom(10_000, 50_000, 100_000).chain((edge) => fc.integer({ min: edge - 2, max: edge + 2 })),
);
const request = fc.record({
  action: fc.constantFrom(...actions),
  money: fc.option(fc.record({ amount_cents: amount, currency }), { nil: undefined }),
  customer_id: fc.option(fc.constantFrom('cus_ok', 'cus_watch'), { nil: undefined }),
});

describe('Cheqpoint shape against the decisions shape', () => {
  it('is never approved when the decisions shape would be held or blocked, and the policy sees the same facts', async () => {
    let heldOrBlocked = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const details = {
          ...(r.money ?? {}),
          ...(r.customer_id ? { customer_id: r.customer_id } : {}),
        };
        const cheq = await post('/api/cheqpoint/v1/requests/sync', {
          action: r.action,
          summary: 'generated',
          details,
          timeoutMs: 0,
        });
        const own = await post('/api/decisions', {
          intent: {
            kind: CHEQPOINT_ACTIONS[r.action],
            ...(r.money ? { amount: r.money.amount_cents, currency: r.money.currency.toLowerCase() } : {}),
          },
          ...(r.customer_id ? { context: { customer: r.customer_id } } : {}),
        });
        expect(cheq.status).toBe(200);
        expect(own.status).toBe(200);
        if (own.body.outcome !== 'allow') {
          heldOrBlocked++;
          expect(cheq.body.status).not.toBe('approved');
        }
        expect(cheq.body.outcome).toBe(own.body.outcome);
        // The facts the policy decided on, as stored for the Cheqpoint request.
        const seen = (await stack.api(`/api/decisions/${cheq.body.approvalId}`)).body;
        expect(seen.intent).toMatchObject({
          kind: own.body.intent.kind,
          amount: own.body.intent.amount,
          currency: own.body.intent.currency,
        });
      }),
      { numRuns: 150 },
    );
    // The property was exercised where it matters, not only on allows.
    expect(heldOrBlocked).toBeGreaterThan(20);
  });
});
