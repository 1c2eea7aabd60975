// Property-based hostile input (fast-check): the rule parser, the form-body parser, the proxy's path handling and the
// JSON APIs never crash, never answer 5xx, and never let a write reach Stripe that the ledger does not hold.
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuleError } from '../../src/policy/errors.ts';
import { PolicyError, parsePolicy, parseRule } from '../../src/policy/index.ts';
import { encodeForm, ParamError, type Params, parseForm, parseQuery } from '../../src/stripe/params.ts';
import { everyUpstreamWriteIsLedgered } from '../helpers/ledger.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

// Counted by every property below, for docs/RELIABILITY.md.
const RUNS = Number(process.env['AIRLOCK_FUZZ_RUNS'] ?? 300);
// A long run (docs/RELIABILITY.md) on a busy machine must not be cut short by a timeout sized for the default.
const timeout = (ms: number) => ms + RUNS * 100;

const RULE_TOKENS = [
  'Allow',
  'Review',
  'Block',
  'if',
  ':amount:',
  ':kind:',
  ':amount_in_usd:',
  ':read:',
  ':agent:',
  '::metadata[x]::',
  'and',
  'or',
  'not',
  'IN',
  '(',
  ')',
  ',',
  '=',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  '+',
  '-',
  '*',
  '/',
  "'refund.create'",
  '500',
  '0',
  '-1',
  '1e309',
  "'",
  '"',
  ':',
  '::',
  'INCLUDES',
  'LIKE',
  '%',
  '\\',
  '\u0000',
  '🙂',
  ' ',
];
const ruleLike = fc.array(fc.constantFrom(...RULE_TOKENS), { maxLength: 30 }).map((t) => t.join(' '));

describe('the rule parser', () => {
  it('parses or refuses with a RuleError any text, never anything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), ruleLike),
        (text) => {
          try {
            const ast = parseRule(text);
            expect(ast).toBeTypeOf('object');
          } catch (err) {
            if (!(err instanceof RuleError) && !(err instanceof PolicyError)) throw err;
          }
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });

  it('refuses deep nesting with a RuleError instead of overflowing the stack', () => {
    expect(parseRule(`Block if ${'('.repeat(10)}:amount: > 1${')'.repeat(10)}`).outcome).toBe('block');
    for (const text of [
      `Block if ${'('.repeat(10_000)}:amount: > 1${')'.repeat(10_000)}`,
      `Block if ${'not '.repeat(10_000)}:read:`,
      `Block if :amount: > ${'- '.repeat(10_000)}1`,
    ]) {
      expect(() => parseRule(text)).toThrow(RuleError);
    }
  });

  it('loads or refuses a whole policy file with a PolicyError', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(ruleLike, fc.string({ maxLength: 60 })), { maxLength: 5 }), (rules) => {
        const yaml = `default: review\nrules:\n${rules.map((r) => `  - ${JSON.stringify(r)}`).join('\n')}\n`;
        try {
          parsePolicy(yaml, 'fuzz.yaml');
        } catch (err) {
          if (!(err instanceof PolicyError)) throw err;
        }
      }),
      { numRuns: RUNS },
    );
  });
});

// Keys and values the way Stripe's bracket notation and its abusers write them.
const formKey = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    'amount',
    'metadata[a]',
    'a[b][c]',
    'a[]',
    '__proto__',
    'constructor[prototype]',
    'a[0]',
    'a[999999]',
  ),
);
const formBody = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc
    .array(fc.tuple(formKey, fc.string({ maxLength: 20 })), { maxLength: 20 })
    .map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')),
  fc
    .array(fc.tuple(formKey, fc.string({ maxLength: 20 })), { maxLength: 20 })
    .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&')),
);

