import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';

let dir: string;
let sandbox: Sandbox;
let stripe: Stripe;

function client(port = sandbox.port): Stripe {
  return new Stripe('sk_test_events', { host: '127.0.0.1', port, protocol: 'http', maxNetworkRetries: 0 });
}

/** Every event of this sandbox, newest first, read through the official client's auto-pagination. */
async function allEvents(params: Stripe.EventListParams = {}): Promise<Stripe.Event[]> {
  return stripe.events.list({ limit: 100, ...params }).autoPagingToArray({ limit: 10_000 });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sandbox-events-'));
  sandbox = await startSandbox({ dbPath: join(dir, 'sandbox.db') });
  stripe = client();
});

afterAll(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Made {
  requestId: string;
  object: string;
}

/** The request id the sandbox answered with, and the id of the object the call returned. */
function made(obj: { id: string; lastResponse: { requestId: string } }): Made {
  return { requestId: obj.lastResponse.requestId, object: obj.id };
}

describe('the event log', () => {
  // Each step makes or changes one object with an Idempotency-Key and names the events Stripe sends for it.
  // `keyless`: the official client sends no Idempotency-Key on DELETE (Stripe ignores one there), so the event has none.
  const steps: { name: string; types: string[]; keyless?: boolean; run: (key: string) => Promise<Made> }[] = [
    {
      name: 'customer created',
      types: ['customer.created'],
      run: async (key) =>
        made(await stripe.customers.create({ email: 'a@example.com' }, { idempotencyKey: key })),
    },
    {
      name: 'customer deleted',
      types: ['customer.deleted'],
      keyless: true,
      run: async (key) => {
        const c = await stripe.customers.create({ email: 'b@example.com' });
        return { ...made(await stripe.customers.del(c.id, { idempotencyKey: key })), object: c.id };
      },
    },
    {
      name: 'charge succeeded',
      types: ['charge.succeeded'],
      run: async (key) =>
        made(
          await stripe.charges.create(
            { amount: 500, currency: 'usd', source: 'tok_visa' },
            { idempotencyKey: key },
          ),
        ),
    },
    {
      name: 'charge captured',
      types: ['charge.captured'],
      run: async (key) => {
        const ch = await stripe.charges.create({
          amount: 500,
          currency: 'usd',
          source: 'tok_visa',
          capture: false,
        });
        return made(await stripe.charges.capture(ch.id, {}, { idempotencyKey: key }));
      },
    },
    {
      name: 'refund created',
      types: ['refund.created'],
      run: async (key) => {
        const ch = await stripe.charges.create({ amount: 900, currency: 'usd', source: 'tok_visa' });
        return made(await stripe.refunds.create({ charge: ch.id, amount: 300 }, { idempotencyKey: key }));
      },
    },
    {
      name: 'charge refunded (the refund request, on the charge)',
      types: ['charge.refunded'],
      run: async (key) => {
        const ch = await stripe.charges.create({ amount: 900, currency: 'usd', source: 'tok_visa' });
        const re = await stripe.refunds.create({ charge: ch.id }, { idempotencyKey: key });
        return { requestId: re.lastResponse.requestId, object: ch.id };
      },
    },
    {
      name: 'refund canceled',
      types: ['refund.updated', 'charge.refund.updated'],
      run: async (key) => {
        const ch = await stripe.charges.create({ amount: 900, currency: 'usd', source: 'tok_pendingRefund' });
        const re = await stripe.refunds.create({ charge: ch.id });
        return made(await stripe.refunds.cancel(re.id, {}, { idempotencyKey: key }));
      },
    },
    {
      name: 'payout created',
      types: ['payout.created'],
      run: async (key) =>
        made(await stripe.payouts.create({ amount: 700, currency: 'usd' }, { idempotencyKey: key })),
    },
    {
      name: 'payout canceled',
      types: ['payout.canceled', 'payout.updated'],
      run: async (key) => {
        const po = await stripe.payouts.create({ amount: 700, currency: 'usd' });
        return made(await stripe.payouts.cancel(po.id, {}, { idempotencyKey: key }));
      },
    },
    {
      name: 'transfer created',
      types: ['transfer.created'],
      run: async (key) =>
        made(
          await stripe.transfers.create(
            { amount: 800, currency: 'usd', destination: 'acct_1Dest' },
            { idempotencyKey: key },
          ),
        ),
    },
    {
      name: 'transfer reversed',
      types: ['transfer.reversed'],
      run: async (key) => {
        const tr = await stripe.transfers.create({ amount: 800, currency: 'usd', destination: 'acct_1Dest' });
        const rev = await stripe.transfers.createReversal(tr.id, { amount: 200 }, { idempotencyKey: key });
        return { requestId: rev.lastResponse.requestId, object: tr.id };
      },
    },
    {
      name: 'subscription canceled',
      types: ['customer.subscription.deleted'],
      run: async (key) => {
        const c = await stripe.customers.create({});
        const sub = await stripe.subscriptions.create({ customer: c.id, items: [{ price: 'price_basic' }] });
        return made(await stripe.subscriptions.cancel(sub.id, {}, { idempotencyKey: key }));
      },
    },
    {
      name: 'dispute opened with the charge',
      types: ['charge.dispute.created', 'charge.dispute.funds_withdrawn'],
      run: async (key) => {
        const ch = await stripe.charges.create(
          { amount: 400, currency: 'usd', source: 'tok_createDispute' },
          { idempotencyKey: key },
        );
        const [dispute] = sandbox.list('dispute').filter((d) => d['charge'] === ch.id);
        return { requestId: ch.lastResponse.requestId, object: dispute!['id'] as string };
      },
    },
    {
      name: 'application fee refunded',
      types: ['application_fee.refunded'],
      run: async (key) => {
        const fr = await stripe.applicationFees.createRefund(
          'fee_1Sandbox',
          { amount: 50 },
          { idempotencyKey: key },
        );
        return { requestId: fr.lastResponse.requestId, object: 'fee_1Sandbox' };
      },
    },
    {
      name: 'payment intent confirmed and succeeded',
      types: ['payment_intent.created', 'payment_intent.succeeded'],
      run: async (key) =>
        made(
          await stripe.paymentIntents.create(
            { amount: 1200, currency: 'usd', payment_method: 'pm_card_visa', confirm: true },
            { idempotencyKey: key },
          ),
        ),
    },
  ];

  for (const step of steps) {
    it(`${step.name}: ${step.types.join(', ')} with the request's id and idempotency key`, async () => {
      const key = `test-${randomUUID()}`;
      const { requestId, object } = await step.run(key);
      expect(requestId).toMatch(/^req_/);
      const events = (await allEvents()).filter((e) => (e.data.object as { id: string }).id === object);
      for (const type of step.types) {
        const event = events.find((e) => e.type === type);
        expect(event, `${type} for ${object}`).toBeDefined();
        expect(event!.id).toMatch(/^evt_/);
        expect(event).toMatchObject({
          object: 'event',
          livemode: false,
          api_version: expect.any(String),
          request: { id: requestId, idempotency_key: step.keyless ? null : key },
        });
        expect(event!.created).toBeGreaterThan(1_700_000_000);
      }
    });
  }

  it('says what changed in previous_attributes', async () => {
    const c = await stripe.customers.create({ email: 'old@example.com', metadata: { a: '1' } });
    const updated = await stripe.customers.update(c.id, { email: 'new@example.com' });
    const [event] = await allEvents({ type: 'customer.updated' });
    expect(event!.request?.id).toBe(updated.lastResponse.requestId);
    expect(event!.data.previous_attributes).toEqual({ email: 'old@example.com' });
    expect((event!.data.object as Stripe.Customer).email).toBe('new@example.com');
  });

  it('carries a deleted customer as it was, and a cancelled subscription with its old status', async () => {
    const c = await stripe.customers.create({ email: 'gone@example.com' });
    const sub = await stripe.subscriptions.create({ customer: c.id, items: [{ price: 'price_basic' }] });
    await stripe.subscriptions.cancel(sub.id);
    await stripe.customers.del(c.id);
    const [deleted] = (await allEvents({ type: 'customer.deleted' })).filter(
      (e) => (e.data.object as { id: string }).id === c.id,
    );
    expect(deleted!.data.object).toMatchObject({ id: c.id, object: 'customer', email: 'gone@example.com' });
    const [cancelled] = (await allEvents({ type: 'customer.subscription.deleted' })).filter(
      (e) => (e.data.object as { id: string }).id === sub.id,
    );
    expect(cancelled!.data).toMatchObject({
      object: { status: 'canceled' },
      previous_attributes: { status: 'active' },
    });
  });

  it('records a declined charge as charge.failed, under the request that was refused', async () => {
    let requestId = '';
    try {
      await stripe.charges.create({ amount: 500, currency: 'usd', source: 'tok_chargeDeclined' });
    } catch (err) {
      requestId = (err as Stripe.errors.StripeError).requestId ?? '';
    }
    expect(requestId).toMatch(/^req_/);
    const failed = (await allEvents({ type: 'charge.failed' })).find((e) => e.request?.id === requestId);
    expect((failed?.data.object as Stripe.Charge | undefined)?.status).toBe('failed');
  });

  it('has a null idempotency_key when the caller sent none, and makes no event for a replay', async () => {
    const res = await fetch(`${sandbox.url}/v1/payouts`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk_test_raw', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'amount=100&currency=usd',
    });
    const payout = (await res.json()) as { id: string };
    const [event] = (await allEvents({ type: 'payout.created' })).filter(
      (e) => (e.data.object as { id: string }).id === payout.id,
    );
    expect(event!.request).toEqual({ id: res.headers.get('request-id'), idempotency_key: null });

    const key = `replay-${randomUUID()}`;
    const first = await stripe.payouts.create({ amount: 100, currency: 'usd' }, { idempotencyKey: key });
    const again = await stripe.payouts.create({ amount: 100, currency: 'usd' }, { idempotencyKey: key });
    expect(again.id).toBe(first.id);
    const created = (await allEvents({ type: 'payout.created' })).filter(
      (e) => (e.data.object as { id: string }).id === first.id,
    );
    expect(created).toHaveLength(1);
  });

  it('keeps each connected account to its own events, and names the account on them', async () => {
    const connected = client();
    const ch = await connected.charges.create(
      { amount: 300, currency: 'usd', source: 'tok_visa' },
      { stripeAccount: 'acct_1EventsOther' },
    );
    const theirs = await connected.events
      .list({ limit: 100 }, { stripeAccount: 'acct_1EventsOther' })
      .autoPagingToArray({ limit: 1000 });
    expect(theirs.map((e) => e.type)).toEqual(['charge.succeeded']);
    expect(theirs[0]!.account).toBe('acct_1EventsOther');
    expect((await allEvents()).some((e) => (e.data.object as { id: string }).id === ch.id)).toBe(false);
    const err = await stripe.events.retrieve(theirs[0]!.id).catch((e: Stripe.errors.StripeError) => e);
    expect(err).toMatchObject({ statusCode: 404, code: 'resource_missing' });
  });
});

