import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import Stripe from 'stripe';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Sandbox, type SandboxRequestLog, startSandbox } from '../../src/stripe/sandbox/index.ts';

// Where money depends on it, the sandbox behaves as Stripe documents: it refuses what it cannot read whole, logs the
// bytes it was sent, applies partial captures as API versions since 2025-03-31.basil do, and scopes objects to
// the account a request acts on.

let sandbox: Sandbox;
let stripe: Stripe;

function client(extra: Partial<Stripe.StripeConfig> = {}): Stripe {
  return new Stripe('sk_test_integrity', {
    host: '127.0.0.1',
    port: sandbox.port,
    protocol: 'http',
    maxNetworkRetries: 0,
    ...extra,
  });
}

async function raw(
  method: string,
  pathAndQuery: string,
  opts: { body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: { error?: Record<string, unknown> } & Record<string, unknown> }> {
  const res = await fetch(sandbox.url + pathAndQuery, {
    method,
    headers: {
      authorization: 'Bearer sk_test_integrity',
      'content-type': 'application/x-www-form-urlencoded',
      ...opts.headers,
    },
    body: opts.body,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function caught(promise: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await promise;
  } catch (err) {
    return err as Stripe.errors.StripeError;
  }
  throw new Error('expected the call to fail');
}

/** `n` parameters the sandbox ignores, to fill a body up to a limit. */
function filler(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`x${i}`, '1']));
}

function lastLog(path: string): SandboxRequestLog {
  const entry = sandbox
    .requests()
    .filter((r) => r.path === path)
    .at(-1);
  if (!entry) throw new Error(`no request to ${path} was logged`);
  return entry;
}

async function charge(amount = 100_000, opts: Stripe.RequestOptions = {}): Promise<Stripe.Charge> {
  return stripe.charges.create({ amount, currency: 'usd', source: 'tok_visa' }, opts);
}

beforeAll(async () => {
  sandbox = await startSandbox();
  stripe = client();
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  sandbox.reset();
});

