// Issue 20: a reviewer approves a held generic call with a lower amount. Whatever shape and encoding the caller's
// body has, the upstream receives, once, exactly the bytes the reviewer approved: the caller's, with the lower amount
// where the operator's route reads it and nothing else changed. Raising is refused. Run on SQLite and PostgreSQL.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { type Route, withAmount } from '../../src/outbound/routes.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { type Stack, startStackWithPolicy } from '../helpers/stack.ts';
import { createPostgresDatabase, DIALECTS, type TestDatabase, unavailable } from '../store/databases.ts';

const ROUTES = [
  {
    method: 'POST',
    path: '/v1/orders/:id/refund',
    kind: 'refund.create',
    amount: '/refund/amount',
    currency: '/refund/currency',
  },
  {
    method: 'POST',
    path: '/v1/batches/**',
    kind: 'refund.create',
    amount: '/lines/1/cents',
    currency: { value: 'usd' },
  },
  {
    method: 'POST',
    path: '/v2/refunds',
    kind: 'refund.create',
    amount: 'refund[amount]',
    currency: { value: 'usd' },
  },
  { method: 'POST', path: '/v1/notes', kind: 'note.create' },
];

const POLICY = [
  'default: review',
  'rules:',
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
  // What the caller claimed can only make it stricter, before and after a reviewer lowers the amount.
  `  - rule: "Review if :declared_amount: > 100000"`,
  `    approvals: 2`,
];

// --- bodies: the amount's token is the one thing a lowered approval may change -----------------------------------

/** A body as text around the amount's token: `before + token + after`, and how the token is written. */
interface Shaped {
  route: (typeof ROUTES)[number];
  path: string;
  contentType: string | null;
  before: string;
  after: string;
  /** The amount as the caller wrote it: a JSON number, a string of digits, or the same string \u-escaped. */
  token: (amount: number) => string;
  /** Sent as a JSON value (Airlock encodes it) rather than as the caller's string. */
  asValue: boolean;
  /** The token a lowered approval writes: the same JSON type, plainly. */
  lowered: (amount: number) => string;
}

const ws = fc.array(fc.constantFrom(' ', '\n', '\t', '\r\n'), { maxLength: 3 }).map((a) => a.join(''));
// Keys that cannot collide with the route's keys in any case: those would be refused as ambiguous, rightly.
const key = fc
  .string({ maxLength: 8, unit: fc.constantFrom(...'abcxyz_-é€ 0'.split('')) })
  .filter((k) => !['refund', 'amount', 'currency', 'lines', 'cents', '__proto__'].includes(k.toLowerCase()));
// Fastify refuses prototype keys in a request body; they say nothing about the rewrite.
const value = fc
  .jsonValue({ maxDepth: 2 })
  .filter((v) => !/__proto__|constructor|prototype/.test(JSON.stringify(v)));
const member = fc.tuple(key, value);
const members = fc.uniqueArray(member, { maxLength: 3, selector: ([k]) => k.toLowerCase() });
const escapeAll = (text: string) =>
  text.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

const amountToken = fc.constantFrom('number', 'string', 'escaped').map((how) => ({
  token: (n: number) =>
    how === 'number'
      ? String(n)
      : how === 'string'
        ? `"${n}"`
        : `"${[...String(n)].map((d) => `\\u00${d.charCodeAt(0).toString(16)}`).join('')}"`,
  lowered: (n: number) => (how === 'number' ? String(n) : `"${n}"`),
  how,
}));

const jsonType = fc.constantFrom(
  null,
  'application/json',
  'application/json; charset=utf-8',
  'application/vnd.shop+json',
);

