// A backend that asks Airlock first and then calls Stripe itself with its own key (decide-only).
// AIRLOCK_URL=… AIRLOCK_AGENT_KEY=ak_… STRIPE_SECRET_KEY=sk_… CHARGE=ch_… AMOUNT=60000 npx tsx examples/decisions-backend.ts
// STRIPE_API_BASE points the Stripe client at the sandbox (http://127.0.0.1:4701) instead of api.stripe.com.
import { AirlockClient } from 'airlock/sdk';
import Stripe from 'stripe';

const airlock = new AirlockClient({
  baseUrl: process.env['AIRLOCK_URL'] ?? 'http://127.0.0.1:4700',
  apiKey: required('AIRLOCK_AGENT_KEY'),
});
const base = process.env['STRIPE_API_BASE'] ? new URL(process.env['STRIPE_API_BASE']) : null;
const stripe = new Stripe(required('STRIPE_SECRET_KEY'), {
  ...(base
    ? {
        host: base.hostname,
        port: Number(base.port || 443),
        protocol: base.protocol === 'https:' ? 'https' : 'http',
      }
    : {}),
});
const charge = required('CHARGE');
const amount = Number(process.env['AMOUNT'] ?? 60000);

// The same idempotency key returns the same decision if this process restarts and asks again.
const asked = await airlock.decisions.create({
  intent: { kind: 'refund.create', amount, currency: 'usd' },
  context: { charge },
  summary: `Refund ${charge}`,
  justification: 'Customer reported a damaged item',
  idempotency_key: `refund-${charge}-${amount}`,
});
console.log(`decision ${asked.id} ${asked.outcome} ${asked.status}`);
const decision =
  asked.status === 'awaiting_approval'
    ? await airlock.decisions.wait(asked.id, { timeoutSeconds: 120 })
    : asked;
console.log(`decided ${decision.status}`);

if (decision.status === 'approved') {
  // A reviewer may have lowered the amount; Airlock's decision id makes the Stripe call idempotent too.
  const changed = decision.modified_details?.['amount'];
  const approvedAmount = typeof changed === 'number' ? changed : amount;
  const refund = await stripe.refunds.create(
    { charge, amount: approvedAmount, metadata: { airlock_decision: decision.id } },
    { idempotencyKey: `airlock-${decision.id}` },
  );
  console.log(`refunded ${refund.id} ${refund.amount}`);
} else {
  console.log(`not refunded: ${decision.status}`);
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}
