// The SDK, imported through its package entry (`airlock/sdk`), against a real Airlock server.
import {
  AirlockApiError,
  AirlockClient,
  type CallbackEvent,
  type Decision,
  verifyWebhook,
  WebhookVerificationError,
} from 'airlock/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import {
  ACTIONS_POLICY,
  ACTIONS_ROUTES,
  rejection,
  type Stack,
  startStackWithPolicy,
  until,
} from '../helpers/stack.ts';

const SECRET = 'whsec_sdk_test_0123456789abcdef';
let stack: Stack;
let upstream: Receiver;
let hooks: Receiver;
let agent: AirlockClient;
let reviewer: AirlockClient;

beforeAll(async () => {
  upstream = await startReceiver();
  hooks = await startReceiver();
  stack = await startStackWithPolicy(ACTIONS_POLICY, {
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([
      { host: '127.0.0.1', allow_private: true, routes: ACTIONS_ROUTES },
    ]),
    AIRLOCK_CALLBACK_SECRET: SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_BACKOFF_MS: '20',
    AIRLOCK_CALLBACK_POLL_MS: '20',
  });
  agent = new AirlockClient({ baseUrl: stack.airlock.url, apiKey: stack.agentKey });
  reviewer = new AirlockClient({ baseUrl: stack.airlock.url, apiKey: stack.reviewerToken });
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await hooks?.close();
});

describe('actions (SafeFetch-style)', () => {
  it('holds a refund call, runs it once after approval, and the signed callback verifies with verifyWebhook', async () => {
    upstream.respond = () => ({ status: 200, body: { id: 'rf_sdk_1', status: 'refunded' } });
    const before = upstream.received.length;
    const held = await agent.actions.create({
      url: `${upstream.url}/refunds`,
      method: 'POST',
      body: { order: 42, amount: 60000 },
      kind: 'refund.create',
      amount: 60000,
      currency: 'usd',
      approve: true,
      callback: `${hooks.url}/airlock`,
    });
    expect(held.status).toBe('awaiting_approval');
    expect(held.id).toMatch(/^act_/);
    // Every create carries an idempotency key, generated when the caller gave none.
    expect(held.idempotency_key).toMatch(/^sdk_/);
    expect(upstream.received.length).toBe(before);

    const approved = await reviewer.reviews.approve(held.id, { note: 'customer verified' });
    expect(approved.status).not.toBe('awaiting_approval');

    const done = await agent.actions.wait(held.id, { timeoutSeconds: 10 });
    expect(done.status).toBe('completed');
    expect(done.response_code).toBe(200);
    expect(done.response_body).toEqual({ id: 'rf_sdk_1', status: 'refunded' });
    expect(upstream.received.length).toBe(before + 1);

    const hook = await until(() => hooks.received.find((h) => h.body.includes(held.id)));
    const event: CallbackEvent = verifyWebhook(hook.body, hook.headers['airlock-signature'], SECRET);
    expect(event.id).toMatch(/^evt_/);
    expect(event.type).toBe('action.completed');
    const object = event.data.object as { id: string; status: string; response_body: unknown };
    expect(object.id).toBe(held.id);
    expect(object.status).toBe('completed');
    expect(object.response_body).toEqual({ id: 'rf_sdk_1', status: 'refunded' });

    // The same delivery with another secret, or a body changed by one byte, does not verify.
    expect(() => verifyWebhook(hook.body, hook.headers['airlock-signature'], `${SECRET}x`)).toThrow(
      WebhookVerificationError,
    );
    expect(() =>
      verifyWebhook(hook.body.replace('completed', 'completes'), hook.headers['airlock-signature'], SECRET),
    ).toThrow(/does not match/);
  });

  it('returns the same action for the same idempotency key and lists it', async () => {
    upstream.respond = () => ({ status: 200, body: { order: 7 } });
    const req = { url: `${upstream.url}/orders/7`, method: 'GET' as const, kind: 'order.lookup' };
    const first = await agent.actions.create({ ...req, idempotency_key: 'sdk-order-7' });
    const again = await agent.actions.create({ ...req, idempotency_key: 'sdk-order-7' });
    expect(first.status).toBe('completed');
    expect(again.id).toBe(first.id);
    const list = await agent.actions.list({ limit: 100 });
    expect(list.data.map((a) => a.id)).toContain(first.id);
    expect((await agent.actions.get(first.id)).response_body).toEqual({ order: 7 });
  });

  it('lets the agent cancel its own held action, and refuses a reviewer call made with an agent key', async () => {
    const held = await agent.actions.create({ url: `${upstream.url}/x`, approve: true });
    const err = await rejection(agent.reviews.approve(held.id));
    expect(err).toBeInstanceOf(AirlockApiError);
    expect(err.status).toBe(403);
    expect(err.code).toBe('forbidden');
    const cancelled = await agent.actions.cancel(held.id);
    expect(cancelled.status).toBe('cancelled');
  });

  it('raises AirlockApiError naming the field for a bad request', async () => {
    const err = await rejection(agent.actions.create({ url: `${upstream.url}/x`, amount: -5 }));
    expect(err).toBeInstanceOf(AirlockApiError);
    expect(err.status).toBe(400);
    expect(err.param).toBe('amount');
  });
});