describe('GET /v1/events', () => {
  let sb: Sandbox;
  let api: Stripe;
  /** The sandbox's own record, newest first: what every listing is compared with. */
  let model: Stripe.Event[];

  beforeAll(async () => {
    sb = await startSandbox();
    api = client(sb.port);
    sb.bulk({ path: '/v1/customers', params: { email: 'bulk@example.com' }, count: 260 });
    const ch = await api.charges.create({ amount: 100_000, currency: 'usd', source: 'tok_visa' });
    sb.bulk({ path: '/v1/refunds', params: { charge: ch.id, amount: '1' }, count: 20 });
    await api.payouts.create({ amount: 100, currency: 'usd' });
    model = (sb.events() as unknown as Stripe.Event[]).reverse();
  });

  afterAll(async () => {
    await sb.close();
  });

  it('auto-paginates over every event, newest first, with the official client', async () => {
    expect(model.length).toBe(260 + 1 + 40 + 1);
    const listed = await api.events.list({ limit: 100 }).autoPagingToArray({ limit: 10_000 });
    expect(listed.map((e) => e.id)).toEqual(model.map((e) => e.id));
    const smallPages = await api.events.list({ limit: 7 }).autoPagingToArray({ limit: 10_000 });
    expect(smallPages.map((e) => e.id)).toEqual(model.map((e) => e.id));
    // Oldest first from a saved cursor, as a resumable backfill reads: the client walks ending_before pages.
    const oldest = model[model.length - 1]!;
    const forward = await api.events
      .list({ ending_before: oldest.id, limit: 100 })
      .autoPagingToArray({ limit: 10_000 });
    expect(forward.map((e) => e.id)).toEqual(
      model
        .slice(0, -1)
        .reverse()
        .map((e) => e.id),
    );
  });

  it('filters by type, wildcard, types[] and created', async () => {
    const customers = await api.events
      .list({ type: 'customer.created', limit: 100 })
      .autoPagingToArray({ limit: 1000 });
    expect(customers).toHaveLength(260);
    const charges = await api.events
      .list({ type: 'charge.*', limit: 100 })
      .autoPagingToArray({ limit: 1000 });
    expect(new Set(charges.map((e) => e.type))).toEqual(new Set(['charge.succeeded', 'charge.refunded']));
    expect(charges).toHaveLength(21);
    const money = await api.events
      .list({ types: ['refund.created', 'payout.created'], limit: 100 })
      .autoPagingToArray({ limit: 1000 });
    expect(money.map((e) => e.id)).toEqual(
      model.filter((e) => e.type === 'refund.created' || e.type === 'payout.created').map((e) => e.id),
    );
    const first = model[model.length - 1]!.created;
    const last = model[0]!.created;
    expect(await api.events.list({ created: { gt: last } })).toMatchObject({ data: [], has_more: false });
    const inRange = await api.events
      .list({ created: { gte: first, lte: last }, limit: 100 })
      .autoPagingToArray({ limit: 1000 });
    expect(inRange).toHaveLength(model.length);
  });

  it('pages with starting_after and ending_before from any event, at any limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: model.length - 1 }),
        fc.integer({ min: 1, max: 100 }),
        async (at, limit) => {
          const cursor = model[at]!.id;
          const after = await api.events.list({ starting_after: cursor, limit });
          expect(after.data.map((e) => e.id)).toEqual(model.slice(at + 1, at + 1 + limit).map((e) => e.id));
          expect(after.has_more).toBe(at + 1 + limit < model.length);
          const before = await api.events.list({ ending_before: cursor, limit });
          expect(before.data.map((e) => e.id)).toEqual(
            model.slice(Math.max(0, at - limit), at).map((e) => e.id),
          );
          expect(before.has_more).toBe(at - limit > 0);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses a bad limit, a cursor that is not an event and both type and types, in Stripe’s shape', async () => {
    const bad = async (params: Record<string, unknown>) =>
      api.events.list(params as Stripe.EventListParams).catch((e: Stripe.errors.StripeError) => e);
    expect(await bad({ limit: 101 })).toMatchObject({ statusCode: 400, param: 'limit' });
    expect(await bad({ starting_after: 'evt_missing' })).toMatchObject({
      statusCode: 404,
      code: 'resource_missing',
    });
    expect(await bad({ type: 'refund.created', types: ['payout.created'] })).toMatchObject({
      statusCode: 400,
      param: 'types',
    });
    expect(await bad({ created: { after: 1 } })).toMatchObject({ statusCode: 400, param: 'created' });
    expect(await bad({ type: 'DROP TABLE' })).toMatchObject({ statusCode: 400, param: 'type' });
  });

  it('answers any query with a list or a 4xx in Stripe’s shape, never a 5xx', async () => {
    const key = fc.constantFrom(
      'limit',
      'type',
      'types[]',
      'types[0]',
      'created',
      'created[gte]',
      'created[lt]',
      'created[x]',
      'starting_after',
      'ending_before',
      'delivery_success',
      'types[a][b]',
    );
    const value = fc.oneof(
      fc.constantFrom('0', '1', '100', '101', '-1', 'true', 'charge.*', '*', model[3]!.id, ''),
      fc.string({ maxLength: 12 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 5 }), async (pairs) => {
        const query = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const res = await fetch(`${sb.url}/v1/events?${query}`, {
          headers: { authorization: 'Bearer sk_test_fuzz' },
        });
        const body = (await res.json()) as { object?: string; error?: { type: string; message: string } };
        expect(res.status, query).toBeLessThan(500);
        if (res.status === 200) expect(body.object).toBe('list');
        else expect(body.error?.type, query).toBe('invalid_request_error');
      }),
      { numRuns: 300 },
    );
  });

  it('retrieves one event by id, and 404s an unknown one', async () => {
    const event = await api.events.retrieve(model[5]!.id);
    const { lastResponse: _response, ...fields } = event;
    expect(fields).toEqual(model[5]);
    expect(await api.events.retrieve('evt_nope').catch((e: Stripe.errors.StripeError) => e)).toMatchObject({
      statusCode: 404,
      code: 'resource_missing',
    });
  });
});

