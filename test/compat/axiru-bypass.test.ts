// Issue 20: a request in Axiru's shape is decided exactly as the same request in Airlock's own decisions shape, so
// moving to the compatible endpoint can never let through what Airlock's own API would hold or block. Generated
// requests, each asked both ways of one real Airlock; the policy reads kind, amount, currency, customer and metadata.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStackWithPolicy } from '../helpers/stack.ts';

const POLICY = [
  'default: review',
  'rules:',
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
  `  - "Block if :kind: = 'refund.create' and :amount_in_usd: > 5000"`,
  `  - "Allow if :kind: IN ('payout.create', 'transfer.create') and :amount_in_usd: <= 1000"`,
  `  - "Block if :kind: = 'payout.create' and :amount_in_usd: > 20000"`,
  `  - "Allow if :kind: IN ('credit_note.create', 'application_fee_refund.create') and :amount_in_usd: <= 100"`,
  `  - "Block if :customer: = 'cus_fraud'"`,
  `  - "Review if ::order_id:: LIKE 'risk%'"`,
  `  - rule: "Review if :kind: = 'dispute.close'"`,
  '    mode: shadow',
  `  - rule: "Block if :kind: = 'customer_balance_transaction.create' and :amount_in_usd: > 300"`,
  '    mode: shadow',
  `  - "Allow if :kind: = 'customer_balance_transaction.create' and :amount_in_usd: <= 300"`,
];

// Written out from docs/migrate/axiru.md, not imported: the test checks the mapping, so it must not reuse it.
const KIND: Record<string, string> = {
  refund: 'refund.create',
  credit: 'credit_note.create',
  adjustment: 'customer_balance_transaction.create',
  payout: 'payout.create',
  transfer: 'transfer.create',
  app_fee_refund: 'application_fee_refund.create',
  'app-fee refund': 'application_fee_refund.create',
  application_fee_refund: 'application_fee_refund.create',
  dispute: 'dispute.close',
};
const OUTCOME: Record<string, string> = { allow: 'allow', review: 'review', block: 'deny' };
const STATUS: Record<string, string> = {
  approved: 'approved',
  awaiting_approval: 'pending_approval',
  blocked: 'denied',
};

const amountCents = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 100_000 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 3_000_000 }) },
  // Each threshold of the policy, and one cent either side, in USD cents.
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(10_000, 30_000, 50_000, 100_000, 500_000, 2_000_000)
      .chain((t) => fc.constantFrom(t - 1, t, t + 1)),
  },
);

const request = fc.record({
  kind: fc.constantFrom(...Object.keys(KIND)),
  amount_cents: amountCents,
  currency: fc.constantFrom('usd', 'USD', 'Usd', 'eur', 'EUR', 'jpy', 'JPY'),
  customer_id: fc.option(fc.constantFrom('cus_1', 'cus_2', 'cus_fraud'), { nil: undefined }),
  order_id: fc.option(fc.constantFrom('ord_1', 'risk-7', 'riskless'), { nil: undefined }),
  tenure: fc.option(fc.integer({ min: 0, max: 5000 }), { nil: undefined }),
});
type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

function axiruBody(r: Req) {
  return {
    intent: {
      kind: r.kind,
      amount_cents: r.amount_cents,
      currency: r.currency,
      stripe_connection_id: 'stripe_conn_abc123',
      ...(r.order_id ? { metadata: { order_id: r.order_id } } : {}),
    },
    context: {
      ...(r.customer_id ? { customer_id: r.customer_id } : {}),
      ...(r.tenure !== undefined ? { customer_tenure_days: r.tenure } : {}),
      reason_code: 'requested_by_customer',
    },
  };
}

function airlockBody(r: Req) {
  return {
    intent: {
      kind: KIND[r.kind],
      amount: r.amount_cents,
      currency: r.currency.toLowerCase(),
      ...(r.order_id ? { metadata: { order_id: r.order_id } } : {}),
    },
    context: {
      ...(r.customer_id ? { customer: r.customer_id } : {}),
      ...(r.tenure !== undefined ? { customer_tenure_days: r.tenure } : {}),
    },
  };
}

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

describe('Axiru-shaped decisions cannot bypass Airlock-shaped ones', () => {
  it('decides every generated request the same both ways: same kind, minor units, currency, outcome and reason', async () => {
    const seen = { allow: 0, review: 0, block: 0, advisory: 0 };
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const own = await post('/api/decisions', airlockBody(r));
        const compat = await post('/api/v1/decisions', axiruBody(r));
        expect(own.status).toBe(200);
        expect(compat.status).toBe(200);
        const o = own.body;
        const a = compat.body;
        seen[o.outcome as 'allow' | 'review' | 'block']++;
        if (a.advisory) seen.advisory++;

        // Never more permissive: what Airlock's own shape holds or blocks is never allowed in Axiru's.
        if (o.outcome !== 'allow') expect(a.outcome).not.toBe('allow');
        expect(a.outcome).toBe(OUTCOME[o.outcome]);
        expect(a.status).toBe(STATUS[o.status]);
        expect(a.message).toBe(o.message);
        expect(a.policy_version).toBe(o.policy_version);
        expect(a.advisory).toBe(o.shadow);
        expect(a.advisory_outcome).toBe(o.shadow_outcome ? OUTCOME[o.shadow_outcome] : null);

        // The policy saw the same facts: the Axiru request as Airlock recorded it.
        const recorded = (await stack.api(`/api/decisions/${a.decision_id}`)).body;
        expect(recorded.intent).toEqual(o.intent);
        expect(recorded.intent.kind).toBe(KIND[r.kind]);
        expect(recorded.intent.amount).toBe(r.amount_cents);
        expect(recorded.intent.currency).toBe(r.currency.toLowerCase());
        expect(recorded.outcome).toBe(o.outcome);
        expect(recorded.shadow_outcome).toBe(o.shadow_outcome);
      }),
      { numRuns: 120 },
    );
    // The generator reached every outcome, advisory ones too: otherwise the comparisons above prove little.
    expect(seen.allow).toBeGreaterThan(0);
    expect(seen.review).toBeGreaterThan(0);
    expect(seen.block).toBeGreaterThan(0);
    expect(seen.advisory).toBeGreaterThan(0);
  });
});
