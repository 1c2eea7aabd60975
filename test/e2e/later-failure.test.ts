// Issue 18, reconciliation, with the built-in sandbox sending its own signed events: a refund an agent made with the
// official `stripe` client through Airlock's proxy, naming its callback with Airlock-Callback, on Stripe's
// refund-fail test card (`tok_refundFail`). It completes (action.completed called back), then the sandbox fails it
// (refund.updated, charge.refund.updated, refund.failed, `request.id` null): the engine moves the action to failed
// with one ledger event action.failed_upstream, the receipt shows failed and why, and one action.failed callback is
// delivered, signed, to a real local receiver. A raw-key refund carrying the action's tag that fails too changes
// nothing. A payout made the same way that the sandbox fails (payout.failed) moves to failed once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { SIGNATURE_HEADER, verifyWebhook } from '../../src/sdk/webhooks.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { about, receivedFromSandbox } from '../helpers/sandbox-events.ts';
import { type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';
import { actions, ledger } from '../helpers/store-reads.ts';
import { FormClient, PASSWORD } from '../review/helpers.ts';

const CALLBACK_SECRET = 'airlock_test_callback_secret';

let stack: Stack;
let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
  stack = await startStackWithPolicy(
    ['default: allow'],
    {
      AIRLOCK_CALLBACK_SECRET: CALLBACK_SECRET,
      AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
      AIRLOCK_CALLBACK_POLL_MS: '50',
    },
    { builtInSandbox: true },
  );
});
afterAll(async () => {
  await stack?.close();
  await receiver?.close();
});

/** The three events the sandbox sends when a refund fails, once Airlock has stored each. */
async function refundFailureReceived(refundId: string) {
  for (const type of ['refund.updated', 'charge.refund.updated', 'refund.failed'])
    await receivedFromSandbox(stack, type, (o) => o['id'] === refundId && o['status'] === 'failed');
}

const callbacksOf = (path: string, type: string) =>
  receiver.received.filter((r) => r.url === path && JSON.parse(r.body).type === type);

describe('a refund that completed and then failed upstream, as the sandbox reports it', () => {
  it('shows failed on the receipt, with one ledger event and its callback delivered', async () => {
    const ch = await stack.direct.charges.create({
      amount: 10_000,
      currency: 'usd',
      source: 'tok_refundFail',
    });
    // The agent's own call: the official client through Airlock's proxy, naming its callback in a header.
    const made = await stack.agent.refunds.create(
      { charge: ch.id, amount: 2500 },
      { headers: { 'Airlock-Callback': `${receiver.url}/airlock` } },
    );
    expect(made.status).toBe('succeeded');
    const completed = await until(() => callbacksOf('/airlock', 'action.completed')[0]);
    const action = verifyWebhook(completed.body, completed.headers[SIGNATURE_HEADER], CALLBACK_SECRET).data
      .object as { id: string; status: string };
    expect(action.status).toBe('completed');
    const done = await stack.airlock.engine.get(action.id);
    const refund = JSON.parse(done.response_body!) as { id: string; status: string };
    expect(refund.id).toBe(made.id);

    // The action's tag copied onto a raw-key refund on another refund-fail charge: it fails too, about another
    // object, so it must change nothing of the action (and is itself money moved outside Airlock).
    const other = await stack.direct.charges.create({
      amount: 10_000,
      currency: 'usd',
      source: 'tok_refundFail',
    });
    const copied = await stack.direct.refunds.create({
      charge: other.id,
      amount: 2500,
      metadata: { airlock_action: action.id },
    });
    expect((await receivedFromSandbox(stack, 'refund.created', about(copied.id))).row.origin).toBe('outside');

    // Stripe's automation, now rather than in 2 s: both refunds fail.
    expect(stack.sandbox.runAutomation()).toBe(2);
    await refundFailureReceived(copied.id);
    await refundFailureReceived(refund.id);

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

    // Three events reported the one failure: one ledger event, about the action's own refund.
    const failed = await ledger(
      stack.airlock.store,
      (e) => e.action_id === action.id && e.type === 'action.failed_upstream',
    );
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ from_status: 'completed', to_status: 'failed', actor: 'stripe' });
    expect(JSON.parse(failed[0]!.data)).toMatchObject({ object: refund.id, status: 'failed' });
    expect((await verifyLedger(stack.airlock.store)).problems).toEqual([]);

    const callback = await until(() => callbacksOf('/airlock', 'action.failed')[0]);
    const verified = verifyWebhook(callback.body, callback.headers[SIGNATURE_HEADER], CALLBACK_SECRET);
    expect(verified.data.object).toMatchObject({ id: action.id, status: 'failed' });
    expect(callbacksOf('/airlock', 'action.failed')).toHaveLength(1);
  });

  it('fails a refund an agent made through the proxy with no callback', async () => {
    const ch = await stack.direct.charges.create({
      amount: 8_000,
      currency: 'usd',
      source: 'tok_refundFail',
    });
    const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 3_000 });
    expect(refund.status).toBe('succeeded');
    const [action] = await actions(stack.airlock.store, (a) => a.response_body?.includes(refund.id) ?? false);
    expect(action?.status).toBe('completed');
    expect(stack.sandbox.runAutomation()).toBe(1);
    await refundFailureReceived(refund.id);
    const receipt = await stack.api(`/api/actions/${action!.id}`);
    expect(receipt.body).toMatchObject({ status: 'failed' });
    expect(receipt.body.last_error).toContain(`${refund.id} failed after it completed`);
  });

  it('moves a completed payout that the sandbox then fails to failed, once', async () => {
    const made = await stack.agent.payouts.create(
      { amount: 7000, currency: 'usd' },
      { headers: { 'Airlock-Callback': `${receiver.url}/payouts` } },
    );
    const [action] = await actions(stack.airlock.store, (a) => a.response_body?.includes(made.id) ?? false);
    expect(action?.status).toBe('completed');
    const payout = JSON.parse(action!.response_body!) as { id: string };
    expect(payout.id).toMatch(/^po_/);
    stack.sandbox.failPayout(payout.id);
    for (const type of ['payout.updated', 'payout.failed'])
      await receivedFromSandbox(stack, type, (o) => o['id'] === payout.id && o['status'] === 'failed');
    const row = await stack.airlock.store.getAction(action!.id);
    expect(row?.status).toBe('failed');
    expect(row?.last_error).toContain('account_closed');
    const failed = await ledger(
      stack.airlock.store,
      (e) => e.action_id === action!.id && e.type === 'action.failed_upstream',
    );
    expect(failed).toHaveLength(1);
    const callback = await until(() => callbacksOf('/payouts', 'action.failed')[0]);
    expect(
      verifyWebhook(callback.body, callback.headers[SIGNATURE_HEADER], CALLBACK_SECRET).data.object,
    ).toMatchObject({ id: action!.id, status: 'failed' });
    expect(callbacksOf('/payouts', 'action.failed')).toHaveLength(1);
  });
});