describe('decisions (Cheqpoint- and Axiru-style)', () => {
  it('requestSync: the caller waiting on a decision receives modified_details when the reviewer approves 50%', async () => {
    const asking = agent.decisions.create({
      intent: { kind: 'refund.create', amount: 90000, currency: 'usd', metadata: { order: 'ord_sdk_9' } },
      summary: 'Refund order 9',
      justification: 'Arrived broken',
      idempotency_key: 'cheq-ord-9',
      wait: 20,
    });
    // The reviewer decides while the caller's request is still waiting.
    const id = await findHeldDecision('cheq-ord-9');
    const approved = await reviewer.reviews.approve(id, { note: 'half now', changes: { amount: 45000 } });
    expect(approved.status).toBe('approved');

    const decision: Decision = await asking;
    expect(decision.id).toBe(id);
    expect(decision.status).toBe('approved');
    expect(decision.reason_code).toBe('reviewer_approved');
    expect(decision.modified_details).toEqual({ amount: 45000 });
    expect(decision.decision_note).toBe('half now');
  });

  it('returns the same decision for a retried idempotency key, and a 409 for a different intent', async () => {
    const req = {
      intent: { kind: 'refund.create', amount: 70000, currency: 'usd' },
      idempotency_key: 'axiru-ord-11',
    };
    const first = await agent.decisions.create(req);
    expect(first.outcome).toBe('review');
    expect(first.status).toBe('awaiting_approval');
    const again = await agent.decisions.create(req);
    expect(again.id).toBe(first.id);
    expect(again.outcome).toBe(first.outcome);
    const err = await rejection(agent.decisions.create({ ...req, intent: { ...req.intent, amount: 71000 } }));
    expect(err).toBeInstanceOf(AirlockApiError);
    expect(err.status).toBe(409);
    expect(err.param).toBe('idempotency_key');

    await reviewer.reviews.reject(first.id, { note: 'not eligible' });
    const decided = await agent.decisions.wait(first.id, { timeoutSeconds: 5 });
    expect(decided.status).toBe('rejected');
    expect(decided.decision_note).toBe('not eligible');
  });

  it('answers an allowed intent at once and a blocked one with block', async () => {
    const allowed = await agent.decisions.create({
      intent: { kind: 'refund.create', amount: 1000, currency: 'usd' },
    });
    expect(allowed.outcome).toBe('allow');
    expect(allowed.status).toBe('approved');
    const blocked = await agent.decisions.create({
      intent: { kind: 'payout.create', amount: 1000, currency: 'usd' },
    });
    expect(blocked.outcome).toBe('block');
    expect(blocked.status).toBe('blocked');
  });
});

/** The held decision with this idempotency key, once the waiting request has created it. */
async function findHeldDecision(key: string): Promise<string> {
  const end = Date.now() + 5000;
  for (;;) {
    const list = await reviewer.actions.list({ status: 'awaiting_approval', limit: 100 });
    const found = list.data.find((a) => a.idempotency_key === key);
    if (found) return found.id;
    if (Date.now() > end) throw new Error(`no held decision with key ${key}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
