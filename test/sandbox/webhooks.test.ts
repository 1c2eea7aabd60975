import fc from 'fast-check';
import Stripe from 'stripe';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { type Received, type Receiver, startReceiver } from '../helpers/receiver.ts';

const SECRET = 'whsec_test_sandbox_events';

let sandbox: Sandbox;
let stripe: Stripe;
let receiver: Receiver;
let endpoint: { id: string } | null = null;

async function until<T>(fn: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The events the receiver got, checked with the official verifier against `secret`. */
function verified(received: Received[], secret = SECRET): Stripe.Event[] {
  return received.map((r) =>
    stripe.webhooks.constructEvent(r.body, String(r.headers['stripe-signature']), secret),
  );
}

beforeAll(async () => {
  sandbox = await startSandbox({
    webhooks: { backoffMs: 5, maxBackoffMs: 20 },
    refundFailureDelayMs: 60_000,
  });
  stripe = new Stripe('sk_test_hooks', {
    host: '127.0.0.1',
    port: sandbox.port,
    protocol: 'http',
    maxNetworkRetries: 0,
  });
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(async () => {
  receiver = await startReceiver();
});

afterEach(async () => {
  if (endpoint) sandbox.removeWebhookEndpoint(endpoint.id);
  endpoint = null;
  await receiver.close();
});

describe('signed delivery', () => {
  it('delivers every event, in order, signed so that constructEvent accepts it and a wrong secret fails', async () => {
    endpoint = sandbox.addWebhookEndpoint({ url: `${receiver.url}/stripe/webhooks`, secret: SECRET });
    const before = sandbox.events().length;
    const charge = await stripe.charges.create({ amount: 2000, currency: 'usd', source: 'tok_visa' });
    const refund = await stripe.refunds.create(
      { charge: charge.id, amount: 500 },
      { idempotencyKey: 'hook-refund-1' },
    );
    await stripe.payouts.create({ amount: 300, currency: 'usd' });
    const made = sandbox.events().slice(before);
    expect(made.map((e) => e['type'])).toEqual([
      'charge.succeeded',
      'refund.created',
      'charge.refunded',
      'payout.created',
    ]);

    await until(() => receiver.received.length >= made.length, 'all delivered');
    const events = verified(receiver.received);
    expect(events.map((e) => e.id)).toEqual(made.map((e) => e['id']));
    expect(receiver.received.every((r) => r.method === 'POST' && r.url === '/stripe/webhooks')).toBe(true);
    const refundEvent = events.find((e) => e.type === 'refund.created')!;
    expect(refundEvent.request).toEqual({
      id: refund.lastResponse.requestId,
      idempotency_key: 'hook-refund-1',
    });
    expect((refundEvent.data.object as Stripe.Refund).id).toBe(refund.id);

    for (const r of receiver.received) {
      const header = String(r.headers['stripe-signature']);
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(() => stripe.webhooks.constructEvent(r.body, header, 'whsec_wrong')).toThrow(
        Stripe.errors.StripeSignatureVerificationError,
      );
      expect(() =>
        stripe.webhooks.constructEvent(r.body.replace('"livemode":false', '"livemode":true'), header, SECRET),
      ).toThrow(Stripe.errors.StripeSignatureVerificationError);
    }
  });

  it('sends only the enabled events, and answers the secret of an API-made endpoint only once', async () => {
    const created = await stripe.webhookEndpoints.create({
      url: `${receiver.url}/hook`,
      enabled_events: ['refund.created'],
    });
    try {
      expect(created.secret).toMatch(/^whsec_/);
      const again = await stripe.webhookEndpoints.retrieve(created.id);
      expect(again.secret).toBeUndefined();
      expect(again).toMatchObject({
        url: `${receiver.url}/hook`,
        enabled_events: ['refund.created'],
        status: 'enabled',
      });
      const listed = await stripe.webhookEndpoints.list();
      expect(listed.data.find((e) => e.id === created.id)?.secret).toBeUndefined();

      const charge = await stripe.charges.create({ amount: 1000, currency: 'usd', source: 'tok_visa' });
      const refund = await stripe.refunds.create({ charge: charge.id });
      await until(() => receiver.received.length >= 1, 'refund.created delivered');
      const [event] = verified(receiver.received, created.secret!);
      expect(event).toMatchObject({ type: 'refund.created', data: { object: { id: refund.id } } });
      // A later event proves nothing else was queued ahead of it.
      const second = await stripe.refunds.create({
        charge: (await stripe.charges.create({ amount: 10, currency: 'usd', source: 'tok_visa' })).id,
      });
      await until(() => receiver.received.length >= 2, 'second refund delivered');
      expect(
        verified(receiver.received, created.secret!).map((e) => (e.data.object as { id: string }).id),
      ).toEqual([refund.id, second.id]);
    } finally {
      await stripe.webhookEndpoints.del(created.id);
    }
    const err = await stripe.webhookEndpoints.retrieve(created.id).catch((e: Stripe.errors.StripeError) => e);
    expect(err).toMatchObject({ statusCode: 404 });
  });

  it('refuses an endpoint without a URL or events, or with a URL that is not http(s)', async () => {
    const bad = (params: Record<string, unknown>) =>
      stripe.webhookEndpoints
        .create(params as unknown as Stripe.WebhookEndpointCreateParams)
        .catch((e: Stripe.errors.StripeError) => e);
    expect(await bad({ enabled_events: ['*'] })).toMatchObject({ statusCode: 400, param: 'url' });
    expect(await bad({ url: `${receiver.url}/x` })).toMatchObject({
      statusCode: 400,
      param: 'enabled_events',
    });
    expect(await bad({ url: 'ftp://example.com/x', enabled_events: ['*'] })).toMatchObject({
      statusCode: 400,
      param: 'url',
    });
    expect(await bad({ url: `${receiver.url}/x`, enabled_events: ['charge.*'] })).toMatchObject({
      statusCode: 400,
    });
  });

  it('answers any endpoint body with an endpoint or a 4xx in Stripe’s shape, never a 5xx', async () => {
    const key = fc.constantFrom(
      'url',
      'enabled_events[]',
      'enabled_events[0]',
      'enabled_events[0][x]',
      'connect',
      'description',
      'metadata[a]',
      'url[x]',
      'enabled_events',
    );
    const value = fc.oneof(
      fc.constantFrom('*', 'refund.created', 'http://127.0.0.1:9/x', 'ftp://x', 'true', ''),
      fc.string({ maxLength: 12 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 5 }), async (pairs) => {
        const body = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const res = await fetch(`${sandbox.url}/v1/webhook_endpoints`, {
          method: 'POST',
          headers: {
            authorization: 'Bearer sk_test_fuzz',
            'content-type': 'application/x-www-form-urlencoded',
          },
          body,
        });
        const json = (await res.json()) as { id?: string; object?: string; error?: { type: string } };
        expect(res.status, body).toBeLessThan(500);
        if (res.status === 200) {
          expect(json.object).toBe('webhook_endpoint');
          await stripe.webhookEndpoints.del(json.id!);
        } else expect(json.error?.type, body).toBe('invalid_request_error');
      }),
      { numRuns: 300 },
    );
  });

  it('retries after a 500, holding later events back, and counts the delivery in pending_webhooks until it lands', async () => {
    let failing = true;
    receiver.respond = () => (failing ? { status: 500, body: { error: 'down' } } : { status: 200, body: {} });
    endpoint = sandbox.addWebhookEndpoint({
      url: `${receiver.url}/hook`,
      secret: SECRET,
      enabledEvents: ['payout.created'],
    });
    const first = await stripe.payouts.create({ amount: 111, currency: 'usd' });
    const second = await stripe.payouts.create({ amount: 222, currency: 'usd' });
    const firstEvent = sandbox
      .events()
      .find((e) => (e['data'] as { object: { id: string } }).object.id === first.id)!;

    await until(() => receiver.received.length >= 3, 'three failed attempts');
    // Only the first event is tried while it fails: the endpoint's order holds.
    expect(new Set(verified(receiver.received).map((e) => e.id))).toEqual(new Set([firstEvent['id']]));
    const pending = await stripe.events.retrieve(firstEvent['id'] as string);
    expect(pending.pending_webhooks).toBe(1);
    const undelivered = await stripe.events.list({ delivery_success: false, limit: 100 });
    expect(undelivered.data.map((e) => e.id)).toContain(firstEvent['id']);
    expect(verified(receiver.received)[0]!.pending_webhooks).toBe(1);

    failing = false;
    const delivered = await until(() => {
      const ids = verified(receiver.received).map((e) => (e.data.object as { id: string }).id);
      return ids.includes(second.id) ? ids : undefined;
    }, 'both delivered');
    expect(delivered.filter((id) => id !== first.id)).toEqual([second.id]);
    expect(delivered.indexOf(second.id)).toBe(delivered.length - 1);
    expect((await stripe.events.retrieve(firstEvent['id'] as string)).pending_webhooks).toBe(0);
    const delivered2 = await stripe.events.list({ delivery_success: true, limit: 100 });
    expect(delivered2.data.map((e) => e.id)).toContain(firstEvent['id']);
    expect(
      (await stripe.events.list({ delivery_success: false, limit: 100 })).data.map((e) => e.id),
    ).not.toContain(firstEvent['id']);
    const attempts = sandbox.deliveries().filter((d) => d.event === firstEvent['id']);
    expect(attempts.at(-1)).toMatchObject({ ok: true, status: 200 });
    expect(attempts.filter((a) => !a.ok).every((a) => a.status === 500)).toBe(true);
  });

  it('retries an endpoint that does not answer in time', async () => {
    const slow = await startSandbox({ webhooks: { backoffMs: 5, maxBackoffMs: 5, timeoutMs: 200 } });
    const client = new Stripe('sk_test_hooks', {
      host: '127.0.0.1',
      port: slow.port,
      protocol: 'http',
      maxNetworkRetries: 0,
    });
    let hang = true;
    try {
      // The receiver leaves its first requests unanswered: the sandbox gives up on each and tries again.
      receiver.respond = () => (hang ? null : { status: 200, body: {} });
      slow.addWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      await client.customers.create({});
      await until(() => slow.deliveries().filter((d) => d.error === 'timed out').length >= 2, 'two timeouts');
      hang = false;
      await until(() => slow.deliveries().some((d) => d.ok), 'delivered after the timeouts');
      expect(slow.deliveries().at(-1)).toMatchObject({ ok: true, type: 'customer.created' });
    } finally {
      await slow.close();
    }
  });
});

describe('removing an endpoint', () => {
  it('aborts the delivery under way, so the endpoint server can close', async () => {
    // A timeout no test waits for: only the removal can end this attempt.
    const sb = await startSandbox({ webhooks: { timeoutMs: 600_000 } });
    const client = new Stripe('sk_test_hooks', { host: '127.0.0.1', port: sb.port, protocol: 'http' });
    try {
      receiver.respond = () => null;
      const added = sb.addWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
      await client.customers.create({});
      await until(() => receiver.received.length > 0, 'the delivery reached the endpoint');
      expect(sb.deliveries()).toEqual([]);
      sb.removeWebhookEndpoint(added.id);
      const ended = await until(() => sb.deliveries()[0], 'the attempt ended');
      expect(ended).toMatchObject({ status: null, ok: false, error: 'endpoint removed' });
    } finally {
      receiver.respond = () => ({ status: 200, body: {} });
      await sb.close();
    }
  });
});

describe('later failures', () => {
  it('fails a refund on a tok_refundFail charge after it succeeded: refund.updated, refund.failed, charge.refund.updated', async () => {
    endpoint = sandbox.addWebhookEndpoint({ url: `${receiver.url}/hook`, secret: SECRET });
    const charge = await stripe.charges.create({ amount: 3000, currency: 'usd', source: 'tok_refundFail' });
    const refund = await stripe.refunds.create({ charge: charge.id, amount: 1200 });
    expect(refund.status).toBe('succeeded');
    expect((await stripe.charges.retrieve(charge.id)).amount_refunded).toBe(1200);

    const ran = await fetch(`${sandbox.url}/__sandbox/automation/run`, { method: 'POST' });
    expect(await ran.json()).toEqual({ ran: 1 });

    const failed = await stripe.refunds.retrieve(refund.id);
    expect(failed).toMatchObject({ status: 'failed', failure_reason: 'expired_or_canceled_card' });
    expect(failed.failure_balance_transaction).toMatch(/^txn_/);
    expect(await stripe.charges.retrieve(charge.id)).toMatchObject({ amount_refunded: 0, refunded: false });

    const types = ['refund.updated', 'charge.refund.updated', 'refund.failed'];
    await until(
      () => verified(receiver.received).filter((e) => types.includes(e.type)).length === 3,
      'failure events',
    );
    for (const event of verified(receiver.received).filter((e) => types.includes(e.type))) {
      expect(event.request).toEqual({ id: null, idempotency_key: null });
      expect(event.data.object).toMatchObject({ id: refund.id, status: 'failed' });
      expect(event.data.previous_attributes).toMatchObject({ status: 'succeeded' });
    }
    // The refundable remainder is back: the whole charge can be refunded again.
    expect((await stripe.refunds.create({ charge: charge.id })).amount).toBe(3000);
  });

  it('fails a refund on the timer when no test runs the automation', async () => {
    const quick = await startSandbox({ refundFailureDelayMs: 0 });
    try {
      const client = new Stripe('sk_test_hooks', {
        host: '127.0.0.1',
        port: quick.port,
        protocol: 'http',
        maxNetworkRetries: 0,
      });
      const charge = await client.charges.create({
        amount: 500,
        currency: 'usd',
        source: 'pm_card_refundFail',
      });
      const refund = await client.refunds.create({ charge: charge.id });
      await until(() => quick.events().some((e) => e['type'] === 'refund.failed'), 'refund.failed');
      expect((await client.refunds.retrieve(refund.id)).status).toBe('failed');
    } finally {
      await quick.close();
    }
  });

  it('fails any succeeded refund on demand, and refuses one that already failed', async () => {
    const charge = await stripe.charges.create({ amount: 800, currency: 'usd', source: 'tok_visa' });
    const refund = await stripe.refunds.create({ charge: charge.id });
    const res = await fetch(`${sandbox.url}/__sandbox/refunds/${refund.id}/fail`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ failure_reason: 'lost_or_stolen_card' }),
    });
    expect(await res.json()).toMatchObject({
      id: refund.id,
      status: 'failed',
      failure_reason: 'lost_or_stolen_card',
    });
    const again = await fetch(`${sandbox.url}/__sandbox/refunds/${refund.id}/fail`, { method: 'POST' });
    expect(again.status).toBe(400);
    const badReason = await fetch(`${sandbox.url}/__sandbox/refunds/${refund.id}/fail`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"failure_reason":"because"}',
    });
    expect(badReason.status).toBe(400);
    const missing = await fetch(`${sandbox.url}/__sandbox/refunds/re_missing/fail`, { method: 'POST' });
    expect(missing.status).toBe(404);
  });

  it('makes an automatic payout as Stripe’s schedule does: payout.created with no request, on any account', async () => {
    endpoint = sandbox.addWebhookEndpoint({
      url: `${receiver.url}/hook`,
      secret: SECRET,
      enabledEvents: ['payout.created'],
    });
    const res = await fetch(`${sandbox.url}/__sandbox/payouts/automatic`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 4200, account: 'acct_1AutoPay' }),
    });
    const payout = (await res.json()) as Stripe.Payout;
    expect(payout).toMatchObject({
      object: 'payout',
      amount: 4200,
      currency: 'usd',
      automatic: true,
      status: 'pending',
    });
    await until(() => receiver.received.length >= 1, 'payout.created delivered');
    const [event] = verified(receiver.received);
    expect(event).toMatchObject({
      type: 'payout.created',
      account: 'acct_1AutoPay',
      request: { id: null, idempotency_key: null },
      data: { object: { id: payout.id, automatic: true } },
    });
    expect(await stripe.payouts.retrieve(payout.id, {}, { stripeAccount: 'acct_1AutoPay' })).toMatchObject({
      automatic: true,
    });
    const bad = await fetch(`${sandbox.url}/__sandbox/payouts/automatic`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"amount":-5}',
    });
    expect(bad.status).toBe(400);
  });

  it('pays a payout and then fails it: payout.paid, then payout.failed from Stripe itself', async () => {
    endpoint = sandbox.addWebhookEndpoint({
      url: `${receiver.url}/hook`,
      secret: SECRET,
      enabledEvents: ['payout.paid', 'payout.failed'],
    });
    const payout = await stripe.payouts.create({ amount: 5000, currency: 'usd' });
    const paid = await fetch(`${sandbox.url}/__sandbox/payouts/${payout.id}/pay`, { method: 'POST' });
    expect(await paid.json()).toMatchObject({ status: 'paid' });
    const failed = await fetch(`${sandbox.url}/__sandbox/payouts/${payout.id}/fail`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"failure_code":"no_account"}',
    });
    expect(await failed.json()).toMatchObject({ status: 'failed', failure_code: 'no_account' });
    expect(await stripe.payouts.retrieve(payout.id)).toMatchObject({
      status: 'failed',
      failure_code: 'no_account',
    });

    await until(() => receiver.received.length >= 2, 'both payout events');
    const events = verified(receiver.received);
    expect(events.map((e) => e.type)).toEqual(['payout.paid', 'payout.failed']);
    expect(events[1]!.data.previous_attributes).toMatchObject({ status: 'paid', failure_code: null });
    expect(events.every((e) => e.request?.id === null)).toBe(true);
    const twice = await fetch(`${sandbox.url}/__sandbox/payouts/${payout.id}/pay`, { method: 'POST' });
    expect(twice.status).toBe(400);
  });
});
