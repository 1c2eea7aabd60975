// Issue 15, class 2: the bytes Stripe receives must mean what Airlock classified, on refunds, payouts and transfers. Generated form and JSON bodies
// (long, nested, repeated, oddly encoded) go to the proxy as raw bytes. For every body Airlock accepts, what the
// sandbox parses from the bytes it received, under its own limits, classifies exactly as the stored action; a body
// Airlock refuses reaches nobody.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classify } from '../../src/stripe/classify.ts';
import {
  parseForm as sandboxParseForm,
  parseJson as sandboxParseJson,
} from '../../src/stripe/sandbox/body.ts';
import { charge, type Stack, startStackWithPolicy } from '../helpers/stack.ts';

type Pair = [string, string];

const amountValue = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 50_000 }).map(String) }, // allowed: at most $500
  { weight: 2, arbitrary: fc.integer({ min: 50_001, max: 5_000_000 }).map(String) }, // held
  {
    weight: 1,
    arbitrary: fc.constantFrom('0', '-5', '1e2', '100.5', ' 100', '0x10', '', '１００', '100%00'),
  },
);

const filler = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 30 }) },
  { weight: 2, arbitrary: fc.integer({ min: 4_990, max: 5_010 }) },
  { weight: 1, arbitrary: fc.integer({ min: 9_990, max: 10_010 }) },
);

/** The ways a body can hide its amount: last after thousands of pairs, repeated, percent-encoded, nested. */
const amountShape = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('plain', 'last') },
  { weight: 3, arbitrary: fc.constantFrom('twice', 'encoded-key', 'nested', 'absent', 'bracket-json') },
);

/** Money endpoints whose amount is a top-level parameter; `base` is what each request carries besides it. */
const ENDPOINTS = [
  { path: '/v1/refunds', kind: 'refund.create', base: (chargeId: string): Pair[] => [['charge', chargeId]] },
  { path: '/v1/payouts', kind: 'payout.create', base: (): Pair[] => [['currency', 'usd']] },
  {
    path: '/v1/transfers',
    kind: 'transfer.create',
    base: (): Pair[] => [
      ['currency', 'usd'],
      ['destination', 'acct_encoding'],
    ],
  },
] as const;
type Endpoint = (typeof ENDPOINTS)[number];

interface Case {
  endpoint: Endpoint;
  encoding: 'form' | 'json';
  amount: string;
  second: string;
  shape: string;
  filler: number;
  extra: [string, string][];
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  endpoint: fc.constantFrom(...ENDPOINTS),
  encoding: fc.constantFrom('form' as const, 'json' as const),
  amount: amountValue,
  second: amountValue,
  shape: amountShape,
  filler,
  extra: fc.array(
    fc.tuple(
      fc.oneof(
        {
          weight: 30,
          arbitrary: fc.constantFrom('metadata[a]', 'metadata[b][c]', 'reason', 'instructions_email'),
        },
        { weight: 1, arbitrary: fc.constantFrom('expand[0]', 'a]b', '[x') },
      ),
      fc.string({ maxLength: 12 }),
    ),
    { maxLength: 3 },
  ),
});

