// Security boundaries an operator controls: per-key rate limits, the kill switch (freeze) and key revocation.
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createAgentKey } from '../../src/auth/credentials.ts';
import { cli } from '../helpers/process.ts';
import { charge, rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';

let stack: Stack;
afterEach(async () => {
  await stack?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cliEnv = () => ({ AIRLOCK_DATA: join(stack.dir, 'airlock.db') });

it('answers a Stripe-shaped 429 with Retry-After once a key passes its per-minute limit, per key', async () => {
  stack = await startStack({ AIRLOCK_RATE_LIMIT_PER_MINUTE: '5' });
  for (let i = 0; i < 5; i++) await stack.agent.balance.retrieve();
  const err = await rejection(stack.agent.balance.retrieve());
  expect(err.type).toBe('StripeRateLimitError');
  expect(err.statusCode).toBe(429);
  expect(err.code).toBe('rate_limit');
  expect(Number(err.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(Number(err.headers['retry-after'])).toBeLessThanOrEqual(12);
  // The agent APIs share the key's bucket.
  const api = await stack.api('/api/actions', { token: stack.agentKey });
  expect(api.status).toBe(429);
  expect(api.body.error.code).toBe('rate_limit');
  // Another key has its own bucket, and reviewers are not limited.
  const other = await createAgentKey(stack.airlock.store, 'other-bot');
  await stripeAt(other.key, stack.airlock.port).balance.retrieve();
  for (let i = 0; i < 8; i++) expect((await stack.api('/api/actions')).status).toBe(200);
});

it('freezes writes for one agent from the CLI: blocked and recorded, reads still served, others unaffected', async () => {
  stack = await startStack();
  const other = await createAgentKey(stack.airlock.store, 'other-bot');
  const otherAgent = stripeAt(other.key, stack.airlock.port);
  const ch = await charge(stack, 5000);
  const held = await rejection(stack.agent.refunds.create({ charge: (await charge(stack, 70000)).id }));
  expect(held.code).toBe('approval_required');

  const frozen = await cli(['freeze', '--agent', 'support-bot', '--reason', 'incident 42'], cliEnv());
  expect(frozen.code).toBe(0);
  await sleep(1100); // the engine's freeze cache
  const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 1000 }));
  expect(err.code).toBe('action_blocked');
  expect(err.message).toContain('Frozen');
  expect(err.message).toContain('incident 42');
  const action = await stack.api(`/api/actions/${err.raw.airlock_action}`);
  expect(action.body.status).toBe('blocked');
  expect(stack.sandbox.list('refund')).toHaveLength(0);
  // A held write cannot be approved into execution while its agent is frozen.
  const approve = await stack.api(`/api/actions/${held.raw.airlock_action}/approve`, {
    method: 'POST',
    body: {},
  });
  expect(approve.status).toBe(403);
  expect(approve.body.error.code).toBe('action_blocked');
  expect((await stack.api(`/api/actions/${held.raw.airlock_action}`)).body.status).toBe('awaiting_approval');
  // Reads move no money and still work; another agent still writes.
  expect((await stack.agent.charges.retrieve(ch.id)).id).toBe(ch.id);
  const refund = await otherAgent.refunds.create({ charge: ch.id, amount: 1000 });
  expect(refund.status).toBe('succeeded');

  expect((await cli(['freezes', '--json'], cliEnv())).stdout).toContain('support-bot');
  expect((await cli(['unfreeze', '--agent', 'support-bot'], cliEnv())).code).toBe(0);
  await sleep(1100);
  expect((await stack.agent.refunds.create({ charge: ch.id, amount: 1000 })).status).toBe('succeeded');
  expect(stack.sandbox.list('refund')).toHaveLength(2);
});

it('freezes every agent with `airlock freeze` and names an unknown agent', async () => {
  stack = await startStack();
  const other = await createAgentKey(stack.airlock.store, 'other-bot');
  const ch = await charge(stack, 5000);
  expect((await cli(['freeze'], cliEnv())).code).toBe(0);
  await sleep(1100);
  for (const client of [stack.agent, stripeAt(other.key, stack.airlock.port)]) {
    const err = await rejection(client.refunds.create({ charge: ch.id, amount: 1000 }));
    expect(err.code).toBe('action_blocked');
    expect(err.message).toContain('frozen for every agent');
  }
  const unknown = await cli(['freeze', '--agent', 'nobody'], cliEnv());
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain("No agent named 'nobody'");
  expect((await cli(['unfreeze'], cliEnv())).code).toBe(0);
  await sleep(1100);
  expect((await stack.agent.refunds.create({ charge: ch.id, amount: 1000 })).status).toBe('succeeded');
});

it('refuses a revoked agent key on the API and the proxy', async () => {
  stack = await startStack();
  const created = JSON.parse(
    (await cli(['keys', 'create', '--agent', 'temp-bot', '--json'], cliEnv())).stdout,
  );
  expect((await stack.api('/api/actions', { token: created.key })).status).toBe(200);
  const revoked = await cli(['keys', 'revoke', created.id], cliEnv());
  expect(revoked.code).toBe(0);
  expect((await stack.api('/api/actions', { token: created.key })).status).toBe(401);
  const err = await rejection(stripeAt(created.key, stack.airlock.port).balance.retrieve());
  expect(err.statusCode).toBe(401);
  expect((await cli(['keys', 'revoke', created.id], cliEnv())).code).toBe(1);
});
