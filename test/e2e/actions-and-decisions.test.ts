// The SafeFetch-, Cheqpoint- and Axiru-style surfaces: wrap any HTTP call, ask first, and signed callbacks.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { ACTIONS_POLICY, ACTIONS_ROUTES, type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';

const SECRET = 'whsec_test_0123456789abcdef';
let stack: Stack;
let upstream: Receiver;
let other: Receiver;
let hooks: Receiver;

/** An independent check of Airlock-Signature, written from the documented scheme rather than Airlock's code. */
function verify(header: string | undefined, body: string): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  if (!parts['t'] || !parts['v1']) return false;
  const expected = createHmac('sha256', SECRET).update(`${parts['t']}.${body}`).digest();
  const given = Buffer.from(parts['v1'], 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

beforeAll(async () => {
  upstream = await startReceiver();
  other = await startReceiver();
  hooks = await startReceiver();
  stack = await startStackWithPolicy(ACTIONS_POLICY, {
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([
      {
        host: '127.0.0.1',
        allow_private: true,
        headers: { authorization: 'Bearer upstream-secret-token' },
        routes: ACTIONS_ROUTES,
      },
      { host: 'localhost', allow_private: false },
      { host: '10.20.30.40', allow_private: false },
    ]),
    AIRLOCK_CALLBACK_SECRET: SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_BACKOFF_MS: '20',
    AIRLOCK_CALLBACK_POLL_MS: '20',
    AIRLOCK_CALLBACK_MAX_ATTEMPTS: '6',
  });
});

afterAll(async () => {
  await stack.close();
  await upstream.close();
  await other.close();
  await hooks.close();
});

function asAgent(path: string, body: unknown, method = 'POST') {
  return stack.api(path, { method, body, token: stack.agentKey });
}

describe('actions API (SafeFetch-style)', () => {
  it('holds a refund call, executes it once after approval, and fires a signed callback with the upstream answer', async () => {
    upstream.respond = () => ({ status: 200, body: { id: 'rf_1', status: 'refunded' } });
    const before = upstream.received.length;
    const created = await asAgent('/api/actions', {
      url: `${upstream.url}/refunds`,
      method: 'POST',
      body: { order: 'ord_42', amount: 60000 },
      kind: 'refund.create',
      amount: 60000,
      currency: 'usd',
      callback: `${hooks.url}/airlock`,
    });
    expect(created.status).toBe(200);
    expect(created.body.status).toBe('awaiting_approval');
    expect(created.body.url).toBe(`${upstream.url}/refunds`);
    expect(upstream.received.length).toBe(before);

    const id = created.body.id;
    await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: { note: 'ok' } });
    const done = (await stack.api(`/api/actions/${id}?wait=10`)).body;
    expect(done.status).toBe('completed');
    expect(done.response_body).toEqual({ id: 'rf_1', status: 'refunded' });

    const calls = upstream.received.slice(before);
    expect(calls).toHaveLength(1);
    expect(JSON.parse(calls[0]!.body)).toEqual({ order: 'ord_42', amount: 60000 });
    expect(calls[0]!.headers['idempotency-key']).toBe(`airlock-${id}`);
    // The operator's credential is added by Airlock; the agent never held it, and the record never shows it.
    expect(calls[0]!.headers['authorization']).toBe('Bearer upstream-secret-token');
    expect(JSON.stringify(done)).not.toContain('upstream-secret-token');

    const hook = await until(() => hooks.received.find((h) => h.body.includes(id)));
    expect(verify(hook.headers['airlock-signature'] as string, hook.body)).toBe(true);
    const event = JSON.parse(hook.body);
    expect(event.type).toBe('action.completed');
    expect(event.data.object.status).toBe('completed');
    expect(event.data.object.response_body.id).toBe('rf_1');
    expect(verify(hook.headers['airlock-signature'] as string, `${hook.body} `)).toBe(false);
  });

  it('runs a call the operator declares as a lookup at once and returns the upstream answer', async () => {
    upstream.respond = () => ({ status: 200, body: { order: 'ord_7', state: 'shipped' } });
    const res = await asAgent('/api/actions', { url: `${upstream.url}/orders/7`, method: 'GET' });
    expect(res.body.kind).toBe('order.lookup');
    expect(res.body.status).toBe('completed');
    expect(res.body.response_body).toEqual({ order: 'ord_7', state: 'shipped' });
  });

  it('refuses a kind or amount that contradicts the declared route and the body, and calls nothing', async () => {
    const before = upstream.received.length;
    const kind = await asAgent('/api/actions', {
      url: `${upstream.url}/refunds`,
      body: { amount: 90000 },
      kind: 'order.lookup',
    });
    expect(kind.status).toBe(400);
    expect(kind.body.error).toMatchObject({ code: 'parameter_invalid', param: 'kind' });
    expect(kind.body.error.message).toContain('refund.create');
    const amount = await asAgent('/api/actions', {
      url: `${upstream.url}/refunds`,
      body: { amount: 90000 },
      amount: 100,
    });
    expect(amount.status).toBe(400);
    expect(amount.body.error).toMatchObject({ code: 'parameter_invalid', param: 'amount' });
    const missing = await asAgent('/api/actions', { url: `${upstream.url}/refunds`, body: { order: 1 } });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatchObject({ code: 'parameter_missing', param: 'body' });
    expect(upstream.received.length).toBe(before);
  });

  it('forces review with approve: true even when the policy would allow', async () => {
    const res = await asAgent('/api/actions', {
      url: `${upstream.url}/orders/8`,
      method: 'GET',
      kind: 'order.lookup',
      approve: true,
    });
    expect(res.body.status).toBe('awaiting_approval');
  });

  it('returns the same action for the same idempotency_key', async () => {
    const body = {
      url: `${upstream.url}/refunds`,
      body: { amount: 90000 },
      kind: 'refund.create',
      amount: 90000,
      currency: 'usd',
      idempotency_key: 'ord-9',
    };
    const a = await asAgent('/api/actions', body);
    const b = await asAgent('/api/actions', body);
    expect(b.body.id).toBe(a.body.id);
  });

  it('blocks what the policy blocks and never calls the upstream', async () => {
    const before = upstream.received.length;
    const res = await asAgent('/api/actions', {
      url: `${upstream.url}/payouts`,
      body: { amount: 100 },
      kind: 'payout.create',
      amount: 100,
      currency: 'usd',
    });
    expect(res.body.status).toBe('blocked');
    expect(upstream.received.length).toBe(before);
  });

  it('refuses credential headers from the agent', async () => {
    const res = await asAgent('/api/actions', {
      url: `${upstream.url}/x`,
      headers: { Authorization: 'Bearer stolen' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('headers.Authorization');
  });

  it('refuses a reviewer token for creating actions', async () => {
    const res = await stack.api('/api/actions', { method: 'POST', body: { url: `${upstream.url}/x` } });
    expect(res.status).toBe(403);
  });

  it('names the field for bad input', async () => {
    const missing = await asAgent('/api/actions', { method: 'POST' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.param).toBe('url');
    const wrongType = await asAgent('/api/actions', { url: `${upstream.url}/x`, amount: 'lots' });
    expect(wrongType.body.error.param).toBe('amount');
    const unknown = await asAgent('/api/actions', { url: `${upstream.url}/x`, surprise: 1 });
    expect(unknown.body.error.param).toBe('surprise');
  });
});

describe('SSRF defences', () => {
  const refused: [string, string][] = [
    ['a host not on the list', 'http://example.org/x'],
    ['a name that resolves to 127.0.0.1', 'http://localhost:1/x'],
    ['a listed private address', 'http://10.20.30.40/x'],
    ['the cloud metadata address', 'http://169.254.169.254/latest/meta-data'],
    ['a URL with credentials', 'http://user:pass@127.0.0.1/x'],
    ['a file URL', 'file:///etc/passwd'],
    ['a gopher URL', 'gopher://127.0.0.1:70/x'],
    ['an IPv4-mapped IPv6 loopback', 'http://[::ffff:127.0.0.1]/x'],
  ];
  for (const [name, url] of refused) {
    it(`refuses ${name}`, async () => {
      const res = await asAgent('/api/actions', { url });
      expect([400, 403]).toContain(res.status);
      expect(res.body.error.param).toBe('url');
    });
  }

  it('follows no redirect to another host', async () => {
    upstream.respond = () => ({ status: 302, headers: { location: `http://localhost:${other.port}/steal` } });
    const before = other.received.length;
    const res = await asAgent('/api/actions', {
      url: `${upstream.url}/orders/9`,
      method: 'GET',
      kind: 'order.lookup',
    });
    expect(res.body.status).toBe('failed');
    expect(res.body.response_code).toBe(302);
    expect(other.received.length).toBe(before);
  });
});

describe('decisions API (Cheqpoint- and Axiru-style)', () => {
  it('allows a small refund intent at once', async () => {
    const res = await asAgent('/api/decisions', {
      intent: { kind: 'refund.create', amount: 2000, currency: 'usd' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      object: 'decision',
      outcome: 'allow',
      status: 'approved',
      reason_code: 'policy_allow',
    });
    expect(res.body.policy_version).toMatch(/^pol_/);
  });

  it('returns modified_details when a reviewer approves half the amount', async () => {
    const asked = await asAgent('/api/decisions', {
      intent: { kind: 'refund.create', amount: 80000, currency: 'usd', metadata: { order: 'ord_5' } },
      summary: 'Refund order 5',
      justification: 'Damaged in transit',
      callback_url: `${hooks.url}/decisions`,
    });
    expect(asked.body.status).toBe('awaiting_approval');
    expect(asked.body.outcome).toBe('review');
    const approved = await stack.api(`/api/actions/${asked.body.id}/approve`, {
      method: 'POST',
      body: { note: 'half now, half after the return', changes: { amount: 40000 } },
    });
    expect(approved.status).toBe(200);
    const decided = (await asAgent(`/api/decisions/${asked.body.id}?wait=5`, undefined, 'GET')).body;
    expect(decided.status).toBe('approved');
    expect(decided.reason_code).toBe('reviewer_approved');
    expect(decided.modified_details).toEqual({ amount: 40000 });
    expect(decided.decision_note).toBe('half now, half after the return');
    expect(decided.intent.amount).toBe(40000);
    const hook = await until(() => hooks.received.find((h) => h.body.includes(asked.body.id)));
    expect(JSON.parse(hook.body).type).toBe('decision.approved');
    expect(verify(hook.headers['airlock-signature'] as string, hook.body)).toBe(true);
  });

  it('returns the same decision for a retried idempotency key and 409 for a different intent', async () => {
    const body = {
      intent: { kind: 'refund.create', amount: 70000, currency: 'usd' },
      idempotency_key: 'axiru-1',
    };
    const a = await asAgent('/api/decisions', body);
    const b = await asAgent('/api/decisions', body);
    expect(b.body.id).toBe(a.body.id);
    const c = await asAgent('/api/decisions', { ...body, intent: { ...body.intent, amount: 70001 } });
    expect(c.status).toBe(409);
    expect(c.body.error.param).toBe('idempotency_key');
    expect(c.body.error.message).toContain('different intent');
  });

  it('does not let an agent approve its own decision', async () => {
    const asked = await asAgent('/api/decisions', {
      intent: { kind: 'refund.create', amount: 99000, currency: 'usd' },
    });
    const res = await asAgent(`/api/actions/${asked.body.id}/approve`, {});
    expect(res.status).toBe(403);
  });
});

describe('callback delivery', () => {
  it('retries a failing receiver and delivers once acknowledged, with the same event id every try', async () => {
    const flaky = await startReceiver();
    flaky.respond = (_r, n) => (n <= 3 ? { status: 500 } : { status: 200 });
    try {
      const asked = await asAgent('/api/decisions', {
        intent: { kind: 'refund.create', amount: 1000, currency: 'usd' },
        callback_url: `${flaky.url}/hook`,
      });
      await until(() => (flaky.received.length >= 4 ? true : undefined));
      await new Promise((r) => setTimeout(r, 200));
      expect(flaky.received).toHaveLength(4);
      const ids = new Set(flaky.received.map((r) => r.headers['airlock-event-id']));
      expect(ids.size).toBe(1);
      expect(new Set(flaky.received.map((r) => JSON.parse(r.body).id)).size).toBe(1);
      const action = (await stack.api(`/api/actions/${asked.body.id}`)).body;
      expect(action.callbacks).toEqual([
        expect.objectContaining({ attempts: 4, last_status: 200, delivered_at: expect.any(String) }),
      ]);
    } finally {
      await flaky.close();
    }
  });
});

describe('OpenAPI', () => {
  it('serves a document that a standard OpenAPI 3.1 validator accepts and that describes the request schemas', async () => {
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const res = await fetch(`${stack.airlock.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    const doc = await res.json();
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.components.schemas.CreateDecisionRequest.required).toContain('intent');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/actions', '/api/decisions', '/api/actions/{id}/approve']),
    );
  });
});
