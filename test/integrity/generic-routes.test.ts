// Issue 15, item 3: on the actions API the operator's declared routes say what a generic call is and how much it
// moves, read from the exact bytes the upstream receives; the caller's `kind` and `amount` can only make it stricter.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import qs from 'qs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { AirlockError } from '../../src/errors.ts';
import { actionFacts, type Route } from '../../src/outbound/routes.ts';
import { cli } from '../helpers/process.ts';
import { type Stack, startStackWithPolicy } from '../helpers/stack.ts';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
}

/** A real upstream that keeps the exact bytes of every request it receives. */
async function startRecorder(): Promise<{ port: number; received: Recorded[]; close(): Promise<void> }> {
  const received: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        raw: Buffer.concat(chunks),
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const REFUND = {
  method: 'POST',
  path: '/v1/orders/:id/refund',
  kind: 'refund.create',
  amount: '/refund/amount',
  currency: '/refund/currency',
};
const PAYOUT = {
  method: 'POST',
  path: '/v1/payouts',
  kind: 'payout.create',
  amount: 'payout[amount]',
  currency: 'payout[currency]',
};
const LOOKUP = { method: 'GET', path: '/v1/orders/*', kind: 'order.lookup' };

const POLICY = [
  'default: review',
  'rules:',
  `  - "Allow if :kind: = 'order.lookup'"`,
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
  `  - "Allow if :kind: = 'payout.create' and :amount_in_usd: <= 100"`,
  // A claim may only tighten: a caller who says "payout" is taken at its word, for the worse.
  `  - "Block if :declared_kind: = 'payout.create'"`,
];
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** `http_upstreams` holding one host with one route: the lookup route with `change` applied. */
const withRoute = (change: Record<string, unknown>) => ({
  AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([{ host: 'api.shop.example', routes: [{ ...LOOKUP, ...change }] }]),
});

let stack: Stack;
// Started first and awaited last: a process boot takes seconds, spent while the other tests run.
let refusedStart: ReturnType<typeof cli>;
let upstream: Awaited<ReturnType<typeof startRecorder>>;
let routed: string;
let unrouted: string;

beforeAll(async () => {
  refusedStart = cli(['serve'], { PORT: '0', ...withRoute({ amount: 'refund[amount' }) });
  upstream = await startRecorder();
  routed = `http://127.0.0.1:${upstream.port}`;
  unrouted = `http://localhost:${upstream.port}`;
  stack = await startStackWithPolicy(POLICY, {
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([
      { host: '127.0.0.1', allow_private: true, routes: [REFUND, PAYOUT, LOOKUP] },
      { host: 'localhost', allow_private: true },
    ]),
  });
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
});

function act(body: Record<string, unknown>) {
  return stack.api('/api/actions', { method: 'POST', body, token: stack.agentKey });
}

/** What the upstream received for an action: dispatch sends `Idempotency-Key: airlock-<id>`. */
function receivedFor(id: string): Recorded[] {
  return upstream.received.filter((r) => r.headers['idempotency-key'] === `airlock-${id}`);
}

describe('the $1,000,000 "refund of $0.01"', () => {
  const million = 100_000_000;
  const attack = { refund: { amount: million, currency: 'usd' } };

  it('refuses the caller’s $0.01 against the body’s $1,000,000, and the upstream receives nothing', async () => {
    const before = upstream.received.length;
    const res = await act({
      url: `${routed}/v1/orders/ord_1/refund`,
      body: attack,
      kind: 'refund.create',
      amount: 1,
      currency: 'usd',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'parameter_invalid',
      param: 'amount',
    });
    expect(res.body.error.message).toContain(String(million));
    expect(upstream.received.length).toBe(before);
  });

  it('holds it for review at the body’s amount when the caller states nothing', async () => {
    const res = await act({ url: `${routed}/v1/orders/ord_1/refund`, body: attack });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'awaiting_approval', kind: 'refund.create', amount: million });
    expect(res.body.decision.rules).toEqual(["Review if :kind: = 'refund.create' and :amount_in_usd: > 500"]);
    expect(receivedFor(res.body.id)).toEqual([]);
  });

  // Each is a way to make the upstream read $1,000,000 where a careless reader would see $0.01, or no route at all.
  const variants: [string, Record<string, unknown>][] = [
    ['a duplicate key', { body: '{"refund":{"amount":1,"currency":"usd","amount":100000000}}' }],
    [
      'a key repeated in another case',
      { body: '{"refund":{"amount":1,"Amount":100000000,"currency":"usd"}}' },
    ],
    [
      'a duplicate parent object',
      { body: '{"refund":{"amount":1,"currency":"usd"},"refund":{"amount":100000000}}' },
    ],
    [
      'an escaped duplicate key',
      { body: '{"refund":{"amount":1,"amo\\u0075nt":100000000,"currency":"usd"}}' },
    ],
    ['a fractional amount', { body: '{"refund":{"amount":0.01,"currency":"usd"}}' }],
    ['an exponent', { body: '{"refund":{"amount":1e8,"currency":"usd"}}' }],
    ['the amount in the query too', { url: '/v1/orders/ord_1/refund?refund[amount]=100000000' }],
    ['a body sent as another media type', { headers: { 'content-type': 'text/plain' } }],
    [
      'two Content-Type headers',
      { headers: { 'Content-Type': 'application/json', 'content-type': 'text/plain' } },
    ],
    ['invalid JSON', { body: '{"refund":{"amount":1,"currency":"usd"},}' }],
  ];
  for (const [name, change] of variants) {
    it(`refuses ${name} with a 400 naming the field, and calls nothing`, async () => {
      const before = upstream.received.length;
      const res = await act({
        url: `${routed}${(change['url'] as string | undefined) ?? '/v1/orders/ord_1/refund'}`,
        body: change['body'] ?? { refund: { amount: 1, currency: 'usd' } },
        ...(change['headers'] ? { headers: change['headers'] } : {}),
        kind: 'refund.create',
      });
      expect(res.status).toBe(400);
      expect(['body', 'headers.content-type']).toContain(res.body.error.param);
      expect(upstream.received.length).toBe(before);
    });
  }

  const paths = [
    '/V1/Orders/ord_1/Refund',
    '/v1/orders/ord_1/refund/',
    '/v1//orders/ord_1/refund',
    '/v1/orders/ord_1/%72efund',
    '/v1/orders/ord_1/refund;x=1',
    '/v1/orders/x/../ord_1/refund',
  ];
  for (const path of paths) {
    it(`still reads the route of ${path}: the caller’s $0.01 is refused`, async () => {
      const res = await act({ url: `${routed}${path}`, body: attack, kind: 'refund.create', amount: 1 });
      expect(res.status).toBe(400);
      expect(res.body.error.param).toBe('amount');
      const held = await act({ url: `${routed}${path}`, body: attack });
      expect(held.body).toMatchObject({
        status: 'awaiting_approval',
        kind: 'refund.create',
        amount: million,
      });
      expect(receivedFor(held.body.id)).toEqual([]);
    });
  }

  it('refuses a repeated form key and a form key spelled another way', async () => {
    const before = upstream.received.length;
    for (const body of [
      'payout[amount]=1&payout[currency]=usd&payout[amount]=100000000',
      'payout[amount]=1&payout[currency]=usd&payout%5Bamount%5D=100000000',
      'payout[amount]=1&payout[currency]=usd&payout.amount=100000000',
      'payout[amount]=1&payout[currency]=usd&Payout[Amount]=100000000',
      'payout[amount]=1&payout[currency]=usd;payout[amount]=100000000',
      'payout[amount]=1&payout[currency]=usd&payout[amount][x]=100000000',
    ]) {
      const res = await act({ url: `${routed}/v1/payouts`, headers: FORM, body, kind: 'payout.create' });
      expect(res.status, body).toBe(400);
      expect(res.body.error.param).toBe('body');
    }
    expect(upstream.received.length).toBe(before);
  });
});

