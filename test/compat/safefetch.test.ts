// SafeFetch's documented flow against a real Airlock, in SafeFetch's field names: only the base URL and the key change.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  type Action,
  AirlockApiError,
  AirlockUnavailableError,
  createSafeFetch,
  type SafeFetch,
  verifyWebhook,
} from 'airlock/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger, type RunningAirlock, startAirlock } from '../../src/server.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { ACTIONS_POLICY, ACTIONS_ROUTES, rejection, tempDir, until } from '../helpers/stack.ts';

const SECRET = 'whsec_safefetch_0123456789abcdef';
const dir = tempDir();
const logLines: string[] = [];
let sandbox: Sandbox;
let airlock: RunningAirlock;
let upstream: Receiver;
let hooks: Receiver;
let agentKey: string;
/** What a SafeFetch user holds after the move: the same calls, Airlock's base URL and an agent key. */
let safeFetch: SafeFetch;
/** Approving is a reviewer's: the same helper with a reviewer token. */
let reviewer: SafeFetch;

beforeAll(async () => {
  upstream = await startReceiver();
  hooks = await startReceiver();
  sandbox = await startSandbox();
  const policy = join(dir, 'policy.yaml');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(policy, ACTIONS_POLICY.join('\n'));
  const config = loadConfig(
    {
      PORT: '0',
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      AIRLOCK_POLICY: policy,
      STRIPE_API_BASE: sandbox.url,
      AIRLOCK_LOG_LEVEL: 'debug',
      AIRLOCK_LOG_FORMAT: 'json',
      AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([
        {
          host: '127.0.0.1',
          allow_private: true,
          headers: { authorization: 'Bearer operator-held-token' },
          routes: ACTIONS_ROUTES,
        },
      ]),
      AIRLOCK_CALLBACK_SECRET: SECRET,
      AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
      AIRLOCK_CALLBACK_BACKOFF_MS: '20',
      AIRLOCK_CALLBACK_POLL_MS: '20',
      AIRLOCK_DISPATCH_POLL_MS: '50',
      AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000',
    },
    undefined,
  );
  const stream = new Writable({
    write(chunk, _enc, done) {
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  airlock = await startAirlock(config, createLogger(config, stream));
  agentKey = (await createAgentKey(airlock.store, 'support-bot')).key;
  const reviewerToken = (await createReviewer(airlock.store, 'finance@example.com')).token;
  safeFetch = createSafeFetch({ baseUrl: airlock.url, apiKey: agentKey });
  reviewer = createSafeFetch({ baseUrl: airlock.url, apiKey: reviewerToken });
});

afterAll(async () => {
  await airlock?.close();
  await sandbox?.close();
  await upstream?.close();
  await hooks?.close();
});

/** Checks Airlock-Signature from the documented scheme, independently of Airlock's code. */
function signedBySecret(header: string | undefined, body: string): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  if (!parts['t'] || !parts['v1']) return false;
  const expected = createHmac('sha256', SECRET).update(`${parts['t']}.${body}`).digest();
  const given = Buffer.from(parts['v1'], 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The action as SafeFetch's callback receives it, checked against Airlock's signature. */
async function callbackFor(id: string, status: string): Promise<Action> {
  const hook = await until(() =>
    hooks.received.find((h) => h.body.includes(id) && JSON.parse(h.body).status === status),
  );
  const header = hook.headers['airlock-signature'] as string;
  expect(signedBySecret(header, hook.body)).toBe(true);
  expect(signedBySecret(header, `${hook.body} `)).toBe(false);
  return verifyWebhook(hook.body, header, SECRET) as unknown as Action;
}

async function settled(id: string, status: string): Promise<Action> {
  const end = Date.now() + 10_000;
  for (;;) {
    const action = await safeFetch.get(id);
    if (action.status === status) return action;
    if (Date.now() > end) throw new Error(`${id} is ${action.status}, not ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Raw bytes of the SQLite file and its write-ahead log: what a key would leave behind if it were stored. */
function databaseBytes(): string {
  return ['airlock.db', 'airlock.db-wal']
    .map((f) => join(dir, f))
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f).toString('latin1'))
    .join('');
}

async function raw(body: unknown, requestId?: string) {
  const res = await fetch(`${airlock.url}/api/safefetch/v1/actions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${agentKey}`,
      'content-type': 'application/json',
      ...(requestId ? { 'request-id': requestId } : {}),
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe("SafeFetch's flow, changing only the base URL and the key", () => {
  it('runs an allowed call at once and its callback receives the action with the upstream answer', async () => {
    upstream.respond = () => ({ status: 200, body: { id: 'rf_small', status: 'refunded' } });
    const action = await safeFetch({
      url: `${upstream.url}/refunds`,
      method: 'POST',
      headers: { 'x-order': 'ord_1' },
      body: { order: 'ord_1', amount: 2000 },
      callback: `${hooks.url}/safefetch`,
    });
    expect(action.id).toMatch(/^act_/);
    expect(action).toMatchObject({ status: 'completed', kind: 'refund.create', amount: 2000 });
    expect(action.response_code).toBe(200);
    expect(action.response_body).toEqual({ id: 'rf_small', status: 'refunded' });
    const posted = await callbackFor(action.id, 'completed');
    expect(posted).toMatchObject({
      id: action.id,
      status: 'completed',
      response_code: 200,
      response_body: { id: 'rf_small', status: 'refunded' },
      last_error: null,
    });
  });

  it('holds a $600 refund as awaiting_approval, runs it once after safeFetch.approve, and calls back', async () => {
    upstream.respond = () => ({ status: 200, body: { id: 'rf_big', status: 'refunded' } });
    const before = upstream.received.length;
    const action = await safeFetch({
      url: `${upstream.url}/refunds`,
      method: 'POST',
      body: { order: 'ord_2', amount: 60000 },
      notify: { email: 'finance@example.com' },
      callback: `${hooks.url}/safefetch`,
    });
    expect(action.status).toBe('awaiting_approval');
    expect(upstream.received.length).toBe(before);
    expect((await safeFetch.get(action.id)).status).toBe('awaiting_approval');

    await reviewer.approve(action.id, { note: 'customer verified' });
    const done = await settled(action.id, 'completed');
    expect(done.approvals).toEqual([
      expect.objectContaining({ decision: 'approve', note: 'customer verified' }),
    ]);
    const calls = upstream.received.slice(before);
    expect(calls).toHaveLength(1);
    expect(JSON.parse(calls[0]!.body)).toEqual({ order: 'ord_2', amount: 60000 });
    expect(calls[0]!.headers['authorization']).toBe('Bearer operator-held-token');
    const posted = await callbackFor(action.id, 'completed');
    expect(posted).toMatchObject({ status: 'completed', response_code: 200, last_error: null });
  });

  it('approves a hold with a lower amount (modified_details): the body is sent with it, once, and calls back', async () => {
    upstream.respond = () => ({ status: 200, body: { id: 'rf_lowered', status: 'refunded' } });
    const before = upstream.received.length;
    const action = await safeFetch({
      url: `${upstream.url}/refunds`,
      method: 'POST',
      body: { order: 'ord_7', amount: 70000, note: 'late delivery' },
      callback: `${hooks.url}/safefetch`,
    });
    expect(action).toMatchObject({ status: 'awaiting_approval', amount: 70000, modified_details: null });

    // Raising is refused in SafeFetch's field names, and leaves the hold as it was.
    const raised = await rejection(reviewer.approve(action.id, { modified_details: { amount: 70001 } }));
    expect(raised).toBeInstanceOf(AirlockApiError);
    expect(raised.status).toBe(400);
    expect(raised.param).toBe('modified_details.amount');
    expect(upstream.received.length).toBe(before);

    const approved = await reviewer.approve(action.id, {
      note: 'half: the rest ships',
      modified_details: { amount: 35000 },
    });
    expect(approved).toMatchObject({ amount: 35000, modified_details: { amount: 35000 } });
    const done = await settled(action.id, 'completed');
    expect(done).toMatchObject({ amount: 35000, modified_details: { amount: 35000 } });
    expect(done.approvals).toEqual([
      expect.objectContaining({
        decision: 'approve',
        note: 'half: the rest ships',
        changes: { amount: 35000 },
      }),
    ]);
    const calls = upstream.received.slice(before);
    expect(calls).toHaveLength(1);
    // Only the amount changed, in place: the rest of the body is the caller's, byte for byte.
    expect(calls[0]!.body).toBe('{"order":"ord_7","amount":35000,"note":"late delivery"}');

    const posted = await callbackFor(action.id, 'completed');
    expect(posted).toMatchObject({
      id: action.id,
      status: 'completed',
      amount: 35000,
      modified_details: { amount: 35000 },
      params: { body: { order: 'ord_7', amount: 35000, note: 'late delivery' } },
      response_code: 200,
      last_error: null,
    });
  });

  it('rejects with a note: never runs, and the callback receives the rejected action', async () => {
    const before = upstream.received.length;
    const action = await safeFetch({
      url: `${upstream.url}/refunds`,
      body: { order: 'ord_3', amount: 90000 },
      callback: `${hooks.url}/safefetch`,
    });
    await reviewer.reject(action.id, { note: 'Refund already issued by hand' });
    const posted = await callbackFor(action.id, 'rejected');
    expect(posted.approvals).toEqual([
      expect.objectContaining({ decision: 'reject', note: 'Refund already issued by hand' }),
    ]);
    expect(posted.response_code).toBeNull();
    expect(upstream.received.length).toBe(before);
  });

  it('lets the agent cancel its held action, and never lets it approve', async () => {
    const action = await safeFetch({ url: `${upstream.url}/refunds`, body: { amount: 80000 } });
    const err = await rejection(safeFetch.approve(action.id));
    expect(err).toBeInstanceOf(AirlockApiError);
    expect(err.status).toBe(403);
    expect(err.code).toBe('forbidden');
    expect((await safeFetch.cancel(action.id)).status).toBe('cancelled');
  });

  it('refuses approve: true with sync: true, naming both fields', async () => {
    const res = await raw({ url: `${upstream.url}/orders/1`, method: 'GET', approve: true, sync: true });
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('sync');
    expect(res.body.error.message).toContain('approve: true');
    expect(res.body.error.message).toContain('sync: true');
  });

  it('forces review with approve: true and answers at once with sync: true alone', async () => {
    const held = await safeFetch({ url: `${upstream.url}/orders/5`, method: 'GET', approve: true });
    expect(held.status).toBe('awaiting_approval');
    upstream.respond = () => ({ status: 200, body: { order: 'ord_6' } });
    const now = await safeFetch({ url: `${upstream.url}/orders/6`, method: 'GET', sync: true });
    expect(now).toMatchObject({ status: 'completed', response_body: { order: 'ord_6' } });
  });

  it('throws AirlockUnavailableError when Airlock cannot be reached, and nothing runs', async () => {
    const before = upstream.received.length;
    const down = createSafeFetch({ baseUrl: 'http://127.0.0.1:1', apiKey: agentKey, maxRetries: 0 });
    const err = await rejection(down({ url: `${upstream.url}/refunds`, body: { amount: 100 } }));
    expect(err).toBeInstanceOf(AirlockUnavailableError);
    expect(upstream.received.length).toBe(before);
  });
});

describe('a Stripe key sent with a SafeFetch call', () => {
  const keys = [
    ['sk_live', `sk_live_${'51Hx'.repeat(6)}LiveSecret`],
    ['sk_test', `sk_test_${'51Hx'.repeat(6)}TestSecret`],
    ['rk_live', `rk_live_${'51Hx'.repeat(6)}Restricted`],
    ['rk_test', `rk_test_${'51Hx'.repeat(6)}Restricted`],
  ] as const;

  for (const [name, key] of keys) {
    it(`refuses ${name} in the Authorization header, explaining that Airlock holds upstream credentials`, async () => {
      const before = upstream.received.length;
      const res = await raw({
        url: `${upstream.url}/refunds`,
        headers: { Authorization: `Bearer ${key}` },
        body: { amount: 100 },
      });
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'parameter_invalid', param: 'headers.Authorization' });
      expect(res.body.error.message).toContain('Airlock holds upstream credentials');
      expect(JSON.stringify(res.body)).not.toContain(key);
      expect(upstream.received.length).toBe(before);
    });
  }

  it('refuses one in another header, the URL or the body, naming where it was', async () => {
    const key = keys[0][1];
    const header = await raw({ url: `${upstream.url}/refunds`, headers: { 'X-Stripe-Key': key } });
    expect(header.body.error.param).toBe('headers.X-Stripe-Key');
    const url = await raw({ url: `${upstream.url}/refunds?key=${key}` });
    expect(url.body.error.param).toBe('url');
    const body = await raw({ url: `${upstream.url}/refunds`, body: { amount: 100, stripe_key: key } });
    expect(body.body.error.param).toBe('body');
  });

  it('stores and logs none of them, while an accepted call leaves its own marker in both', async () => {
    // The marker shows that the scans would find a value that was stored (the URL) and logged (the Request-Id).
    const marker = `marker-${Date.now()}`;
    const ok = await raw({ url: `${upstream.url}/orders/${marker}`, method: 'GET' }, marker);
    expect(ok.status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    const db = databaseBytes();
    const logs = logLines.join('\n');
    expect(db).toContain(marker);
    expect(logs).toContain(marker);
    for (const [, key] of keys) {
      expect(db).not.toContain(key);
      expect(logs).not.toContain(key);
      // Nor a fragment long enough to rebuild or recognise the key.
      expect(db).not.toContain(key.slice(0, 20));
      expect(logs).not.toContain(key.slice(0, 20));
    }
  });
});

describe("errors name SafeFetch's fields", () => {
  it('answers 401 without a key before looking at the body', async () => {
    const res = await fetch(`${airlock.url}/api/safefetch/v1/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ surprise: true }),
    });
    expect(res.status).toBe(401);
  });

  const cases: [string, unknown, string][] = [
    ['no url', { method: 'GET' }, 'url'],
    ['an unknown method', { url: 'http://127.0.0.1:9/x', method: 'FETCH' }, 'method'],
    [
      'a notify email that is not one',
      { url: 'http://127.0.0.1:9/x', notify: { email: 'finance' } },
      'notify.email',
    ],
    ['notify as a list', { url: 'http://127.0.0.1:9/x', notify: ['finance@example.com'] }, 'notify'],
    [
      'an unknown notify channel',
      { url: 'http://127.0.0.1:9/x', notify: { email: 'a@example.com', sms: '+1' } },
      'notify.sms',
    ],
    ['approve as text', { url: 'http://127.0.0.1:9/x', approve: 'yes' }, 'approve'],
    ['an unknown field', { url: 'http://127.0.0.1:9/x', retries: 3 }, 'retries'],
    [
      'a callback that is not http',
      { url: 'http://127.0.0.1:9/x', callback: 'file:///etc/passwd' },
      'callback',
    ],
    ['a host not on the allow-list', { url: 'http://example.org/x' }, 'url'],
    [
      'an Authorization header without a Stripe key',
      { url: 'http://127.0.0.1:9/x', headers: { Authorization: 'Bearer x' } },
      'headers.Authorization',
    ],
  ];
  for (const [name, body, param] of cases) {
    it(`answers 4xx naming ${param} for ${name}`, async () => {
      const res = await raw(body);
      expect([400, 403]).toContain(res.status);
      expect(res.body.error.param).toBe(param);
    });
  }
});