describe('the form-body parser', () => {
  it('parses or refuses with a ParamError any body, and never pollutes Object.prototype', () => {
    fc.assert(
      fc.property(formBody, (body) => {
        for (const parse of [parseForm, parseQuery]) {
          try {
            const params = parse(body);
            expect(params).toBeTypeOf('object');
          } catch (err) {
            if (!(err instanceof ParamError)) throw err;
          }
        }
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('reads back exactly what it encodes', () => {
    const value: fc.Arbitrary<Params> = fc.dictionary(
      fc.stringMatching(/^[a-z_]{1,8}$/),
      fc.oneof(
        fc.string({ maxLength: 10 }).filter((s) => s !== ''),
        fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string({ minLength: 1, maxLength: 10 }), {
          maxKeys: 3,
        }),
      ),
      { maxKeys: 6 },
    ) as fc.Arbitrary<Params>;
    fc.assert(
      fc.property(value, (params) => {
        const cleaned = JSON.parse(JSON.stringify(params)) as Params;
        for (const [k, v] of Object.entries(cleaned))
          if (typeof v === 'object' && !Object.keys(v ?? {}).length) delete cleaned[k];
        expect(parseForm(encodeForm(cleaned))).toEqual(cleaned);
      }),
      { numRuns: RUNS },
    );
  });
});

/** One request written byte for byte on a socket; resolves with the status line's code. */
function raw(method: string, path: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(stack.airlock.port, '127.0.0.1');
    const bytes = Buffer.from(body);
    const lines = Object.entries({
      ...headers,
      host: 'localhost',
      'content-length': String(bytes.length),
      connection: 'close',
    })
      .map(([k, v]) => `${k}: ${v}`)
      .join('\r\n');
    let answer = '';
    socket.on('data', (d) => {
      answer += d;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(answer.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0)));
    socket.end(
      Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.1\r\n${lines}\r\n\r\n`, 'latin1'), bytes]),
    );
  });
}

let stack: Stack;

describe('the HTTP surfaces', () => {
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  const segment = fc.oneof(
    fc.stringMatching(/^[a-z_]{1,12}$/),
    fc.constantFrom(
      'refunds',
      'charges',
      'customers',
      'payouts',
      '..',
      '.',
      '%2e%2e',
      '%2F',
      '',
      'ch_1',
      '\u00e9',
      '%00',
      '%',
      '?x=1',
      '#',
    ),
    fc.string({ maxLength: 8 }),
  );
  const path = fc
    .tuple(
      fc.constantFrom('/v1', '/v2', '/v1/', '//v1', '/v3', '/V1', ''),
      fc.array(segment, { maxLength: 5 }),
    )
    .map(([prefix, segs]) => `${prefix}/${segs.join('/')}`);
  const method = fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD');
  const contentType = fc.constantFrom(
    'application/x-www-form-urlencoded',
    'application/json',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/x-www-form-urlencoded; charset=latin1',
    undefined,
  );

  it(
    'answers any path, method and body on the proxy without a 5xx',
    async () => {
      await fc.assert(
        fc.asyncProperty(method, path, contentType, formBody, async (m, p, ct, body) => {
          const headers = {
            authorization: `Bearer ${stack.agentKey}`,
            ...(ct ? { 'content-type': ct } : {}),
          };
          const payload = m === 'GET' || m === 'HEAD' ? '' : body;
          let status: number;
          try {
            const res = await stack.airlock.app.inject({
              method: m as 'GET',
              url: p,
              headers,
              ...(payload ? { payload } : {}),
            });
            status = res.statusCode;
          } catch (err) {
            // inject refuses some paths (`/\`) that a client can still put on the wire: send those raw.
            if ((err as { code?: string }).code !== 'ERR_INVALID_URL') throw err;
            status = await raw(m, p, headers, payload);
          }
          expect(status, `${m} ${p}`).toBeGreaterThanOrEqual(200);
          expect(status, `${m} ${p}`).toBeLessThan(500);
        }),
        { numRuns: RUNS },
      );
      await everyUpstreamWriteIsLedgered(stack);
    },
    timeout(120_000),
  );

  it(
    'answers any form body sent to money-moving endpoints without a 5xx or an unledgered write',
    async () => {
      const ch = await stack.direct.charges.create(
        { amount: 50_000, currency: 'usd', source: 'tok_visa' },
        { idempotencyKey: 'seed-fuzz-charge' },
      );
      const target = fc.constantFrom(
        '/v1/refunds',
        '/v1/payouts',
        '/v1/customers',
        `/v1/charges/${ch.id}/capture`,
        '/v1/transfers',
      );
      const extra = fc.oneof(
        fc.constant(`charge=${ch.id}&amount=100`),
        fc.constant(`charge=${ch.id}`),
        fc.constant('amount=-1&charge=ch_missing'),
        fc.constant(`charge=${ch.id}&amount=100&amount=99999`),
        fc.constant(`charge[]=${ch.id}&amount=1e3`),
        fc.constant(`charge=${ch.id}&amount=0x10`),
        fc.constant(`charge=${ch.id}&metadata[airlock_action]=act_forged&amount=50`),
      );
      await fc.assert(
        fc.asyncProperty(
          target,
          fc.tuple(extra, formBody),
          fc.option(fc.string({ maxLength: 30 })),
          async (p, [a, b], key) => {
            const res = await stack.airlock.app.inject({
              method: 'POST',
              url: p,
              headers: {
                authorization: `Bearer ${stack.agentKey}`,
                'content-type': 'application/x-www-form-urlencoded',
                ...(key ? { 'idempotency-key': key.replace(/[^\x20-\x7e]/g, '') || 'k' } : {}),
              },
              payload: `${a}&${b}`,
            });
            expect(res.statusCode, `${p} ${a}&${b} → ${res.body}`).toBeLessThan(500);
          },
        ),
        { numRuns: RUNS },
      );
      expect(await everyUpstreamWriteIsLedgered(stack)).toBeGreaterThan(0);
    },
    timeout(120_000),
  );

  it(
    'answers any JSON sent to the actions, decisions and review APIs without a 5xx',
    async () => {
      const route = fc.constantFrom(
        ['POST', '/api/actions'],
        ['POST', '/api/decisions'],
        ['POST', '/api/actions/act_missing/approve'],
        ['POST', '/api/actions/act_missing/reject'],
        ['POST', '/api/actions/act_missing/cancel'],
        ['GET', '/api/actions?limit=abc&status=nope'],
        ['GET', '/api/actions/%00'],
        ['GET', '/api/decisions/x?wait=-1'],
      );
      const json = fc.oneof(
        fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
        fc.string({ maxLength: 100 }),
        fc
          .record(
            {
              intent: fc.record(
                {
                  kind: fc.string({ maxLength: 20 }),
                  amount: fc.oneof(fc.integer(), fc.double(), fc.string()),
                  currency: fc.string({ maxLength: 5 }),
                },
                { requiredKeys: [] },
              ),
              idempotency_key: fc.string({ maxLength: 300 }),
              wait: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.string()),
              url: fc.webUrl(),
              method: fc.constantFrom('GET', 'POST', 'TRACE', ''),
            },
            { requiredKeys: [] },
          )
          .map((v) => JSON.stringify(v)),
      );
      const who = fc.constantFrom('agent', 'reviewer', 'none', 'wrong');
      await fc.assert(
        fc.asyncProperty(route, json, who, contentType, async ([m, url], body, w, ct) => {
          const token =
            w === 'agent'
              ? stack.agentKey
              : w === 'reviewer'
                ? stack.reviewerToken
                : w === 'wrong'
                  ? 'ak_wrong'
                  : null;
          const res = await stack.airlock.app.inject({
            method: m as 'GET',
            url,
            headers: {
              ...(token ? { authorization: `Bearer ${token}` } : {}),
              'content-type': ct ?? 'application/json',
            },
            ...(m === 'POST' ? { payload: body } : {}),
          });
          expect(res.statusCode, `${m} ${url} ${body} → ${res.body}`).toBeLessThan(500);
          expect(() => JSON.parse(res.body)).not.toThrow();
        }),
        { numRuns: RUNS },
      );
      await everyUpstreamWriteIsLedgered(stack);
    },
    timeout(120_000),
  );
});