describe('caller claims never lower the route’s valuation (property)', () => {
  const noiseKey = fc.stringMatching(/^[a-z]{1,8}$/).filter((k) => k !== 'refund' && k !== 'payout');
  const noiseValue = fc.oneof(fc.integer({ min: 0, max: 1e9 }), fc.stringMatching(/^[a-z0-9 ]{0,12}$/));

  const request = fc
    .record({
      form: fc.boolean(),
      // Half the amounts sit under both routes' limits, so every outcome is reached in each run.
      amount: fc.oneof(fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 200_000 })),
      honest: fc.boolean(),
      currency: fc.constantFrom('usd', 'eur'),
      amountAsString: fc.boolean(),
      currencyFirst: fc.boolean(),
      asObject: fc.boolean(),
      noise: fc.array(fc.tuple(noiseKey, noiseValue), { maxLength: 4 }),
      duplicate: fc.constantFrom('none', 'none', 'none', 'repeat', 'case'),
      extra: fc.integer({ min: 1, max: 100_000_000 }),
      claimKind: fc.constantFrom('none', 'same', 'other'),
      claimAmount: fc.constantFrom('none', 'same', 'lower', 'higher'),
      claimCurrency: fc.constantFrom('none', 'same', 'other'),
    })
    .map((generated) => {
      // An honest caller sends no fault; the rest pick each field at random, faults included.
      const g = generated.honest
        ? {
            ...generated,
            duplicate: 'none' as const,
            claimKind: generated.claimKind === 'other' ? ('none' as const) : generated.claimKind,
            claimAmount:
              generated.claimAmount === 'lower' || generated.claimAmount === 'higher'
                ? ('same' as const)
                : generated.claimAmount,
            claimCurrency: generated.claimCurrency === 'other' ? ('same' as const) : generated.claimCurrency,
          }
        : generated;
      const route = g.form ? PAYOUT : REFUND;
      const amountText = g.amountAsString || g.form ? JSON.stringify(String(g.amount)) : String(g.amount);
      let body: string;
      if (g.form) {
        const parts = [`payout[amount]=${g.amount}`, `payout%5Bcurrency%5D=${g.currency}`];
        if (g.currencyFirst) parts.reverse();
        if (g.duplicate === 'repeat') parts.push(`payout[amount]=${g.extra}`);
        if (g.duplicate === 'case') parts.push(`PAYOUT[amount]=${g.extra}`);
        for (const [k, v] of g.noise) parts.push(`${k}=${encodeURIComponent(String(v))}`);
        body = parts.join('&');
      } else {
        const members = [`"amount":${amountText}`, `"currency":"${g.currency}"`];
        if (g.currencyFirst) members.reverse();
        if (g.duplicate === 'repeat') members.push(`"amount":${g.extra}`);
        if (g.duplicate === 'case') members.push(`"AMOUNT":${g.extra}`);
        const noise = g.noise.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
        body = `{${[...noise, `"refund":{${members.join(',')}}`].join(',')}}`;
      }
      const claims: Record<string, unknown> = {};
      if (g.claimKind !== 'none') claims['kind'] = g.claimKind === 'same' ? route.kind : 'order.lookup';
      if (g.claimAmount === 'same') claims['amount'] = g.amount;
      if (g.claimAmount === 'lower' && g.amount > 0) claims['amount'] = Math.floor(g.amount / 100);
      if (g.claimAmount === 'higher') claims['amount'] = g.amount + g.extra;
      if (g.claimCurrency !== 'none') claims['currency'] = g.claimCurrency === 'same' ? g.currency : 'jpy';
      const faults = {
        body: g.duplicate !== 'none',
        kind: g.claimKind === 'other',
        amount: claims['amount'] !== undefined && claims['amount'] !== g.amount,
        currency: g.claimCurrency === 'other',
      };
      // A JSON value (not a string) is sent as Airlock serialises it; it holds no duplicates to begin with.
      const sent = !g.form && g.asObject && g.duplicate === 'none' ? JSON.parse(body) : body;
      const bytes = typeof sent === 'string' ? sent : JSON.stringify(sent);
      return { ...g, route, body: sent as unknown, bytes, claims, faults };
    });

  it('accepts only when every claim matches the body, stores the body’s amount, and sends those very bytes', async () => {
    let allowed = 0;
    let held = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const res = await act({
          url: `${routed}${r.form ? '/v1/payouts' : '/v1/orders/ord_9/refund'}`,
          ...(r.form ? { headers: FORM } : {}),
          body: r.body,
          ...r.claims,
        });
        const faults = Object.entries(r.faults)
          .filter(([, f]) => f)
          .map(([name]) => name);
        if (faults.length > 0) {
          refused++;
          expect(res.status).toBe(400);
          expect(res.body.error.type).toBe('invalid_request_error');
          if (faults.length === 1) expect(res.body.error.param).toBe(faults[0]);
          return;
        }
        expect(res.status).toBe(200);
        const action = res.body;
        expect(action).toMatchObject({ kind: r.route.kind, amount: r.amount, currency: r.currency });
        const limit = r.form ? 100 : 500;
        const got = receivedFor(action.id);
        if (action.status === 'completed') {
          expect(r.form && r.claims['kind'] === 'payout.create').toBe(false);
          allowed++;
          expect(action.amount_usd).toBeLessThanOrEqual(limit);
          expect(got).toHaveLength(1);
          const raw = got[0]!.raw.toString('utf8');
          expect(raw).toBe(r.bytes);
          const sent = r.form
            ? Number(new URLSearchParams(raw).get('payout[amount]'))
            : Number(JSON.parse(raw).refund.amount);
          expect(sent).toBe(action.amount);
        } else if (r.form && r.claims['kind'] === 'payout.create') {
          // Saying "payout" on a payout route only adds the policy's rule for declared payouts.
          held++;
          expect(action.status).toBe('blocked');
          expect(got).toEqual([]);
        } else {
          held++;
          expect(action.status).toBe('awaiting_approval');
          expect(action.amount_usd).toBeGreaterThan(limit);
          expect(got).toEqual([]);
        }
      }),
      { numRuns: 100 },
    );
    // The generator reaches every outcome, so the property is not vacuous.
    expect(allowed).toBeGreaterThan(0);
    expect(held).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});