/** `{…others, "refund": {…others, "amount": <token>, "currency": "usd", …others}, …others}` written by hand. */
const refundBody: fc.Arbitrary<Shaped> = fc
  .record({
    outer: members,
    inner: members,
    split: fc.nat(3),
    currency: fc.constantFrom('usd', 'USD', 'Usd'),
    ws: fc.array(ws, { minLength: 12, maxLength: 12 }),
    escape: fc.boolean(),
    token: amountToken,
    contentType: jsonType,
    asValue: fc.boolean(),
    order: fc.constantFrom('id', 'ORD_1', 'ord_2'),
  })
  .map((r) => {
    const w = r.ws;
    const enc = (v: unknown) => (r.escape ? escapeAll(JSON.stringify(v)) : JSON.stringify(v));
    const list = (ms: [string, unknown][]) =>
      ms.map(([k, v]) => `${w[0]}${enc(k)}${w[1]}:${w[2]}${enc(v)}${w[3]},`).join('');
    const cut = Math.min(r.split, r.inner.length);
    const innerBefore = list(r.inner.slice(0, cut));
    const innerAfter = r.inner
      .slice(cut)
      .map(([k, v]) => `,${w[4]}${enc(k)}:${enc(v)}`)
      .join('');
    const before = `${w[5]}{${list(r.outer)}${w[6]}"refund"${w[7]}:${w[8]}{${innerBefore}${w[9]}"amount"${w[10]}:${w[11]}`;
    const after = `${w[1]},"currency":${JSON.stringify(r.currency)}${innerAfter}}${w[2]}}${w[3]}`;
    // A value body is what JSON.stringify makes of it: only the number and plain-string tokens exist there.
    const asValue = r.asValue && r.token.how !== 'escaped';
    return {
      route: ROUTES[0]!,
      path: `/v1/orders/${r.order}/refund`,
      contentType: r.contentType,
      before,
      after,
      token: r.token.token,
      lowered: r.token.lowered,
      asValue,
    };
  });

