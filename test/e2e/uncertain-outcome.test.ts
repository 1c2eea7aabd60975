// When an attempt's answer is lost, Airlock asks Stripe by metadata[airlock_action] before it calls anything failed.
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRow } from '../../src/store/store.ts';
import { reconcile } from '../../src/stripe/reconcile.ts';
import { StripeUpstream } from '../../src/stripe/upstream.ts';
import { actionRow } from '../helpers/action-row.ts';
import { charge, rejection, type Stack, startStack } from '../helpers/stack.ts';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

function actionLike(id: string, params: Record<string, unknown>): ActionRow {
  return actionRow({ id, params: JSON.stringify(params) });
}

describe('reconciliation by metadata', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  it('finds the refund an action made, says absent for one it did not, and unknown when Stripe is unreachable', async () => {
    const ch = await charge(stack, 5000);
    const made = await stack.direct.refunds.create({
      charge: ch.id,
      amount: 700,
      metadata: { airlock_action: 'act_made' },
    });
    const upstream = new StripeUpstream(stack.sandbox.url, 'sk_test_x');
    const found = await reconcile(upstream, actionLike('act_made', { charge: ch.id, amount: '700' }));
    expect(found.kind).toBe('found');
    expect(found.kind === 'found' && found.object['id']).toBe(made.id);
    expect((await reconcile(upstream, actionLike('act_never', { charge: ch.id, amount: '700' }))).kind).toBe(
      'absent',
    );
    await upstream.close();
    const dead = new StripeUpstream(`http://127.0.0.1:${await closedPort()}`, 'sk_test_x');
    expect((await reconcile(dead, actionLike('act_made', { charge: ch.id }))).kind).toBe('unknown');
    await dead.close();
  });
});

describe('an upstream that cannot be reached at all', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ STRIPE_API_BASE: `http://127.0.0.1:${await closedPort()}` });
  });
  afterAll(async () => {
    await stack.close();
  });

  it('marks the action failed with last_error once the budget runs out, since nothing was ever sent', async () => {
    const ch = await charge(stack, 5000);
    // The charge cannot be looked up, so the refund's dollar amount is unknown and the default holds it.
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 1000 }));
    expect(err.code).toBe('approval_required');
    const id = err.raw.airlock_action;
    await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    const action = (await stack.api(`/api/actions/${id}?wait=10`)).body;
    expect(action.status).toBe('failed');
    expect(action.attempts).toBe(4);
    expect(action.last_error).toMatch(/unreachable: ECONNREFUSED/);
    expect(action.last_error).toMatch(/gave up after 4 attempts/);
  });
});
