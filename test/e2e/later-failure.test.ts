// Issue 18, reconciliation: a refund Airlock completed that Stripe later reports failed (a signed refund.failed
// event about that very refund) moves the action to failed through the engine, with a ledger event
// action.failed_upstream, the receipt showing failed and why, and its callback delivered, signed, to a real local
// receiver. A redelivery changes nothing more; an event about another refund carrying the action's tag changes
// nothing at all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { newId } from '../../src/ids.ts';
import { SIGNATURE_HEADER, verifyWebhook } from '../../src/sdk/webhooks.ts';
import { classify } from '../../src/stripe/classify.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { charge, type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';
import { deliver, WEBHOOK_SECRET } from '../helpers/stripe-events.ts';
import { FormClient, PASSWORD } from '../review/helpers.ts';

const CALLBACK_SECRET = 'airlock_test_callback_secret';

let stack: Stack;
let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
  stack = await startStackWithPolicy(['default: allow'], {
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    AIRLOCK_CALLBACK_SECRET: CALLBACK_SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_POLL_MS: '50',
  });
});
afterAll(async () => {
  await stack?.close();
  await receiver?.close();
});

function failedEvent(refund: { id: string; amount: number }, actionId: string) {
  return {
    id: newId('evt'),
    object: 'event',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    type: 'refund.failed',
    data: {
      object: {
        id: refund.id,
        object: 'refund',
        amount: refund.amount,
        currency: 'usd',
        status: 'failed',
        failure_reason: 'expired_or_canceled_card',
        metadata: { airlock_action: actionId },
      },
      previous_attributes: { status: 'succeeded' },
    },
    // Stripe's own doing: no request.
    request: { id: null, idempotency_key: null },
  };
}

describe('a refund that completed and then failed upstream', () => {
  it('shows failed on the receipt, with its ledger event and its callback delivered', async () => {
    const ch = await charge(stack, 10_000);
    const params = { charge: ch.id, amount: '2500' };
    const { action } = await stack.airlock.engine.submit({
      agent: null,
      method: 'POST',
      path: '/v1/refunds',
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: null,
      classification: { ...classify({ method: 'POST', path: '/v1/refunds', params }), currency: 'usd' },
      callbackUrl: `${receiver.url}/airlock`,
    });
    const done = await stack.airlock.engine.waitFor(action.id, (s) => s === 'completed', 10_000);
    const refund = JSON.parse(done.response_body!) as { id: string; amount: number };
    await until(() => receiver.received.find((r) => JSON.parse(r.body).type === 'action.completed'));

    // The action's tag on another refund: not this action's object, so nothing happens.
    const copied = failedEvent({ id: newId('re'), amount: 2500 }, action.id);
    expect((await deliver(stack.airlock.url, JSON.stringify(copied))).status).toBe(200);
    expect((await stack.airlock.store.getAction(action.id))?.status).toBe('completed');

    const event = failedEvent(refund, action.id);
    expect((await deliver(stack.airlock.url, JSON.stringify(event))).status).toBe(200);

    const receipt = await stack.api(`/api/actions/${action.id}`);
    expect(receipt.body).toMatchObject({ id: action.id, status: 'failed' });
    expect(receipt.body.last_error).toContain(`${refund.id} failed after it completed`);
    expect(receipt.body.last_error).toContain('expired_or_canceled_card');
    // The dashboard's receipt, as a reviewer opens it.
    await createReviewer(stack.airlock.store, 'auditor@example.com', {
      passwordHash: await hashPassword(PASSWORD),
    });
    const browser = new FormClient(stack.airlock.url);
    expect(await browser.logIn('auditor@example.com')).toBe(303);
    const page = await browser.request(`/review/actions/${action.id}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('<span class="badge s-failed">failed</span>');
    expect(page.text).toContain('action.failed_upstream');
    expect(page.text).toContain(`${refund.id} failed after it completed`);

    const events = await ledger(stack.airlock.store, (e) => e.action_id === action.id);
    const failed = events.filter((e) => e.type === 'action.failed_upstream');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ from_status: 'completed', to_status: 'failed', actor: 'stripe' });
    expect(JSON.parse(failed[0]!.data)).toMatchObject({
      event: event.id,
      object: refund.id,
      status: 'failed',
    });
    expect((await verifyLedger(stack.airlock.store)).problems).toEqual([]);

    const callback = await until(() =>
      receiver.received.find((r) => JSON.parse(r.body).type === 'action.failed'),
    );
    const verified = verifyWebhook(callback.body, callback.headers[SIGNATURE_HEADER], CALLBACK_SECRET);
    expect(verified.data.object).toMatchObject({ id: action.id, status: 'failed' });

    // Stripe delivers it again, and sends refund.updated too: still one failure, one callback.
    await deliver(stack.airlock.url, JSON.stringify(event));
    await deliver(stack.airlock.url, JSON.stringify({ ...event, id: newId('evt'), type: 'refund.updated' }));
    expect(
      (await ledger(stack.airlock.store, (e) => e.action_id === action.id)).filter(
        (e) => e.type === 'action.failed_upstream',
      ),
    ).toHaveLength(1);
    const callbacks = await stack.api(`/api/actions/${action.id}`);
    expect(callbacks.body.status).toBe('failed');
    expect(receiver.received.filter((r) => JSON.parse(r.body).type === 'action.failed')).toHaveLength(1);
  });

  it('moves a completed payout that Stripe later reports failed to failed, once', async () => {
    const params = { amount: '7000', currency: 'usd' };
    const { action } = await stack.airlock.engine.submit({
      agent: null,
      method: 'POST',
      path: '/v1/payouts',
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: null,
      classification: classify({ method: 'POST', path: '/v1/payouts', params }),
      callbackUrl: `${receiver.url}/payouts`,
    });
    const done = await stack.airlock.engine.waitFor(action.id, (s) => s === 'completed', 10_000);
    const payout = JSON.parse(done.response_body!) as { id: string };
    expect(payout.id).toMatch(/^po_/);
    const event = {
      id: newId('evt'),
      object: 'event',
      created: Math.floor(Date.now() / 1000),
      type: 'payout.failed',
      data: {
        object: {
          id: payout.id,
          object: 'payout',
          amount: 7000,
          currency: 'usd',
          status: 'failed',
          failure_code: 'account_closed',
          metadata: { airlock_action: action.id },
        },
      },
      request: { id: null, idempotency_key: null },
    };
    expect((await deliver(stack.airlock.url, JSON.stringify(event))).status).toBe(200);
    expect((await deliver(stack.airlock.url, JSON.stringify(event))).body.duplicate).toBe(true);
    const row = await stack.airlock.store.getAction(action.id);
    expect(row?.status).toBe('failed');
    expect(row?.last_error).toContain('account_closed');
    const failed = await ledger(
      stack.airlock.store,
      (e) => e.action_id === action.id && e.type === 'action.failed_upstream',
    );
    expect(failed).toHaveLength(1);
    const callback = await until(() =>
      receiver.received.find((r) => r.url === '/payouts' && JSON.parse(r.body).type === 'action.failed'),
    );
    expect(
      verifyWebhook(callback.body, callback.headers[SIGNATURE_HEADER], CALLBACK_SECRET).data.object,
    ).toMatchObject({
      id: action.id,
      status: 'failed',
    });
  });
});
