import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalJson,
  encodeForm,
  ParamError,
  type Params,
  parseForm,
  parseQuery,
} from '../../src/stripe/params.ts';

interface Captured {
  method: string;
  path: string;
  query: string;
  body: string;
}

// A bare HTTP server standing in for api.stripe.com, so the real client's wire format is what gets parsed.
let server: Server;
let stripe: Stripe;
const captured: Captured[] = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    captured.push({
      method: req.method ?? '',
      path: url.pathname,
      query: url.search,
      body: await readBody(req),
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'obj_1', object: 'refund' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  stripe = new Stripe('sk_test_airlock', { host: '127.0.0.1', port, protocol: 'http', maxNetworkRetries: 0 });
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function lastRequest(): Captured {
  const request = captured.at(-1);
  if (!request) throw new Error('the client sent nothing');
  return request;
}

describe('parseForm', () => {
  it('reads bracket notation for metadata and expand', () => {
    expect(parseForm('charge=ch_1&metadata[order]=42&expand[0]=charge')).toEqual({
      charge: 'ch_1',
      metadata: { order: '42' },
      expand: ['charge'],
    });
  });

  it('reads percent-encoded brackets and values the same as literal ones', () => {
    expect(parseForm('metadata%5Bnote%5D=a%20b%2Bc&description=x+y')).toEqual({
      metadata: { note: 'a b+c' },
      description: 'x y',
    });
  });

  it('reads arrays of objects such as subscription items', () => {
    expect(parseForm('items[0][price]=price_1&items[0][quantity]=2&items[1][price]=price_2')).toEqual({
      items: [{ price: 'price_1', quantity: '2' }, { price: 'price_2' }],
    });
  });

  it('keeps an empty value, which Stripe uses to unset a field', () => {
    expect(parseForm('description=&metadata[a]=')).toEqual({ description: '', metadata: { a: '' } });
  });

  it('turns a repeated key into an array instead of keeping one of the values', () => {
    expect(parseForm('amount=100&amount=900000')).toEqual({ amount: ['100', '900000'] });
  });

  it('reads nesting ten levels deep', () => {
    expect(parseForm('a[b][c][d][e][f][g][h][i][j]=1')).toEqual({
      a: { b: { c: { d: { e: { f: { g: { h: { i: { j: '1' } } } } } } } } },
    });
  });

  it('refuses nesting deeper than it can represent rather than flattening it', () => {
    const deep = `a${'[x]'.repeat(40)}=1`;
    expect(() => parseForm(deep)).toThrow(ParamError);
  });

  it('refuses a body with too many parameters rather than dropping the rest', () => {
    const body = Array.from({ length: 5_001 }, (_, i) => `metadata[k${i}]=v`).join('&');
    expect(() => parseForm(body)).toThrow(ParamError);
  });

  it('keeps a large array index as a key so nothing is lost', () => {
    expect(parseForm('metadata[5000]=x')).toEqual({ metadata: { '5000': 'x' } });
  });

  it('returns an empty object for an empty body', () => {
    expect(parseForm('')).toEqual({});
  });

  it('cannot pollute Object.prototype through __proto__ or constructor keys', () => {
    const parsed = parseForm(
      '__proto__[polluted]=1&constructor[prototype][polluted]=1&a[__proto__][polluted]=1&ok=1',
    );
    expect(parsed).toEqual({ ok: '1' });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.hasOwn(parsed, '__proto__')).toBe(false);
  });

  it('does not leak a malformed percent sequence as an exception', () => {
    expect(parseForm('description=100%&x=%ZZ')).toEqual({ description: '100%', x: '%ZZ' });
  });
});

describe('parseQuery', () => {
  it('reads a query string with or without the leading question mark', () => {
    const expected = { limit: '3', customer: 'cus_1', expand: ['data.charge'] };
    expect(parseQuery('?limit=3&customer=cus_1&expand[0]=data.charge')).toEqual(expected);
    expect(parseQuery('limit=3&customer=cus_1&expand[0]=data.charge')).toEqual(expected);
  });

  it('reads nested filters such as created[gte]', () => {
    expect(parseQuery('created[gte]=1700000000&created[lt]=1800000000')).toEqual({
      created: { gte: '1700000000', lt: '1800000000' },
    });
  });

  it('returns an empty object for an empty query', () => {
    expect(parseQuery('')).toEqual({});
    expect(parseQuery('?')).toEqual({});
  });
});

describe('encodeForm', () => {
  it('writes bracket notation with indexed arrays', () => {
    expect(
      encodeForm({ charge: 'ch_1', metadata: { order: '42' }, expand: ['charge', 'payment_intent'] }),
    ).toBe('charge=ch_1&metadata[order]=42&expand[0]=charge&expand[1]=payment_intent');
  });

  it('writes numbers, booleans and null as Stripe expects', () => {
    expect(encodeForm({ amount: 500, cancel_at_period_end: true, description: null })).toBe(
      'amount=500&cancel_at_period_end=true&description=',
    );
  });

  it('escapes reserved characters in keys and values', () => {
    expect(encodeForm({ metadata: { 'a b&c': "it's=100%" } })).toBe('metadata[a%20b%26c]=it%27s%3D100%25');
  });

  it('round-trips through parseForm', () => {
    const params: Params = {
      amount: '60000',
      metadata: { order: '42', 'note with spaces': 'é & ü' },
      items: [{ price: 'price_1', quantity: '2' }, { price: 'price_2' }],
      expand: ['charge'],
      description: '',
    };
    expect(parseForm(encodeForm(params))).toEqual(params);
  });
});

describe('the official stripe client', () => {
  it('sends refund bodies that parse back to the params it was given', async () => {
    await stripe.refunds.create({
      charge: 'ch_1',
      amount: 60000,
      reason: 'requested_by_customer',
      metadata: { order: '42', note: 'café & more' },
      expand: ['charge'],
    });
    const request = lastRequest();
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/v1/refunds');
    expect(parseForm(request.body)).toEqual({
      charge: 'ch_1',
      amount: '60000',
      reason: 'requested_by_customer',
      metadata: { order: '42', note: 'café & more' },
      expand: ['charge'],
    });
  });

  it('sends nested arrays that parse back and re-encode to the same bytes', async () => {
    await stripe.subscriptions.update('sub_1', {
      items: [{ id: 'si_1', price: 'price_2', quantity: 3 }, { price: 'price_3' }],
      proration_behavior: 'none',
      cancel_at_period_end: false,
      metadata: { plan: 'pro' },
    });
    const request = lastRequest();
    expect(request.path).toBe('/v1/subscriptions/sub_1');
    const parsed = parseForm(request.body);
    expect(parsed).toEqual({
      items: [{ id: 'si_1', price: 'price_2', quantity: '3' }, { price: 'price_3' }],
      proration_behavior: 'none',
      cancel_at_period_end: 'false',
      metadata: { plan: 'pro' },
    });
    expect(encodeForm(parsed)).toBe(request.body);
  });

  it('sends list filters in the query string that parseQuery reads', async () => {
    await stripe.charges.list({ customer: 'cus_1', limit: 3, created: { gte: 1700000000 } });
    const request = lastRequest();
    expect(request.method).toBe('GET');
    expect(parseQuery(request.query)).toEqual({
      customer: 'cus_1',
      limit: '3',
      created: { gte: '1700000000' },
    });
  });
});

describe('canonicalJson', () => {
  it('gives the same text whatever the key order, at every level', () => {
    const a = { b: 1, a: { y: [1, { q: 1, p: 2 }], x: null } };
    const b = { a: { x: null, y: [1, { p: 2, q: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"x":null,"y":[1,{"p":2,"q":1}]},"b":1}');
  });

  it('keeps array order, which is meaningful', () => {
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
  });

  it('tells apart values that differ only in type', () => {
    expect(canonicalJson({ amount: 500 })).not.toBe(canonicalJson({ amount: '500' }));
  });

  it('drops undefined members as JSON does', () => {
    expect(canonicalJson({ a: undefined, b: [undefined] })).toBe('{"b":[null]}');
  });

  it('writes a __proto__ key as data', () => {
    const value = JSON.parse('{"__proto__":{"x":1},"a":1}');
    expect(canonicalJson(value)).toBe('{"__proto__":{"x":1},"a":1}');
  });

  it('uses toJSON, so dates are written as ISO strings', () => {
    expect(canonicalJson({ at: new Date('2025-01-02T03:04:05Z') })).toBe('{"at":"2025-01-02T03:04:05.000Z"}');
  });

  it('refuses a circular structure', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(TypeError);
  });

  it('allows the same object twice when it is not a cycle', () => {
    const shared = { z: 1, a: 2 };
    expect(canonicalJson({ x: shared, y: shared })).toBe('{"x":{"a":2,"z":1},"y":{"a":2,"z":1}}');
  });
});
