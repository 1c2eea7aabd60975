// Malformed input gets a specific Stripe-shaped 4xx, is never forwarded, and never takes the server down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({});
});
afterAll(async () => {
  await stack.close();
});

async function send(
  path: string,
  init: { method?: string; body?: string; type?: string | null; key?: string | null } = {},
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  const key = init.key === undefined ? stack.agentKey : init.key;
  if (key) headers['authorization'] = `Bearer ${key}`;
  const type = init.type === undefined ? 'application/x-www-form-urlencoded' : init.type;
  if (type && init.body !== undefined) headers['content-type'] = type;
  const res = await fetch(`${stack.airlock.url}${path}`, {
    method: init.method ?? 'POST',
    headers,
    body: init.body,
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

const cases: {
  name: string;
  path: string;
  init: Parameters<typeof send>[1];
  status: number;
  code: string;
  param?: string;
}[] = [
  {
    name: 'a negative amount',
    path: '/v1/refunds',
    init: { body: 'charge=ch_1&amount=-500' },
    status: 400,
    code: 'parameter_invalid_integer',
    param: 'amount',
  },
  {
    name: 'a fractional amount',
    path: '/v1/refunds',
    init: { body: 'charge=ch_1&amount=12.5' },
    status: 400,
    code: 'parameter_invalid_integer',
    param: 'amount',
  },
  {
    name: 'an exponent amount',
    path: '/v1/payouts',
    init: { body: 'amount=1e9&currency=usd' },
    status: 400,
    code: 'parameter_invalid_integer',
    param: 'amount',
  },
  {
    name: 'an amount beyond 2^53',
    path: '/v1/transfers',
    init: { body: 'amount=9007199254740993&currency=usd&destination=acct_1' },
    status: 400,
    code: 'parameter_invalid_integer',
    param: 'amount',
  },
  {
    name: 'an amount given as an array',
    path: '/v1/refunds',
    init: { body: 'charge=ch_1&amount[0]=5' },
    status: 400,
    code: 'parameter_invalid_integer',
    param: 'amount',
  },
  {
    name: 'a bad currency',
    path: '/v1/payouts',
    init: { body: 'amount=100&currency=dollars' },
    status: 400,
    code: 'parameter_invalid',
    param: 'currency',
  },
  {
    name: 'a body over the size limit',
    path: '/v1/refunds',
    init: { body: `charge=ch_1&metadata[x]=${'a'.repeat(1_100_000)}` },
    status: 413,
    code: 'body_too_large',
  },
  {
    name: 'a plain-text body',
    path: '/v1/refunds',
    init: { body: 'refund please', type: 'text/plain' },
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'broken JSON on a v2 path',
    path: '/v2/core/events',
    init: { body: '{"a":', type: 'application/json' },
    status: 400,
    code: 'malformed_body',
  },
  {
    name: 'no key',
    path: '/v1/refunds',
    init: { body: 'charge=ch_1', key: null },
    status: 401,
    code: 'authentication_required',
  },
  {
    name: 'an unknown key',
    path: '/v1/refunds',
    init: { body: 'charge=ch_1', key: 'sk_live_stolen_or_wrong' },
    status: 401,
    code: 'invalid_api_key',
  },
  {
    name: 'an unknown top-level path',
    path: '/v3/refunds',
    init: { body: 'charge=ch_1' },
    status: 404,
    code: 'unknown_path',
  },
  {
    name: 'a path with an encoded traversal',
    path: '/v1/refunds/..%2F..%2Fadmin',
    init: { body: 'a=1' },
    status: 404,
    code: 'unknown_path',
  },
  {
    name: 'an unsupported method',
    path: '/v1/refunds',
    init: { method: 'PUT', body: 'a=1' },
    status: 404,
    code: 'unknown_path',
  },
];

describe('the Stripe proxy refuses malformed requests', () => {
  for (const c of cases) {
    it(`answers ${c.name} with ${c.status} ${c.code} and forwards nothing`, async () => {
      const before = stack.sandbox.requests().length;
      const actionsBefore = (await stack.api('/api/actions?limit=100')).body.data.length;
      const res = await send(c.path, c.init);
      expect(res.status).toBe(c.status);
      expect(res.body.error.code).toBe(c.code);
      expect(typeof res.body.error.message).toBe('string');
      expect(res.body.error.type).toBeDefined();
      if (c.param) expect(res.body.error.param).toBe(c.param);
      expect(stack.sandbox.requests().length).toBe(before);
      expect((await stack.api('/api/actions?limit=100')).body.data.length).toBe(actionsBefore);
      expect(JSON.stringify(res.body)).not.toContain('sk_live_stolen_or_wrong');
    });
  }

  it('is still healthy after all of it', async () => {
    const res = await fetch(`${stack.airlock.url}/healthz`);
    expect(res.status).toBe(200);
  });
});

describe('the review API refuses malformed requests', () => {
  it('answers an unknown field with 400 naming it', async () => {
    const res = await stack.api('/api/actions/act_nope/approve', {
      method: 'POST',
      body: { note: 'x', amount: 5 },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('parameter_invalid');
  });

  it('answers an unknown action with 404', async () => {
    const res = await stack.api('/api/actions/act_nope/approve', { method: 'POST', body: {} });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('resource_missing');
  });

  it('answers a bad list filter with 400', async () => {
    const res = await stack.api('/api/actions?status=maybe');
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('status');
  });

  it('answers a missing credential with 401', async () => {
    const res = await fetch(`${stack.airlock.url}/api/actions`);
    expect(res.status).toBe(401);
  });
});
