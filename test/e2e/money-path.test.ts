// The core money path, end to end: the official `stripe` client → Airlock (real server, real SQLite file) → sandbox.
import Stripe from 'stripe';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { charge, rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});
beforeEach(() => {
  stack.sandbox.clearFaults();
});

function refundRequests(): number {
  return stack.sandbox.requests().filter((r) => r.method === 'POST' && r.path === '/v1/refunds').length;
}

describe('allowed writes', () => {
  it('forwards a $20 refund and returns the sandbox refund object', async () => {
    const ch = await charge(stack, 5000);
    const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 2000 });
    expect(refund.object).toBe('refund');
    expect(refund.id).toMatch(/^re_/);
    expect(refund.amount).toBe(2000);
    const stored = stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id);
    expect(stored).toHaveLength(1);
    expect(stored[0]!['id']).toBe(refund.id);
    // Tagged so an uncertain outcome can be reconciled against Stripe.
    expect((stored[0]!['metadata'] as Record<string, string>)['airlock_action']).toMatch(/^act_/);
  });

  it('passes reads through to the upstream', async () => {
    const ch = await charge(stack, 1234);
    const got = await stack.agent.charges.retrieve(ch.id);
    expect(got.id).toBe(ch.id);
    expect(got.amount).toBe(1234);
  });
});

describe('held writes', () => {
  it('holds a $600 refund with StripePermissionError approval_required, then executes it exactly once after approval', async () => {
    const ch = await charge(stack, 60000);
    const before = refundRequests();
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60000 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(err.code).toBe('approval_required');
    expect(err.statusCode).toBe(403);
    expect(err.headers['stripe-should-retry']).toBe('false');
    const actionId: string = err.raw.airlock_action;
    expect(actionId).toMatch(/^act_/);
    expect(err.message).toContain(actionId);
    expect(refundRequests()).toBe(before); // the sandbox saw nothing

    const held = await stack.api(`/api/actions/${actionId}`);
    expect(held.body.status).toBe('awaiting_approval');
    expect(held.body.kind).toBe('refund.create');
    expect(held.body.amount_usd).toBe(600);
    expect(held.body.decision.outcome).toBe('review');
    expect(held.body.decision.rules.length).toBeGreaterThan(0);

    const approved = await stack.api(`/api/actions/${actionId}/approve`, {
      method: 'POST',
      body: { note: 'customer verified' },
    });
    expect(approved.status).toBe(200);
    const done = await stack.api(`/api/actions/${actionId}?wait=10`);
    const final =
      done.body.status === 'completed'
        ? done.body
        : (await stack.api(`/api/actions/${actionId}?wait=10`)).body;
    expect(final.status).toBe('completed');
    expect(final.response_code).toBe(200);
    expect(final.response_body.object).toBe('refund');
    expect(final.approvals).toEqual([
      expect.objectContaining({
        reviewer: 'finance@example.com',
        decision: 'approve',
        note: 'customer verified',
      }),
    ]);

    const refunds = stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]!['amount']).toBe(60000);
    expect((refunds[0]!['metadata'] as Record<string, string>)['airlock_action']).toBe(actionId);
    const calls = stack.sandbox.requests().filter((r) => r.idempotencyKey === `airlock-${actionId}`);
    expect(calls).toHaveLength(1);
  });

  it('never sends a rejected action upstream', async () => {
    const ch = await charge(stack, 90000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 90000 }));
    const actionId: string = err.raw.airlock_action;
    const rejected = await stack.api(`/api/actions/${actionId}/reject`, {
      method: 'POST',
      body: { note: 'looks wrong' },
    });
    expect(rejected.body.status).toBe('rejected');
    // A second decision is refused, and the action stays rejected.
    const again = await stack.api(`/api/actions/${actionId}/approve`, { method: 'POST', body: {} });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('already_decided');
    await new Promise((r) => setTimeout(r, 200)); // give a wrongly woken dispatcher time to act
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
    expect(stack.sandbox.requests().some((r) => r.idempotencyKey === `airlock-${actionId}`)).toBe(false);
    expect((await stack.api(`/api/actions/${actionId}`)).body.status).toBe('rejected');
  });

  it('Airlock-Wait returns the upstream answer when a reviewer approves within the wait', async () => {
    const ch = await charge(stack, 70000);
    const pending = stack.agent.refunds.create({ charge: ch.id, amount: 70000 }, {
      headers: { 'Airlock-Wait': '10' },
    } as never);
    let actionId: string | undefined;
    for (let i = 0; i < 100 && !actionId; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const list = await stack.api('/api/actions?status=awaiting_approval&limit=100');
      actionId = list.body.data.find((a: any) => a.params.charge === ch.id)?.id;
    }
    expect(actionId).toBeDefined();
    await stack.api(`/api/actions/${actionId}/approve`, { method: 'POST', body: {} });
    const refund = await pending;
    expect(refund.object).toBe('refund');
    expect(refund.amount).toBe(70000);
  });
});