function formBody(c: Case, chargeId: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%5B/g, '[').replace(/%5D/g, ']');
  const pairs: Pair[] = [...c.endpoint.base(chargeId)];
  if (c.shape === 'plain') pairs.push(['amount', c.amount]);
  for (const [k, v] of c.extra) pairs.push([k, v]);
  for (let i = 0; i < c.filler; i++) pairs.push([`metadata[k${i}]`, 'v']);
  const text = pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`);
  switch (c.shape) {
    case 'last':
    case 'bracket-json':
      text.push(`amount=${enc(c.amount)}`);
      break;
    case 'twice':
      text.push(`amount=${enc(c.amount)}`, `amount=${enc(c.second)}`);
      break;
    case 'encoded-key':
      text.push(`%61mount=${enc(c.amount)}`);
      break;
    case 'nested':
      text.push(`amount[value]=${enc(c.amount)}`);
      break;
  }
  return text.join('&');
}

function jsonBody(c: Case, chargeId: string): string {
  const body: Record<string, unknown> = Object.fromEntries(c.endpoint.base(chargeId));
  const asNumber = /^\d+$/.test(c.amount) ? Number(c.amount) : c.amount;
  if (c.shape === 'plain' || c.shape === 'last' || c.shape === 'encoded-key') body['amount'] = asNumber;
  if (c.shape === 'nested') body['amount'] = { value: asNumber };
  if (c.shape === 'bracket-json') body['metadata[amount]'] = c.amount;
  // Well-formed bracket names become nested objects, as a JSON caller writes them; malformed ones stay flat.
  for (const [k, v] of c.extra) {
    const path = /^\w+(\[\w+\])*$/.test(k) ? k.split(/[[\]]+/).filter(Boolean) : [k];
    let at = body;
    for (const part of path.slice(0, -1)) {
      if (typeof at[part] !== 'object' || at[part] === null) at[part] = {};
      at = at[part] as Record<string, unknown>;
    }
    at[path.at(-1)!] = v;
  }
  const metadata = (typeof body['metadata'] === 'object' ? body['metadata'] : {}) as Record<string, unknown>;
  for (let i = 0; i < c.filler; i++) metadata[`k${i}`] = 'v';
  if (c.filler > 0) body['metadata'] = metadata;
  let text = JSON.stringify(body);
  // A duplicated key: JSON.parse keeps the last one, another parser might keep the first.
  if (c.shape === 'twice')
    text = `${text.slice(0, -1)},"amount":${JSON.stringify(c.amount)},"amount":${JSON.stringify(c.second)}}`;
  if (c.shape === 'last') text = `${text.slice(0, -1)},"amount":${JSON.stringify(asNumber)}}`;
  return text;
}

describe('bytes forwarded to Stripe', () => {
  let stack: Stack;
  let chargeId: string;
  beforeAll(async () => {
    stack = await startStackWithPolicy([
      'default: review',
      'rules:',
      `  - "Allow if :kind: in ('refund.create', 'payout.create', 'transfer.create') and :amount_in_usd: <= 500"`,
    ]);
    chargeId = (await charge(stack, 99_999_999)).id;
  });
  afterAll(async () => {
    await stack.close();
  });

  it('parse, under the upstream own limits, to parameters that classify as the stored action', async () => {
    let forwarded = 0;
    let held = 0;
    let refused = 0;
    const reached = new Set<string>();
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const body = c.encoding === 'form' ? formBody(c, chargeId) : jsonBody(c, chargeId);
        const before = stack.sandbox.requests().filter((r) => r.method === 'POST').length;
        const res = await fetch(`${stack.airlock.url}${c.endpoint.path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${stack.agentKey}`,
            'content-type': c.encoding === 'form' ? 'application/x-www-form-urlencoded' : 'application/json',
          },
          body,
        });
        const answer = (await res.json()) as { error?: { code?: string; type?: string } };
        const id = res.headers.get('airlock-action');
        if (!id) {
          // Refused before any record: a specific 4xx, and nothing reached the upstream.
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(answer.error?.type).toBe('invalid_request_error');
          expect(stack.sandbox.requests().filter((r) => r.method === 'POST').length).toBe(before);
          refused++;
          return;
        }
        const action = (await stack.api(`/api/actions/${id}`)).body;
        const sent = stack.sandbox.requests().filter((r) => r.idempotencyKey === `airlock-${id}`);
        if (action.status === 'awaiting_approval' || action.status === 'blocked') {
          expect(sent).toHaveLength(0);
          held++;
        } else {
          expect(sent.length).toBeGreaterThan(0);
          forwarded++;
        }
        for (const r of sent) {
          expect(r.refused).toBeNull();
          const upstream = classify({ method: 'POST', path: c.endpoint.path, params: r.params as never });
          expect(upstream.kind).toBe(c.endpoint.kind);
          expect(upstream.kind).toBe(action.kind);
          expect(upstream.amount).toBe(action.amount);
          if (c.endpoint.kind === 'refund.create') expect(upstream.charge).toBe(chargeId);
        }
        if (res.status === 200) expect((answer as { amount?: number }).amount).toBe(action.amount);
        reached.add(`${c.endpoint.kind}:${action.status === 'awaiting_approval' ? 'held' : 'sent'}`);
        // What is stored is what will be sent: the bytes, parsed by the upstream's own parser.
        const stored = (await stack.airlock.store.getAction(id))!;
        expect(stored.body).not.toBeNull();
        const reparsed = sandboxParseForm(stored.body!, 'body');
        expect(classify({ method: 'POST', path: c.endpoint.path, params: reparsed as never }).amount).toBe(
          action.amount,
        );
      }),
      { numRuns: 240 },
    );
    // The generator must reach every branch, or the property proves less than it says.
    expect(forwarded).toBeGreaterThan(0);
    expect(held).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    for (const e of ENDPOINTS)
      expect([...reached]).toEqual(expect.arrayContaining([`${e.kind}:held`, `${e.kind}:sent`]));
  }, 120_000);

  it('refuses the 10,000-pair body whose amount sits last instead of refunding the whole charge', async () => {
    const pairs = Array.from({ length: 9_998 }, (_, i) => `metadata[k${i}]=v`);
    const body = [`charge=${chargeId}`, ...pairs, 'amount=100'].join('&');
    const before = stack.sandbox.list('refund').length;
    const res = await fetch(`${stack.airlock.url}/v1/refunds`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${stack.agentKey}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body,
    });
    expect(res.status).toBe(400);
    const answer = (await res.json()) as { error: { type: string; code: string; message: string } };
    expect(answer.error.code).toBe('parameter_invalid');
    expect(answer.error.message).toMatch(/Too many parameters/);
    expect(stack.sandbox.list('refund')).toHaveLength(before);
  });

  it('refuses a JSON body to a v1 path that is over the same limits', async () => {
    const metadata = Object.fromEntries(Array.from({ length: 6_000 }, (_, i) => [`k${i}`, 'v']));
    const res = await fetch(`${stack.airlock.url}/v1/refunds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.agentKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ charge: chargeId, metadata, amount: 100 }),
    });
    expect(res.status).toBe(400);
    expect(stack.sandbox.requests().some((r) => r.method === 'POST' && r.rawBody.includes('k5999'))).toBe(
      false,
    );
  });

  it('parses what it stored with the sandbox parser for JSON v2 bodies too', () => {
    // The v2 path of bindRequest sends JSON.stringify of the parsed params: the sandbox reads it back unchanged.
    const text = JSON.stringify({ amount: { value: 100, currency: 'usd' } });
    expect(sandboxParseJson(text)).toEqual({ amount: { value: 100, currency: 'usd' } });
  });
});
