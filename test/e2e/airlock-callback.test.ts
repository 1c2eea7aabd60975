// The Airlock-Callback header on the Stripe proxy: the official `stripe` client names where an action's outcome is
// POSTed. A bad, private or non-http(s) URL is refused with a Stripe-shaped 400 naming the header, recording nothing;
// the header never reaches Stripe; a repeated Idempotency-Key with another callback returns the first action as it was.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGNATURE_HEADER, verifyWebhook } from '../../src/sdk/webhooks.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { rejection, type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';
import { type Recorder, startRecorder } from '../helpers/upstream-recorder.ts';

const SECRET = 'airlock_test_callback_secret';

let open: Stack; // callbacks to loopback allowed, so a local receiver can take them; Stripe behind a recording hop
let strict: Stack; // the default: private addresses refused
let receiver: Receiver;
let upstream: Recorder;
beforeAll(async () => {
  receiver = await startReceiver();
  upstream = await startRecorder();
  open = await startStackWithPolicy(['default: allow'], {
    STRIPE_API_BASE: upstream.url,
    AIRLOCK_CALLBACK_SECRET: SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_POLL_MS: '50',
  });
  upstream.target = open.sandbox.url;
  strict = await startStackWithPolicy(['default: allow'], { AIRLOCK_CALLBACK_SECRET: SECRET });
});
afterAll(async () => {
  await open?.close();
  await strict?.close();
  await upstream?.close();
  await receiver?.close();
});

const count = async (s: Stack) => (await s.airlock.store.listActions({ limit: 500 })).rows.length;

describe('the Airlock-Callback header', () => {
  it('delivers a signed action.completed callback, and never reaches Stripe', async () => {
    const ch = await open.direct.charges.create({ amount: 5_000, currency: 'usd', source: 'tok_visa' });
    const url = `${receiver.url}/completed`;
    const from = upstream.seen.length;
    const refund = await open.agent.refunds.create(
      { charge: ch.id, amount: 1_200 },
      { headers: { 'Airlock-Callback': url } },
    );
    expect(refund.status).toBe('succeeded');
    const sent = upstream.seen.slice(from);
    expect(sent.filter((r) => r.method === 'POST' && r.path.startsWith('/v1/refunds'))).toHaveLength(1);
    for (const r of sent) {
      expect(r.headers['airlock-callback']).toBeUndefined();
      expect(JSON.stringify(r.headers)).not.toContain(receiver.url);
    }
    const got = await until(() => receiver.received.find((r) => r.url === '/completed'));
    const event = verifyWebhook(got.body, got.headers[SIGNATURE_HEADER], SECRET);
    expect(event.type).toBe('action.completed');
    expect(event.data.object).toMatchObject({ status: 'completed' });
    const row = await open.airlock.engine.get((event.data.object as { id: string }).id);
    expect(row.callback_url).toBe(url);
    expect(row.response_body).toContain(refund.id);
  });

  it('keeps the first callback when the same Idempotency-Key comes back with another', async () => {
    const ch = await open.direct.charges.create({ amount: 5_000, currency: 'usd', source: 'tok_visa' });
    const key = `cb-replay-${ch.id}`;
    const params = { charge: ch.id, amount: 700 };
    const first = await open.agent.refunds.create(params, {
      idempotencyKey: key,
      headers: { 'Airlock-Callback': `${receiver.url}/first` },
    });
    const before = await count(open);
    const again = await open.agent.refunds.create(params, {
      idempotencyKey: key,
      headers: { 'Airlock-Callback': `${receiver.url}/second` },
    });
    expect(again.id).toBe(first.id);
    expect(await count(open)).toBe(before);
    const rows = (await open.airlock.store.listActions({ limit: 500 })).rows.filter((a) =>
      a.response_body?.includes(first.id),
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.callback_url).toBe(`${receiver.url}/first`);
  });

  it('refuses private, non-http(s), over-long and malformed URLs with a 400 naming it, recording nothing', async () => {
    const ch = await strict.direct.charges.create({ amount: 5_000, currency: 'usd', source: 'tok_visa' });
    const before = await count(strict);
    const bad = fc.oneof(
      fc.constantFrom(
        'http://127.0.0.1/cb',
        'http://localhost:8080/cb',
        'https://10.1.2.3/cb',
        'http://192.168.0.1/',
        'http://[::1]/cb',
        'http://169.254.169.254/latest',
        'file:///etc/passwd',
        'ftp://example.com/cb',
        'javascript:alert(1)',
        'https://user:pw@example.com/cb',
        '',
      ),
      fc
        .ipV4()
        .filter((ip) => /^(10|127|0)\./.test(ip))
        .map((ip) => `http://${ip}/cb`),
      fc.integer({ min: 2049, max: 4000 }).map((n) => `https://example.com/${'a'.repeat(n - 20)}`),
      fc.stringMatching(/^[a-z ]{1,30}$/),
    );
    await fc.assert(
      fc.asyncProperty(bad, async (url) => {
        const err = await rejection(
          strict.agent.refunds.create(
            { charge: ch.id, amount: 100 },
            { headers: { 'Airlock-Callback': url } },
          ),
        );
        expect(err.statusCode).toBe(400);
        expect(err.type).toBe('StripeInvalidRequestError');
        expect(err.raw.param).toBe('Airlock-Callback');
      }),
      { numRuns: 40 },
    );
    expect(await count(strict)).toBe(before);
  });
});