describe('the body reader agrees with the servers that will read the bytes (pure property)', () => {
  const route = (r: typeof REFUND | typeof PAYOUT): Route => ({ ...r, method: ['POST'] });
  // Valid bodies, and the same with one character inserted or removed: near misses find parser disagreements.
  const mutated = (valid: fc.Arbitrary<string>) =>
    fc.oneof(
      valid,
      fc
        .tuple(
          valid,
          fc.nat(),
          fc.constantFrom('"', ',', '}', '{', ':', '\\', ' ', '1', 'e', '.', '-', '&', '=', ';', '%', '['),
        )
        .map(([b, at, c]) => b.slice(0, at % (b.length + 1)) + c + b.slice(at % (b.length + 1))),
      fc
        .tuple(valid, fc.nat())
        .map(([b, at]) => b.slice(0, at % (b.length + 1)) + b.slice((at % (b.length + 1)) + 1)),
    );
  const jsonBody = mutated(
    fc
      .tuple(
        fc.oneof(
          fc.nat(),
          fc.nat().map(String),
          fc.double(),
          fc.constantFrom('007', '-1', '1e3', ' 5', null, true),
        ),
        fc.constantFrom('amount', 'Amount', 'amo\\u0075nt'),
        fc.boolean(),
        fc.json(),
      )
      .map(
        ([amount, key, twice, noise]) =>
          `{"n":${noise},"refund":{"${key}":${JSON.stringify(amount)},"currency":"usd"${twice ? ',"amount":7' : ''}}}`,
      ),
  );
  const formBody = mutated(
    fc
      .tuple(
        fc.oneof(fc.nat().map(String), fc.constantFrom('007', '-1', '1.5', '+5', '5%20', '')),
        fc.constantFrom('payout[amount]', 'payout%5Bamount%5D', 'payout.amount', 'payout[Amount]'),
        fc.boolean(),
      )
      .map(
        ([amount, key, twice]) => `${key}=${amount}&payout[currency]=usd${twice ? '&payout[amount]=7' : ''}`,
      ),
  );

  function read(r: Route, body: string, headers: Record<string, string> = {}) {
    try {
      return actionFacts(r, { method: 'POST', pathname: '/', search: '', headers, body }, {}).amount;
    } catch (err) {
      expect(err).toBeInstanceOf(AirlockError);
      expect(['parameter_invalid', 'parameter_missing']).toContain((err as AirlockError).code);
      return 'refused';
    }
  }

  it('reads a JSON amount only where JSON.parse reads the same one', () => {
    let accepted = 0;
    fc.assert(
      fc.property(jsonBody, (body) => {
        const amount = read(route(REFUND), body);
        if (amount === 'refused') return;
        accepted++;
        const parsed = JSON.parse(body).refund.amount;
        expect(Number(parsed)).toBe(amount);
        expect(String(parsed)).toMatch(/^(0|[1-9][0-9]*)$/);
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(100);
  });

  it('reads a form amount only where URLSearchParams and qs read the same single one', () => {
    let accepted = 0;
    fc.assert(
      fc.property(formBody, (body) => {
        const amount = read(route(PAYOUT), body, FORM);
        if (amount === 'refused') return;
        accepted++;
        const search = new URLSearchParams(body);
        expect(search.getAll('payout[amount]')).toEqual([String(amount)]);
        expect((qs.parse(body) as { payout: { amount: unknown } }).payout.amount).toBe(String(amount));
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('a host with no routes', () => {
  it('values every call as http.request of unknown amount; the caller’s kind is only :declared_kind:', async () => {
    const before = upstream.received.length;
    const lookup = await act({ url: `${unrouted}/v1/orders/1`, method: 'GET', kind: 'order.lookup' });
    expect(lookup.body).toMatchObject({ status: 'awaiting_approval', kind: 'http.request', amount: null });
    expect(lookup.body.decision.rules).toEqual([]);

    const refund = await act({
      url: `${unrouted}/v1/orders/1/refund`,
      body: { refund: { amount: 100_000_000, currency: 'usd' } },
      kind: 'refund.create',
      amount: 1,
      currency: 'usd',
    });
    expect(refund.body).toMatchObject({
      status: 'awaiting_approval',
      kind: 'http.request',
      amount: null,
      currency: null,
    });

    const payout = await act({
      url: `${unrouted}/anything`,
      kind: 'payout.create',
      amount: 100,
      currency: 'usd',
    });
    expect(payout.body).toMatchObject({ status: 'blocked', kind: 'http.request', amount: null });
    expect(payout.body.decision.rules).toEqual(["Block if :declared_kind: = 'payout.create'"]);
    expect(upstream.received.length).toBe(before);
  });

  it('treats a call on a routed host that matches no route the same way', async () => {
    const res = await act({
      url: `${routed}/v2/refunds`,
      body: { amount: 1 },
      kind: 'refund.create',
      amount: 1,
    });
    expect(res.body).toMatchObject({ status: 'awaiting_approval', kind: 'http.request', amount: null });
    expect(receivedFor(res.body.id)).toEqual([]);
  });
});

describe('malformed routes stop start-up, naming the key', () => {
  const source = 'from environment variable AIRLOCK_HTTP_UPSTREAMS';
  const cases: [string, Record<string, unknown>, string][] = [
    [
      'a path without a leading slash',
      { path: 'v1/orders' },
      `http_upstreams.0.routes.0.path (${source}): expected a path starting with /`,
    ],
    [
      'a * inside a segment',
      { path: '/v1/ord*' },
      `http_upstreams.0.routes.0.path (${source}): 'ord*': * and ** stand for whole segments`,
    ],
    ['an unknown method', { method: 'FETCH' }, `http_upstreams.0.routes.0.method (${source})`],
    [
      'a kind that is not dotted',
      { kind: 'Refund' },
      `http_upstreams.0.routes.0.kind (${source}): expected a dotted lower-case name`,
    ],
    [
      'a broken form key',
      { amount: 'refund[amount' },
      `http_upstreams.0.routes.0.amount (${source}): expected a JSON pointer`,
    ],
    [
      'a bad pointer escape',
      { amount: '/refund/~2' },
      `http_upstreams.0.routes.0.amount (${source}): in a JSON pointer`,
    ],
    [
      'a currency without an amount',
      { currency: { value: 'usd' } },
      `http_upstreams.0.routes.0.currency (${source}): a currency needs an amount`,
    ],
    [
      'a fixed currency that is not a code',
      { amount: '/amount', currency: { value: 'dollars' } },
      `http_upstreams.0.routes.0.currency`,
    ],
    [
      'a currency read unlike the amount',
      { amount: '/amount', currency: 'currency' },
      `http_upstreams.0.routes.0.currency (${source}): read the currency the way the amount is read`,
    ],
    [
      'an unknown route setting',
      { amount_at: '/amount' },
      `http_upstreams.0.routes.0.amount_at (${source}): unknown setting`,
    ],
  ];
  it.each(cases)('%s', (_name, route, line) => {
    let message = '';
    try {
      loadConfig(withRoute(route), undefined);
    } catch (err) {
      expect(err).toBeInstanceOf(AirlockError);
      message = (err as Error).message;
    }
    expect(message).toContain(line);
  });

  it('makes `airlock serve` exit 1 with the key on stderr', async () => {
    const r = await refusedStart;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`http_upstreams.0.routes.0.amount (${source})`);
  });
});
