// An agent using the official `stripe` client through Airlock: only the host and the key change.
// AIRLOCK_URL=http://127.0.0.1:4700 AIRLOCK_AGENT_KEY=ak_… CHARGE=ch_… npx tsx examples/stripe-agent.ts
import { AirlockClient } from 'airlock/sdk';
import Stripe from 'stripe';

const airlockUrl = new URL(process.env['AIRLOCK_URL'] ?? 'http://127.0.0.1:4700');
const agentKey = required('AIRLOCK_AGENT_KEY');
const charge = required('CHARGE');

const stripe = new Stripe(agentKey, {
  host: airlockUrl.hostname,
  port: Number(airlockUrl.port || 80),
  protocol: airlockUrl.protocol === 'https:' ? 'https' : 'http',
});

// $20 is within the starter policy: Stripe's refund comes straight back.
const small = await stripe.refunds.create({ charge, amount: 2000 });
console.log(`allowed ${small.id} ${small.status}`);

// $600 is held for a person. Keep the Idempotency-Key: the same request later returns the executed refund.
const idempotencyKey = `refund-${charge}-60000`;
const big = { charge, amount: 60000 };
try {
  const refund = await stripe.refunds.create(big, { idempotencyKey });
  console.log(`allowed ${refund.id}`);
} catch (err) {
  if (!(err instanceof Stripe.errors.StripePermissionError && err.code === 'approval_required')) throw err;
  const actionId = (err.raw as { airlock_action: string }).airlock_action;
  console.log(`held ${actionId}`);
  // Wait for the decision with the SDK (a long poll), then repeat the request to collect Stripe's answer.
  const airlock = new AirlockClient({ baseUrl: airlockUrl.origin, apiKey: agentKey });
  const settled = await airlock.actions.wait(actionId, { timeoutSeconds: 120 });
  console.log(`decided ${settled.status}`);
  if (settled.status === 'completed') {
    const refund = await stripe.refunds.create(big, { idempotencyKey });
    console.log(`executed ${refund.id} ${refund.amount}`);
  }
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}