describe('who may decide', () => {
  it('refuses an agent key on the review API', async () => {
    const ch = await charge(stack, 80000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 80000 }));
    const actionId = err.raw.airlock_action;
    const res = await stack.api(`/api/actions/${actionId}/approve`, {
      method: 'POST',
      body: {},
      token: stack.agentKey,
    });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    expect((await stack.api(`/api/actions/${actionId}`)).body.status).toBe('awaiting_approval');
  });

  it('refuses a reviewer credential on the Stripe proxy', async () => {
    const asReviewer = stripeAt(stack.reviewerToken, stack.airlock.port);
    const ch = await charge(stack, 1000);
    const before = refundRequests();
    const err = await rejection(asReviewer.refunds.create({ charge: ch.id, amount: 500 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(refundRequests()).toBe(before);
  });

  it('answers an unknown key with a Stripe-shaped 401', async () => {
    const stranger = stripeAt('ak_notarealkey000000000000000000', stack.airlock.port);
    const err = await rejection(stranger.refunds.create({ charge: 'ch_x', amount: 500 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(err.message).not.toContain('notarealkey000000000000000000');
  });
});

describe('idempotency', () => {
  it('answers a retried allowed refund with the same refund, creating no second action or refund', async () => {
    const ch = await charge(stack, 5000);
    const key = `test-${Date.now()}-allowed`;
    const first = await stack.agent.refunds.create({ charge: ch.id, amount: 1500 }, { idempotencyKey: key });
    const second = await stack.agent.refunds.create({ charge: ch.id, amount: 1500 }, { idempotencyKey: key });
    expect(second.id).toBe(first.id);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
    const actions = (await stack.api('/api/actions?limit=100')).body.data.filter(
      (a: any) => a.idempotency_key === key,
    );
    expect(actions).toHaveLength(1);
  });

  it('answers a retried held refund with the same action and, after approval, the stored refund', async () => {
    const ch = await charge(stack, 65000);
    const key = `test-${Date.now()}-held`;
    const e1 = await rejection(
      stack.agent.refunds.create({ charge: ch.id, amount: 65000 }, { idempotencyKey: key }),
    );
    const e2 = await rejection(
      stack.agent.refunds.create({ charge: ch.id, amount: 65000 }, { idempotencyKey: key }),
    );
    expect(e2.raw.airlock_action).toBe(e1.raw.airlock_action);
    await stack.api(`/api/actions/${e1.raw.airlock_action}/approve`, { method: 'POST', body: {} });
    await stack.api(`/api/actions/${e1.raw.airlock_action}?wait=10`);
    const after1 = await stack.agent.refunds.create(
      { charge: ch.id, amount: 65000 },
      { idempotencyKey: key },
    );
    const after2 = await stack.agent.refunds.create(
      { charge: ch.id, amount: 65000 },
      { idempotencyKey: key },
    );
    expect(after1.id).toBe(after2.id);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
  });

  it('refuses the same Idempotency-Key with different parameters, as Stripe does', async () => {
    const ch = await charge(stack, 5000);
    const key = `test-${Date.now()}-mismatch`;
    await stack.agent.refunds.create({ charge: ch.id, amount: 100 }, { idempotencyKey: key });
    const err = await rejection(
      stack.agent.refunds.create({ charge: ch.id, amount: 200 }, { idempotencyKey: key }),
    );
    expect(err).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
  });
});

describe('upstream faults', () => {
  it('retries upstream 500s with the same key and ends with one refund', async () => {
    const ch = await charge(stack, 5000);
    stack.sandbox.setFaults({ failNext: 2, failStatus: 500, pathPrefix: '/v1/refunds' });
    const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 1000 });
    expect(refund.object).toBe('refund');
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
    const action = (await stack.api('/api/actions?limit=100')).body.data.find(
      (a: any) => a.response_body?.id === refund.id,
    );
    expect(action.status).toBe('completed');
    expect(action.attempts).toBe(3);
  });

  it('does not report failure while Stripe cannot say whether a refund happened, and completes once it can', async () => {
    const ch = await charge(stack, 5000);
    stack.sandbox.setFaults({ down: true, pathPrefix: '/v1/refunds' });
    const agent = stripeAt(stack.agentKey, stack.airlock.port, 0);
    const err = await rejection(agent.refunds.create({ charge: ch.id, amount: 1000 }));
    // Every attempt lost its connection after sending, and the check by metadata could not reach Stripe either.
    expect(err.statusCode).toBe(409);
    expect(err.raw.code).toBe('action_in_progress');
    const actionId = err.raw.airlock_action;
    const held = (await stack.api(`/api/actions/${actionId}`)).body;
    expect(held.status).toBe('pending');
    expect(held.attempts).toBeGreaterThanOrEqual(4);
    expect(held.last_error).toMatch(/outcome unknown/);
    stack.sandbox.clearFaults();
    const done = (await stack.api(`/api/actions/${actionId}?wait=10`)).body;
    expect(done.status).toBe('completed');
    const refunds = stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id);
    expect(refunds).toHaveLength(1);
    expect(done.response_body.id).toBe(refunds[0]!['id']);
  });

  it('returns Stripe’s own 4xx for a refused refund and records the action as failed', async () => {
    const ch = await charge(stack, 1000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 4000 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err.code).toBe('amount_too_large');
  });
});

describe('the ledger', () => {
  it('records every transition of an action in order', async () => {
    const ch = await charge(stack, 60000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60000 }));
    const id = err.raw.airlock_action;
    await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    await stack.api(`/api/actions/${id}?wait=10`);
    const events = (await stack.api(`/api/actions/${id}/events`)).body.data;
    const transitions = events
      .filter((e: any) => e.from !== e.to)
      .map((e: any) => `${e.from ?? '∅'}→${e.to}`);
    expect(transitions).toEqual([
      '∅→received',
      'received→awaiting_approval',
      'awaiting_approval→pending',
      'pending→completed',
    ]);
    expect(events.map((e: any) => e.type)).toContain('dispatch.attempt');
  });
});
