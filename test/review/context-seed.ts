// A customer with a past, for the tests of what a reviewer sees beside a hold (issue 19, section 5): an earlier
// refund through Airlock, a disputed charge, and a charge partly refunded at Stripe that the agent now refunds more of.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAgentKey } from '../../src/auth/credentials.ts';
import { tempDir } from '../helpers/stack.ts';
import { type ReviewStack, startReviewStack } from './helpers.ts';

export const RULE_NAME = 'Refund over $500';

export const CONTEXT_POLICY = `
timezone: UTC
default: review
expires_in: 72h
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - name: ${RULE_NAME}
    rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
`;

export const REASON = 'Parcel never arrived; carrier confirmed the loss (ticket SUP-5120)';

/** A review stack (alice, bob, carol) under CONTEXT_POLICY, with `env` added. */
export async function startContextStack(env: Record<string, string> = {}): Promise<ReviewStack> {
  const dir = tempDir();
  const policy = join(dir, 'context-policy.yaml');
  writeFileSync(policy, CONTEXT_POLICY);
  return startReviewStack({ AIRLOCK_POLICY: policy, ...env });
}

export interface SeededCustomer {
  customer: string;
  /** The charge the held refund is about: $700, $100 of it already refunded at Stripe. */
  charge: string;
}

const YEAR_S = Math.round(365.25 * 86_400);

/**
 * Jane, a customer for two years: a $120 charge of which the agent refunded $50 through Airlock, an $80 charge she
 * disputed, and a $700 charge of which $100 was refunded at Stripe directly.
 */
export async function seedCustomer(
  stack: ReviewStack,
  who: { name: string; email: string } = { name: 'Jane Doe', email: 'jane@example.com' },
): Promise<SeededCustomer> {
  const cus = await stack.direct.customers.create(who);
  stack.sandbox.backdate(cus.id, { created: Math.floor(Date.now() / 1000) - 2 * YEAR_S - 20 * 86_400 });
  const earlier = await stack.direct.charges.create({
    amount: 12_000,
    currency: 'usd',
    source: 'tok_visa',
    customer: cus.id,
  });
  const refund = await stack.agent.refunds.create({ charge: earlier.id, amount: 5_000 });
  if (refund.status !== 'succeeded') throw new Error(`the earlier refund did not complete: ${refund.status}`);
  await stack.direct.charges.create({
    amount: 8_000,
    currency: 'usd',
    source: 'tok_createDispute',
    customer: cus.id,
  });
  const now = await stack.direct.charges.create({
    amount: 70_000,
    currency: 'usd',
    source: 'tok_visa',
    customer: cus.id,
  });
  await stack.direct.refunds.create({ charge: now.id, amount: 10_000 });
  return { customer: cus.id, charge: now.id };
}

/** An agent's raw call to the proxy, with headers the official client cannot send (Airlock-Reason). */
export async function proxyCall(
  stack: ReviewStack,
  path: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; action: string | null }> {
  const key = await agentKeyOf(stack);
  const res = await fetch(`${stack.airlock.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/x-www-form-urlencoded',
      ...headers,
    },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, body: await res.json(), action: res.headers.get('airlock-action') };
}

const keys = new WeakMap<ReviewStack, string>();

/** One agent key per stack for raw calls (the stack's own client keeps its key to itself). */
export async function agentKeyOf(stack: ReviewStack): Promise<string> {
  const known = keys.get(stack);
  if (known) return known;
  const { key } = await createAgentKey(stack.airlock.store, 'refund-bot');
  keys.set(stack, key);
  return key;
}

/** Asks for a $600 refund of the seeded charge with a stated reason; returns the held action's id. */
export async function holdWithReason(
  stack: ReviewStack,
  seeded: SeededCustomer,
  reason = REASON,
): Promise<string> {
  const res = await proxyCall(
    stack,
    '/v1/refunds',
    { charge: seeded.charge, amount: '60000' },
    { 'airlock-reason': reason },
  );
  if (res.body?.error?.code !== 'approval_required' || !res.action)
    throw new Error(`expected a hold, got ${res.status} ${JSON.stringify(res.body)}`);
  return res.action;
}