describe('events on disk', () => {
  it('are still listed after the sandbox restarts on the same file', async () => {
    const path = join(dir, 'restart.db');
    const first = await startSandbox({ dbPath: path });
    const before = await client(first.port).refunds.create({
      charge: (await client(first.port).charges.create({ amount: 100, currency: 'usd', source: 'tok_visa' }))
        .id,
    });
    const listed = await client(first.port).events.list({ limit: 100 });
    await first.close();
    const second = await startSandbox({ dbPath: path });
    try {
      const again = await client(second.port).events.list({ limit: 100 });
      expect(again.data.map((e) => e.id)).toEqual(listed.data.map((e) => e.id));
      expect(again.data.some((e) => (e.data.object as { id: string }).id === before.id)).toBe(true);
    } finally {
      await second.close();
    }
  });
});

describe('bulk events for backfill tests', () => {
  it('makes 10,000 events in one call, each under a request id of its own', async () => {
    const sb = await startSandbox({ dbPath: join(dir, 'bulk.db') });
    try {
      const started = performance.now();
      const res = await fetch(`${sb.url}/__sandbox/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: '/v1/customers', params: { description: 'backfill' }, count: 10_000 }),
      });
      const ms = performance.now() - started;
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ count: 10_000, events: 10_000 });
      const events = sb.events() as unknown as Stripe.Event[];
      expect(events).toHaveLength(10_000);
      expect(new Set(events.map((e) => e.request?.id)).size).toBe(10_000);
      console.info(`bulk: 10,000 customer.created events in ${Math.round(ms)} ms`);
      const malformed = await fetch(`${sb.url}/__sandbox/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"path":"/v1/customers","count":0}',
      });
      expect(malformed.status).toBe(400);
      const refused = await fetch(`${sb.url}/__sandbox/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: '/v1/refunds', params: { charge: 'ch_missing' }, count: 3 }),
      });
      expect(refused.status).toBe(404);
      expect(sb.events()).toHaveLength(10_000);
    } finally {
      await sb.close();
    }
  });
});

describe('the event stream as a ledger', () => {
  it('adds up to what the charges say, whatever refunds are made, refused and failed later', async () => {
    const sb = await startSandbox();
    const api = client(sb.port);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.oneof(
              fc.record({
                op: fc.constant('refund' as const),
                charge: fc.nat(2),
                amount: fc.integer({ min: 1, max: 700 }),
              }),
              fc.record({ op: fc.constant('fail' as const), pick: fc.nat() }),
            ),
            { maxLength: 12 },
          ),
          async (ops) => {
            sb.reset();
            const charges = await Promise.all(
              [1000, 500, 250].map((amount) =>
                api.charges.create({ amount, currency: 'usd', source: 'tok_visa' }),
              ),
            );
            const refunds: string[] = [];
            for (const op of ops) {
              if (op.op === 'refund') {
                const made = await api.refunds
                  .create({ charge: charges[op.charge]!.id, amount: op.amount })
                  .catch(() => null);
                if (made) refunds.push(made.id);
              } else if (refunds.length > 0) {
                try {
                  sb.failRefund(refunds[op.pick % refunds.length]!);
                } catch {
                  // Already failed: refused, and must have made no event.
                }
              }
            }
            const events = await api.events.list({ limit: 100 }).autoPagingToArray({ limit: 10_000 });
            for (const ch of charges) {
              const net = events.reduce((sum, e) => {
                const refund = e.data.object as Stripe.Refund;
                if (refund.object !== 'refund' || refund.charge !== ch.id) return sum;
                if (e.type === 'refund.created') return sum + refund.amount;
                if (e.type === 'refund.failed') return sum - refund.amount;
                return sum;
              }, 0);
              const now = await api.charges.retrieve(ch.id);
              expect(net).toBe(now.amount_refunded);
              const latest = events.find(
                (e) => e.type === 'charge.refunded' && (e.data.object as Stripe.Charge).id === ch.id,
              );
              const failures = events.filter(
                (e) => e.type === 'refund.failed' && (e.data.object as Stripe.Refund).charge === ch.id,
              );
              // Without later failures, the newest charge.refunded carries the charge as it now stands.
              if (latest && failures.length === 0) {
                expect((latest.data.object as Stripe.Charge).amount_refunded).toBe(now.amount_refunded);
              }
            }
            expect(events.filter((e) => e.type === 'refund.created')).toHaveLength(refunds.length);
            expect(events.filter((e) => e.type === 'refund.failed').length).toBe(
              new Set(
                events
                  .filter((e) => e.type === 'refund.failed')
                  .map((e) => (e.data.object as Stripe.Refund).id),
              ).size,
            );
          },
        ),
        { numRuns: 25 },
      );
    } finally {
      await sb.close();
    }
  });
});