describe('refuse, never truncate', () => {
  it('refuses a refund body of 10,000 pairs and one more, whose last pair is the amount, and refunds nothing', async () => {
    const ch = await charge(100_000);
    // charge + 9,999 fillers + amount: 10,001 pairs, the amount last, as in the incident.
    const params = { charge: ch.id, ...filler(9_999), amount: 100 } as Stripe.RefundCreateParams;
    const err = await caught(stripe.refunds.create(params, { idempotencyKey: 'over-limit' }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err.statusCode).toBe(400);
    expect(err.type).toBe('StripeInvalidRequestError');
    expect(err.code).toBe('parameter_invalid');
    expect(err.message).toContain('10,001 parameters');
    expect(err.message).toContain('limit of 10,000');
    expect(sandbox.list('refund')).toHaveLength(0);
    expect(await stripe.charges.retrieve(ch.id)).toMatchObject({ amount_refunded: 0, refunded: false });

    const logged = lastLog('/v1/refunds');
    expect(logged.refused).toContain('10,001 parameters');
    expect(logged.params).toEqual({});
    expect(logged.rawBody.endsWith('&amount=100')).toBe(true);
    expect(logged.rawBody.split('&')).toHaveLength(10_001);

    // Nothing was stored under the key: the corrected request is processed, not answered with the refusal.
    const fixed = await stripe.refunds.create(
      { charge: ch.id, amount: 100 },
      { idempotencyKey: 'over-limit' },
    );
    expect(fixed.amount).toBe(100);
  });

  it('processes a body of exactly 10,000 pairs whole', async () => {
    const ch = await charge(100_000);
    const params = { charge: ch.id, ...filler(9_998), amount: 250 } as Stripe.RefundCreateParams;
    const refund = await stripe.refunds.create(params);
    expect(refund.amount).toBe(250);
    expect(lastLog('/v1/refunds').rawBody.split('&')).toHaveLength(10_000);
  });

  it('refuses keys nested deeper than 20 levels in a body and in a query', async () => {
    // `deep[n]…[n][leaf]`: one bracket group per level.
    const nest = (levels: number): Record<string, unknown> => {
      let nested: Record<string, unknown> = { leaf: '1' };
      for (let i = 1; i < levels; i++) nested = { n: nested };
      return nested;
    };
    const ch = await charge(1_000);
    const body = await caught(
      stripe.refunds.create({ charge: ch.id, amount: 100, deep: nest(21) } as Stripe.RefundCreateParams),
    );
    expect(body).toMatchObject({ statusCode: 400, code: 'parameter_invalid' });
    expect(body.message).toContain('depth limit of 20');
    expect(sandbox.list('refund')).toHaveLength(0);
    const query = await caught(
      stripe.refunds.list({ charge: ch.id, deep: nest(21) } as Stripe.RefundListParams),
    );
    expect(query).toMatchObject({ statusCode: 400, code: 'parameter_invalid' });
    expect(query.message).toContain('In the request query');

    const atLimit = { charge: ch.id, amount: 100, deep: nest(20) } as Stripe.RefundCreateParams;
    expect((await stripe.refunds.create(atLimit)).amount).toBe(100);
  });

  it('refuses an array of more than 1,000 elements', async () => {
    const ch = await charge(1_000);
    const expand = Array.from({ length: 1_001 }, () => 'charge');
    const err = await caught(stripe.refunds.create({ charge: ch.id, amount: 100, expand }));
    expect(err).toMatchObject({ statusCode: 400, code: 'parameter_invalid' });
    expect(err.message).toContain('limit of 1,000 elements');
    expect(sandbox.list('refund')).toHaveLength(0);
  });

  it('refuses a JSON body sent to v1 over the same limits, and a number JSON cannot hold exactly', async () => {
    const ch = await charge(100_000);
    const tooMany = JSON.stringify({ charge: ch.id, ...filler(9_999), amount: 100 });
    const many = await raw('POST', '/v1/refunds', {
      body: tooMany,
      headers: { 'content-type': 'application/json' },
    });
    expect(many.status).toBe(400);
    expect(many.json.error).toMatchObject({ type: 'invalid_request_error', code: 'parameter_invalid' });
    expect(lastLog('/v1/refunds').rawBody).toBe(tooMany);

    // 2^53 + 1 would be read as 2^53: another amount than the one sent.
    const unsafe = await raw('POST', '/v1/refunds', {
      body: `{"charge":"${ch.id}","amount":9007199254740993}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(unsafe.status).toBe(400);
    expect(unsafe.json.error).toMatchObject({ code: 'parameter_invalid', param: 'amount' });

    const fine = await raw('POST', '/v1/refunds', {
      body: JSON.stringify({ charge: ch.id, amount: 300 }),
      headers: { 'content-type': 'application/json' },
    });
    expect(fine.status).toBe(200);
    expect(sandbox.list('refund').map((r) => r['amount'])).toEqual([300]);
  });

  it('refuses a v2 JSON body over the limits and creates no payout intent', async () => {
    const metadata = filler(10_001);
    const err = await caught(
      stripe.rawRequest('POST', '/v2/money_management/payout_intents', {
        amount: { value: 5_000, currency: 'usd' },
        from: { financial_account: 'fa_test_1' },
        to: { recipient: 'acct_recipient' },
        metadata,
      }),
    );
    expect(err.statusCode).toBe(400);
    expect(err.message).toContain('more than 10,000 values');
    expect(sandbox.list('v2.money_management.payout_intent')).toHaveLength(0);
  });

  it('refuses a body over 1 MiB with 413, after logging it', async () => {
    const body = `amount=100&currency=usd&source=tok_visa&description=${'a'.repeat(1024 * 1024)}`;
    const res = await raw('POST', '/v1/charges', { body });
    expect(res.status).toBe(413);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'parameter_invalid' });
    expect(sandbox.list('charge')).toHaveLength(0);
    expect(lastLog('/v1/charges').rawBody).toBe(body);
  });

  it('keeps metadata keys that share a name with Object.prototype members, and refuses __proto__', async () => {
    const cus = await stripe.customers.create({
      metadata: { constructor: 'c', toString: 't', valueOf: 'v' },
    });
    expect(cus.metadata).toEqual({ constructor: 'c', toString: 't', valueOf: 'v' });
    const proto = await raw('POST', '/v1/customers', { body: 'metadata[__proto__]=x&email=a%40b.c' });
    expect(proto.status).toBe(400);
    expect(sandbox.list('customer')).toHaveLength(1);
  });
});

describe('the request log records exact bytes', () => {
  it('keeps the body, query and Stripe headers exactly as received', async () => {
    const ch = await charge(10_000, { stripeAccount: 'acct_logged' });
    // Odd but valid encodings: a leading zero, `+` for a space, a percent-encoded multibyte character.
    const body = `amount=0100&charge=${ch.id}&metadata[note]=caf%C3%A9+%26+more`;
    const res = await raw('POST', '/v1/refunds', {
      body,
      headers: {
        'idempotency-key': 'log-exact',
        'stripe-account': 'acct_logged',
        'stripe-version': '2026-10-28.endive',
      },
    });
    expect(res.status).toBe(200);
    expect(res.json['amount']).toBe(100);
    const entry = lastLog('/v1/refunds');
    expect(entry).toMatchObject({
      method: 'POST',
      rawBody: body,
      rawQuery: '',
      contentType: 'application/x-www-form-urlencoded',
      params: { amount: '0100', charge: ch.id, metadata: { note: 'café & more' } },
      idempotencyKey: 'log-exact',
      stripeAccount: 'acct_logged',
      stripeContext: null,
      stripeVersion: '2026-10-28.endive',
      account: 'acct_logged',
      refused: null,
    });

    const query = `limit=2&charge=${ch.id}&expand[]=data.charge`;
    expect(
      (await raw('GET', `/v1/refunds?${query}`, { headers: { 'stripe-account': 'acct_logged' } })).status,
    ).toBe(200);
    expect(lastLog('/v1/refunds')).toMatchObject({ method: 'GET', rawQuery: query, rawBody: '' });
  });

  it('records what the official client sent, headers included, and serves it over HTTP', async () => {
    const ch = await charge(10_000, { stripeContext: 'acct_parent/acct_child' });
    await stripe.refunds.create(
      { charge: ch.id, amount: 500, metadata: { airlock_action: 'act_1' } },
      { idempotencyKey: 'client-1', stripeContext: 'acct_parent/acct_child' },
    );
    const entry = lastLog('/v1/refunds');
    expect(entry.rawBody).toBe(`charge=${ch.id}&amount=500&metadata[airlock_action]=act_1`);
    expect(entry).toMatchObject({
      idempotencyKey: 'client-1',
      stripeAccount: null,
      stripeContext: 'acct_parent/acct_child',
      account: 'acct_child',
    });
    expect(entry.stripeVersion).toMatch(/^\d{4}-\d{2}-\d{2}\.\w+$/);

    const overHttp = (await (await fetch(`${sandbox.url}/__sandbox/requests`)).json()) as SandboxRequestLog[];
    expect(overHttp.at(-1)).toEqual(entry);
  });
});

describe('partial capture, as Stripe documents it since 2025-03-31.basil', () => {
  it('captures $600 of a $1,000 charge: nothing counts as refunded, and a refund with no amount returns $600', async () => {
    const ch = await stripe.charges.create({
      amount: 100_000,
      currency: 'usd',
      source: 'tok_visa',
      capture: false,
    });
    const captured = await stripe.charges.capture(ch.id, { amount: 60_000 });
    expect(captured).toMatchObject({
      amount: 100_000,
      amount_captured: 60_000,
      amount_refunded: 0,
      captured: true,
      refunded: false,
    });
    expect(sandbox.list('refund')).toHaveLength(0);

    const tooMuch = await caught(stripe.refunds.create({ charge: ch.id, amount: 60_001 }));
    expect(tooMuch.code).toBe('amount_too_large');

    const refund = await stripe.refunds.create({ charge: ch.id });
    expect(refund).toMatchObject({ amount: 60_000, status: 'succeeded', charge: ch.id });
    expect(await stripe.charges.retrieve(ch.id)).toMatchObject({
      amount: 100_000,
      amount_captured: 60_000,
      amount_refunded: 60_000,
      refunded: true,
    });
    expect((await caught(stripe.refunds.create({ charge: ch.id }))).code).toBe('charge_already_refunded');
    const balance = await stripe.balance.retrieve();
    expect(balance.available).toEqual([expect.objectContaining({ amount: 0, currency: 'usd' })]);
  });

  it('captures a PaymentIntent with amount_to_capture, and refunds by payment_intent what was captured', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 100_000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      capture_method: 'manual',
      confirm: true,
    });
    expect(pi).toMatchObject({ status: 'requires_capture', amount_capturable: 100_000 });
    const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 60_000 });
    expect(captured).toMatchObject({
      status: 'succeeded',
      amount: 100_000,
      amount_capturable: 0,
      amount_received: 60_000,
    });
    expect(await stripe.charges.retrieve(captured.latest_charge as string)).toMatchObject({
      amount: 100_000,
      amount_captured: 60_000,
      amount_refunded: 0,
      refunded: false,
    });
    const partial = await stripe.refunds.create({ payment_intent: pi.id, amount: 10_000 });
    const rest = await stripe.refunds.create({ payment_intent: pi.id });
    expect(rest.amount).toBe(50_000);
    const listed = await stripe.refunds.list({ payment_intent: pi.id });
    expect(listed.data.map((r) => [r.id, r.amount, r.status])).toEqual([
      [rest.id, 50_000, 'succeeded'],
      [partial.id, 10_000, 'succeeded'],
    ]);
  });

  it('cancels an authorisation without a refund, after which the charge can be neither refunded nor captured', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 100_000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      capture_method: 'manual',
      confirm: true,
    });
    const canceled = await stripe.paymentIntents.cancel(pi.id);
    expect(canceled.status).toBe('canceled');
    const chargeId = canceled.latest_charge as string;
    expect(await stripe.charges.retrieve(chargeId)).toMatchObject({
      amount_captured: 0,
      amount_refunded: 0,
      captured: false,
      refunded: false,
    });
    expect(sandbox.list('refund')).toHaveLength(0);
    expect((await caught(stripe.refunds.create({ charge: chargeId }))).code).toBe('charge_not_refundable');
    expect((await caught(stripe.charges.capture(chargeId))).code).toBe('charge_expired_for_capture');
    expect(sandbox.list('refund')).toHaveLength(0);
  });
});

describe('refund listings', () => {
  it('lists the refunds of a charge in Stripe list shape, newest first, with limit and starting_after', async () => {
    const a = await charge(100_000);
    const b = await charge(100_000);
    const ids: string[] = [];
    for (const amount of [100, 200, 300, 400, 500]) {
      ids.push((await stripe.refunds.create({ charge: a.id, amount })).id);
      if (amount === 300) await stripe.refunds.create({ charge: b.id, amount: 999 });
    }
    const newestFirst = [...ids].reverse();
    const first = await stripe.refunds.list({ charge: a.id, limit: 2 });
    expect(first).toMatchObject({ object: 'list', has_more: true, url: '/v1/refunds' });
    expect(first.data.map((r) => r.id)).toEqual(newestFirst.slice(0, 2));
    expect(first.data.every((r) => r.status === 'succeeded' && r.charge === a.id)).toBe(true);
    const second = await stripe.refunds.list({ charge: a.id, limit: 2, starting_after: first.data[1]!.id });
    expect(second.data.map((r) => r.id)).toEqual(newestFirst.slice(2, 4));
    const third = await stripe.refunds.list({ charge: a.id, limit: 2, starting_after: second.data[1]!.id });
    expect(third).toMatchObject({ has_more: false });
    expect(third.data.map((r) => r.id)).toEqual(newestFirst.slice(4));
    const all = await stripe.refunds.list({ charge: a.id, limit: 2 }).autoPagingToArray({ limit: 100 });
    expect(all.map((r) => r.amount)).toEqual([500, 400, 300, 200, 100]);
  });

  it('carries each refund status: a pending refund, and one canceled', async () => {
    const ch = await stripe.charges.create({ amount: 10_000, currency: 'usd', source: 'tok_pendingRefund' });
    const kept = await stripe.refunds.create({ charge: ch.id, amount: 1_000 });
    const dropped = await stripe.refunds.create({ charge: ch.id, amount: 2_000 });
    await stripe.refunds.cancel(dropped.id);
    const listed = await stripe.refunds.list({ charge: ch.id });
    expect(listed.data.map((r) => [r.id, r.status])).toEqual([
      [dropped.id, 'canceled'],
      [kept.id, 'pending'],
    ]);
  });
});

describe('connect: objects belong to the account a request acts on', () => {
  it('shows an object made under Stripe-Account only to that account', async () => {
    const ch = await charge(100_000, { stripeAccount: 'acct_a' });
    const own = { stripeAccount: 'acct_a' };
    expect((await stripe.charges.retrieve(ch.id, {}, own)).id).toBe(ch.id);

    for (const other of [{}, { stripeAccount: 'acct_b' }]) {
      const missing = await caught(stripe.charges.retrieve(ch.id, {}, other));
      expect(missing).toMatchObject({ statusCode: 404, code: 'resource_missing' });
      const refund = await caught(stripe.refunds.create({ charge: ch.id, amount: 100 }, other));
      expect(refund).toMatchObject({ statusCode: 404, code: 'resource_missing', param: 'charge' });
      expect((await stripe.charges.list({}, other)).data).toEqual([]);
    }
    expect(sandbox.list('refund')).toHaveLength(0);

    expect((await stripe.charges.list({}, own)).data.map((c) => c.id)).toEqual([ch.id]);
    const refund = await stripe.refunds.create({ charge: ch.id, amount: 100 }, own);
    expect(refund.amount).toBe(100);
    expect((await stripe.refunds.list({ charge: ch.id }, own)).data.map((r) => r.id)).toEqual([refund.id]);
    expect((await stripe.refunds.list({ charge: ch.id })).data).toEqual([]);
    expect(sandbox.list('refund', { account: 'acct_a' })).toHaveLength(1);
    expect(sandbox.list('refund', { account: null })).toHaveLength(0);

    const uncaptured = await stripe.charges.create(
      { amount: 5_000, currency: 'usd', source: 'tok_visa', capture: false },
      own,
    );
    expect((await caught(stripe.charges.capture(uncaptured.id))).statusCode).toBe(404);
    expect((await stripe.charges.capture(uncaptured.id, {}, own)).captured).toBe(true);
  });

  it('keeps balances apart', async () => {
    await charge(7_000, { stripeAccount: 'acct_a' });
    await charge(3_000);
    const a = await stripe.balance.retrieve({}, { stripeAccount: 'acct_a' });
    const platform = await stripe.balance.retrieve();
    expect(a.available[0]).toMatchObject({ amount: 7_000 });
    expect(platform.available[0]).toMatchObject({ amount: 3_000 });
  });

  it('acts on the last account of a Stripe-Context path, the same account Stripe-Account names', async () => {
    const viaContext = client({ stripeContext: 'acct_org/acct_c' });
    const cus = await viaContext.customers.create({ email: 'c@example.com' });
    expect((await stripe.customers.retrieve(cus.id, {}, { stripeAccount: 'acct_c' })).id).toBe(cus.id);
    expect((await stripe.customers.retrieve(cus.id, {}, { stripeContext: 'acct_c' })).id).toBe(cus.id);
    expect((await caught(stripe.customers.retrieve(cus.id))).statusCode).toBe(404);
    expect(
      (await caught(stripe.customers.retrieve(cus.id, {}, { stripeContext: 'acct_org' }))).statusCode,
    ).toBe(404);
  });

  it('lets Stripe-Context supersede Stripe-Account when both are sent', async () => {
    const res = await raw('POST', '/v1/customers', {
      body: 'email=both%40example.com',
      headers: { 'stripe-account': 'acct_x', 'stripe-context': 'acct_y' },
    });
    expect(res.status).toBe(200);
    expect(sandbox.list('customer', { account: 'acct_y' }).map((c) => c['id'])).toEqual([res.json['id']]);
    expect(sandbox.list('customer', { account: 'acct_x' })).toEqual([]);
    expect(lastLog('/v1/customers')).toMatchObject({
      stripeAccount: 'acct_x',
      stripeContext: 'acct_y',
      account: 'acct_y',
    });
  });

  it('keeps idempotency records per account', async () => {
    const opts = { idempotencyKey: 'same-key' };
    const platform = await stripe.customers.create({ email: 'k@example.com' }, opts);
    const a = await stripe.customers.create({ email: 'k@example.com' }, { ...opts, stripeAccount: 'acct_a' });
    const aAgain = await stripe.customers.create(
      { email: 'k@example.com' },
      { ...opts, stripeAccount: 'acct_a' },
    );
    const b = await stripe.customers.create({ email: 'k@example.com' }, { ...opts, stripeContext: 'acct_b' });
    expect(new Set([platform.id, a.id, b.id]).size).toBe(3);
    expect(aAgain.id).toBe(a.id);
    expect(aAgain.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(sandbox.list('customer')).toHaveLength(3);
  });

  it('refuses a header that names no account, as Stripe refuses an account the key cannot reach', async () => {
    for (const opts of [{ stripeAccount: 'not_an_account' }, { stripeContext: 'acct_ok/cus_123' }]) {
      const err = await caught(stripe.customers.create({ email: 'x@example.com' }, opts));
      expect(err).toBeInstanceOf(Stripe.errors.StripePermissionError);
      expect(err).toMatchObject({ statusCode: 403, code: 'account_invalid' });
      expect(err.message).toContain('does not have access to account');
      expect(err.message).not.toContain('sk_test_integrity');
    }
    expect(sandbox.list('customer')).toHaveLength(0);
  });
});

describe('v2 payout intents', () => {
  const create = {
    amount: { value: 60_000, currency: 'usd' },
    from: { currency: 'usd', financial_account: 'fa_test_1' },
    to: { recipient: 'acct_recipient', payout_method: 'usba_test_1', currency: 'usd' },
    metadata: { airlock_action: 'act_payout' },
  };

  it('creates a payout intent once for an idempotency key, and retrieves it', async () => {
    const intents = stripe.v2.moneyManagement.payoutIntents;
    const created = await intents.create(create, { idempotencyKey: 'poi-1' });
    expect(created).toMatchObject({
      object: 'v2.money_management.payout_intent',
      amount: { value: 60_000, currency: 'usd' },
      from: { currency: 'usd', financial_account: 'fa_test_1' },
      to: { recipient: 'acct_recipient', payout_method: 'usba_test_1', currency: 'usd' },
      confirmation_method: 'automatic',
      status: 'processing',
      metadata: { airlock_action: 'act_payout' },
      livemode: false,
    });
    expect(created.id).toMatch(/^poi_test_[A-Za-z0-9]{24}$/);
    expect(created.created).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(created.status_transitions?.processing_at).toBe(created.created);

    const replay = await intents.create(create, { idempotencyKey: 'poi-1' });
    expect(replay.id).toBe(created.id);
    expect(sandbox.list('v2.money_management.payout_intent')).toHaveLength(1);
    expect(JSON.parse(lastLog('/v2/money_management/payout_intents').rawBody)).toEqual(create);

    const fetched = await intents.retrieve(created.id);
    expect(fetched).toMatchObject({ id: created.id, amount: { value: 60_000, currency: 'usd' } });
    expect((await intents.list()).data.map((i) => i.id)).toEqual([created.id]);
  });

  it('refuses a payout intent without a whole amount, and creates none', async () => {
    const intents = stripe.v2.moneyManagement.payoutIntents;
    const bad = [
      { ...create, amount: undefined },
      { ...create, amount: { value: '60000', currency: 'usd' } },
      { ...create, amount: { value: 600.5, currency: 'usd' } },
      { ...create, amount: { value: 60_000 } },
      { ...create, from: {} },
      { ...create, to: undefined },
    ];
    for (const params of bad) {
      const err = await caught(
        intents.create(params as unknown as Stripe.V2.MoneyManagement.PayoutIntentCreateParams),
      );
      expect(err.statusCode).toBe(400);
    }
    expect(sandbox.list('v2.money_management.payout_intent')).toHaveLength(0);
    const missing = await caught(intents.retrieve('poi_test_nope'));
    expect(missing.statusCode).toBe(404);
  });

  it('confirms a manual payout intent, updates its metadata and cancels it once', async () => {
    const intents = stripe.v2.moneyManagement.payoutIntents;
    const manual = await intents.create({ ...create, confirmation_method: 'manual' });
    expect(manual).toMatchObject({ status: 'requires_action', next_action: { type: 'confirm' } });
    const confirmed = await intents.confirm(manual.id);
    expect(confirmed.status).toBe('pending');
    expect(confirmed.next_action).toBeUndefined();
    const updated = await intents.update(manual.id, { metadata: { note: 'checked' } });
    expect(updated.metadata).toEqual({ airlock_action: 'act_payout', note: 'checked' });
    const canceled = await intents.cancel(manual.id);
    expect(canceled.status).toBe('canceled');
    expect(canceled.status_transitions?.canceled_at).toEqual(expect.any(String));
    expect((await caught(intents.cancel(manual.id))).statusCode).toBe(400);
    expect((await caught(intents.confirm(manual.id))).statusCode).toBe(400);
  });

  it('scopes payout intents to the account that made them', async () => {
    const intents = stripe.v2.moneyManagement.payoutIntents;
    const made = await intents.create(create, { stripeContext: 'acct_payer' });
    expect((await intents.retrieve(made.id, {}, { stripeContext: 'acct_payer' })).id).toBe(made.id);
    expect((await caught(intents.retrieve(made.id))).statusCode).toBe(404);
    expect((await intents.list()).data).toEqual([]);
  });
});

describe('sandbox files written before accounts', () => {
  it('opens them with their objects on the platform', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-old-'));
    const dbPath = join(dir, 'sandbox.db');
    try {
      const db = new Database(dbPath);
      db.exec(`CREATE TABLE objects (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL, json TEXT NOT NULL, created INTEGER NOT NULL)`);
      const old = { id: 'cus_OldOldOldOldOldOldOld1', object: 'customer', created: 1, livemode: false };
      db.prepare('INSERT INTO objects (id, type, json, created) VALUES (?, ?, ?, 1)').run(
        old.id,
        'customer',
        JSON.stringify(old),
      );
      db.close();
      const reopened = await startSandbox({ dbPath });
      try {
        const s = new Stripe('sk_test_old', { host: '127.0.0.1', port: reopened.port, protocol: 'http' });
        expect((await s.customers.retrieve(old.id)).id).toBe(old.id);
        expect((await caught(s.customers.retrieve(old.id, {}, { stripeAccount: 'acct_a' }))).statusCode).toBe(
          404,
        );
      } finally {
        await reopened.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