/** `{"lines": [<x>, {"cents": <token>, …}], …}`: the amount inside an array, the route reaching it by index. */
const batchBody: fc.Arbitrary<Shaped> = fc
  .record({ first: value, inner: members, token: amountToken, contentType: jsonType, w: ws })
  .map((r) => ({
    route: ROUTES[1]!,
    path: '/v1/batches/b_1/refunds',
    contentType: r.contentType,
    before: `{"lines":[${JSON.stringify(r.first)},${r.w}{"cents":`,
    after: `${r.inner.map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}`).join('')}}]}`,
    token: r.token.token,
    lowered: r.token.lowered,
    asValue: false,
  }));

/** `a=…&refund[amount]=<digits>&…` with the key percent-encoded or not. */
const formBody: fc.Arbitrary<Shaped> = fc
  .record({
    others: fc.uniqueArray(
      fc.tuple(fc.constantFrom('note', 'order', 'x', 'reason'), fc.string({ maxLength: 6 })),
      {
        maxLength: 3,
        selector: ([k]) => k,
      },
    ),
    split: fc.nat(3),
    key: fc.constantFrom('refund[amount]', 'refund%5Bamount%5D', 'refund%5bamount%5d'),
  })
  .map((r) => {
    const pairs = r.others.map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
    const cut = Math.min(r.split, pairs.length);
    const head = pairs
      .slice(0, cut)
      .map((p) => `${p}&`)
      .join('');
    const tail = pairs
      .slice(cut)
      .map((p) => `&${p}`)
      .join('');
    return {
      route: ROUTES[2]!,
      path: '/v2/refunds',
      contentType: 'application/x-www-form-urlencoded',
      before: `${head}${r.key}=`,
      after: tail,
      token: (n: number) => String(n),
      lowered: (n: number) => String(n),
      asValue: false,
    };
  });

const bodies = fc.oneof(refundBody, batchBody, formBody);
// Held: over $500. Lowered: anything from one cent up to the amount itself.
const amounts = fc
  .integer({ min: 50_001, max: 1_000_000_000 })
  .chain((amount) => fc.record({ amount: fc.constant(amount), lower: fc.integer({ min: 1, max: amount }) }));

// --- the pure rewrite, over many more bodies than a server can take -------------------------------------------------

describe('withAmount: the token at the route’s location, and nothing else', () => {
  it('rewrites exactly the amount’s token in every body shape and encoding', () => {
    fc.assert(
      fc.property(bodies, amounts, (b, { amount, lower }) => {
        const text = b.before + b.token(amount) + b.after;
        const headers: Record<string, string> = b.contentType ? { 'content-type': b.contentType } : {};
        // As the configuration hands routes to the server: methods as a list.
        const route = { ...b.route, method: [b.route.method] } as Route;
        const out = withAmount(
          route,
          { method: 'POST', pathname: b.path, search: '', headers, body: text },
          lower,
        );
        expect(out).toBe(b.before + b.lowered(lower) + b.after);
      }),
      { numRuns: 400 },
    );
  });
});

// --- through a real server, to a real upstream ---------------------------------------------------------------------

describe.each(DIALECTS)('a lowered generic call on %s', (dialect) => {
  let stack: Stack;
  let upstream: Receiver;
  let db: TestDatabase | null = null;

  beforeAll(async () => {
    if (unavailable(dialect)) return;
    upstream = await startReceiver();
    if (dialect === 'postgres') db = await createPostgresDatabase();
    stack = await startStackWithPolicy(POLICY, {
      ...(db ? { DATABASE_URL: db.url } : {}),
      AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([{ host: '127.0.0.1', allow_private: true, routes: ROUTES }]),
      AIRLOCK_DISPATCH_POLL_MS: '50',
      AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000',
    });
  });

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await db?.drop();
  });

  const receivedFor = (id: string) =>
    upstream.received.filter((r) => r.headers['idempotency-key'] === `airlock-${id}`);

  let keys = 0;
  async function hold(b: Shaped, amount: number) {
    const text = b.before + b.token(amount) + b.after;
    const request = {
      url: `${upstream.url}${b.path}`,
      method: 'POST',
      ...(b.contentType ? { headers: { 'content-type': b.contentType } } : {}),
      body: b.asValue ? JSON.parse(text) : text,
      idempotency_key: `${dialect}-${++keys}`,
    };
    const send = () => stack.api('/api/actions', { method: 'POST', token: stack.agentKey, body: request });
    const res = await send();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: 'awaiting_approval', amount });
    // What was stored and will be sent: the caller's bytes, or Airlock's one encoding of the caller's value.
    const sent = b.asValue ? JSON.stringify(JSON.parse(text)) : text;
    return { id: res.body.id as string, sent, send };
  }

  const approve = (id: string, changes: unknown) =>
    stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      token: stack.reviewerToken,
      body: { note: 'lowered', changes },
    });

  it.skipIf(unavailable(dialect))(
    'sends the approved bytes once: the caller’s body with the lower amount at the route’s location',
    async () => {
      await fc.assert(
        fc.asyncProperty(bodies, amounts, fc.integer({ min: 1, max: 1_000_000 }), async (b, a, over) => {
          const { id, sent, send } = await hold(b, a.amount);

          // Raising is refused, names the field, and changes nothing.
          const raised = await approve(id, { amount: a.amount + over });
          expect(raised.status).toBe(400);
          expect(raised.body.error).toMatchObject({ code: 'parameter_invalid', param: 'amount' });
          const still = await stack.api(`/api/actions/${id}`, { token: stack.reviewerToken });
          expect(still.body).toMatchObject({ status: 'awaiting_approval', amount: a.amount, approvals: [] });

          const ok = await approve(id, { amount: a.lower });
          expect(ok.status, JSON.stringify(ok.body)).toBe(200);
          const done = await stack.api(`/api/actions/${id}?wait=10`, { token: stack.reviewerToken });
          expect(done.body).toMatchObject({ status: 'completed', amount: a.lower });

          // The exact bytes the reviewer approved: the stored body with only the amount's token replaced.
          const lowered = b.before + b.lowered(a.lower) + b.after;
          const expected = b.asValue ? JSON.stringify(JSON.parse(lowered)) : lowered;
          expect(sent).toBe(b.asValue ? sent : b.before + b.token(a.amount) + b.after);
          const calls = receivedFor(id);
          expect(calls).toHaveLength(1);
          expect(calls[0]!.body).toBe(expected);
          expect(calls[0]!.headers['content-type']).toBe(b.contentType ?? 'application/json');
          // …and the body the action shows is that body.
          const shown = done.body.params.body;
          expect(typeof shown === 'string' ? shown : JSON.stringify(shown)).toBe(expected);

          const events = await stack.api(`/api/actions/${id}/events`, { token: stack.reviewerToken });
          const modified = events.body.data.filter((e: { type: string }) => e.type === 'action.modified');
          expect(modified).toHaveLength(1);
          expect(modified[0].data.changes).toEqual({ amount: a.lower });

          // The agent repeating its request (same key, its original body) gets the same action: nothing runs again.
          const again = await send();
          expect(again.status, JSON.stringify(again.body)).toBe(200);
          expect(again.body).toMatchObject({ id, status: 'completed', amount: a.lower });
          expect(receivedFor(id)).toHaveLength(1);
        }),
        { numRuns: dialect === 'postgres' ? 40 : 60 },
      );
    },
    120_000,
  );

  it.skipIf(unavailable(dialect))(
    'refuses a zero, negative or fractional amount, a reason, and any amount for a route with none',
    async () => {
      const { id } = await hold(
        {
          route: ROUTES[0]!,
          path: '/v1/orders/o_1/refund',
          contentType: null,
          before: '{"refund":{"amount":',
          after: ',"currency":"usd"}}',
          token: String,
          lowered: String,
          asValue: false,
        },
        60_000,
      );
      for (const amount of [0, -5, 1.5, '100']) {
        const res = await approve(id, { amount });
        expect(res.status).toBe(400);
        expect(res.body.error.param).toBe('changes.amount');
      }
      const reason = await approve(id, { amount: 100, reason: 'duplicate' });
      expect(reason.status).toBe(400);
      expect(reason.body.error.param).toBe('reason');

      const note = await stack.api('/api/actions', {
        method: 'POST',
        token: stack.agentKey,
        body: { url: `${upstream.url}/v1/notes`, method: 'POST', body: { amount: 5000, text: 'hi' } },
      });
      expect(note.body).toMatchObject({ status: 'awaiting_approval', kind: 'note.create', amount: null });
      const unrouted = await approve(note.body.id, { amount: 100 });
      expect(unrouted.status).toBe(400);
      expect(unrouted.body.error.param).toBe('amount');
      expect(unrouted.body.error.message).toContain('amount:');
      for (const held of [id, note.body.id]) {
        const row = await stack.api(`/api/actions/${held}`, { token: stack.reviewerToken });
        expect(row.body).toMatchObject({ status: 'awaiting_approval', approvals: [] });
        expect(receivedFor(held)).toEqual([]);
      }
    },
  );

  it.skipIf(unavailable(dialect))(
    'keeps the caller’s claims after a lower amount: a claimed $2,000 still needs its two reviewers',
    async () => {
      const res = await stack.api('/api/actions', {
        method: 'POST',
        token: stack.agentKey,
        body: {
          url: `${upstream.url}/v1/orders/o_2/refund`,
          method: 'POST',
          body: { refund: { amount: 200_000, currency: 'usd' } },
          amount: 200_000,
        },
      });
      expect(res.body).toMatchObject({ status: 'awaiting_approval', approvals_required: 2 });
      const id = res.body.id as string;
      const first = await approve(id, { amount: 30_000 });
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      // $300 alone would be allowed; the claim of $2,000 still asks for two reviewers.
      expect(first.body).toMatchObject({
        status: 'awaiting_approval',
        amount: 30_000,
        approvals_required: 2,
      });
      expect(receivedFor(id)).toEqual([]);

      const second = (await createReviewer(stack.airlock.store, `second-${dialect}@example.com`)).token;
      const ok = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', token: second, body: {} });
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      const done = await stack.api(`/api/actions/${id}?wait=10`, { token: stack.reviewerToken });
      expect(done.body).toMatchObject({ status: 'completed', amount: 30_000 });
      expect(receivedFor(id).map((r) => r.body)).toEqual(['{"refund":{"amount":30000,"currency":"usd"}}']);
    },
  );
});
