// The error table of docs/api.md, row by row, against the real server: a client's mistake gets its own 4xx, a bug
// gets 500 internal_error, and only a store that failed gets 503 store_unavailable ("nothing was forwarded").
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { withDirectSql } from '../helpers/direct-sql.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import {
  ACTIONS_POLICY,
  ACTIONS_ROUTES,
  charge,
  type Stack,
  startStackWithPolicy,
} from '../helpers/stack.ts';
import { actions } from '../helpers/store-reads.ts';
import { FormClient, PASSWORD } from '../review/helpers.ts';

let stack: Stack;
let upstream: Receiver;

beforeAll(async () => {
  upstream = await startReceiver();
  stack = await startStackWithPolicy(ACTIONS_POLICY, {
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([
      { host: '127.0.0.1', allow_private: true, headers: {}, routes: ACTIONS_ROUTES },
    ]),
  });
  await createReviewer(stack.airlock.store, 'alice@example.com', {
    passwordHash: await hashPassword(PASSWORD),
  });
});
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

async function send(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const res = await fetch(`${stack.airlock.url}${path}`, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers: init.headers,
    body: init.body,
  });
  const text = await res.text();
  let body: any = null;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, body };
}

const asAgent = (path: string, body: string, extra: Record<string, string> = {}) =>
  send(path, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.agentKey}`, 'content-type': 'application/json', ...extra },
    body,
  });

const BAD_COOKIE = 'airlock_session=%E0%A4%A; other=%';
const DEEP = 100_000;
const deepObject = `${'{"a":'.repeat(DEEP)}1${'}'.repeat(DEEP)}`;
const deepArray = `${'['.repeat(DEEP)}${']'.repeat(DEEP)}`;

/** A login form posted with a fresh CSRF token and the right password, and the `next` given. */
async function logInWithNext(
  next: string,
): Promise<{ answer: Awaited<ReturnType<FormClient['request']>>; client: FormClient }> {
  const client = new FormClient(stack.airlock.url);
  const form = await client.request('/review/login');
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.text)?.[1] ?? '';
  const answer = await client.request('/review/login', {
    form: { _csrf: csrf, email: 'alice@example.com', password: PASSWORD, next },
  });
  return { answer, client };
}

/** One action through the actions API with the headers given: a GET the policy allows outright. */
const withHeaders = (headers: Record<string, string>) =>
  asAgent('/api/actions', JSON.stringify({ url: `${upstream.url}/orders/1`, method: 'GET', headers }));

interface Row {
  name: string;
  send: () => Promise<Answer>;
  status: number;
  code?: string;
  param?: string;
  /** Anything else the row must show. */
  also?: (a: Answer) => void | Promise<void>;
}

const rows: Row[] = [
  // A session cookie that cannot be decoded is no session: the page asks to log in, as for an expired one.
  {
    name: 'a malformed airlock_session cookie on /review',
    send: () => send('/review', { headers: { cookie: BAD_COOKIE } }),
    status: 303,
    also: (a) =>
      expect(a.headers.get('location')).toMatch(/^\/review\/login\?next=%2Freview&notice=expired$/),
  },
  {
    name: 'a malformed airlock_session cookie on the live queue',
    send: () => send('/review/queue/rows', { headers: { cookie: BAD_COOKIE } }),
    status: 401,
  },
  {
    name: 'a malformed airlock_session cookie on a dashboard form',
    send: () =>
      send('/review/logout', {
        method: 'POST',
        headers: { cookie: BAD_COOKIE, 'content-type': 'application/x-www-form-urlencoded' },
        body: '_csrf=x',
      }),
    status: 401,
    also: (a) => expect(a.text).toContain('Log in first'),
  },
  {
    name: 'a 100,000-level JSON body on the decisions API',
    send: () =>
      asAgent('/api/decisions', `{"intent":{"kind":"refund.create"},"context":{"x":${deepObject}}}`),
    status: 400,
    code: 'malformed_body',
    also: (a) => expect(a.body.error.message).toContain('nested deeper than 512 levels'),
  },
  {
    name: 'a 100,000-level JSON array on the actions API',
    send: () => asAgent('/api/actions', `{"url":"${upstream.url}/orders/1","body":${deepArray}}`),
    status: 400,
    code: 'malformed_body',
  },
  {
    name: 'a 100,000-level JSON body on the Stripe proxy (v2)',
    send: () => asAgent('/v2/core/event_destinations', deepObject),
    status: 400,
    code: 'malformed_body',
    also: (a) => expect(a.body.error.type).toBe('invalid_request_error'),
  },
  {
    name: 'a 100,000-level JSON body on MCP',
    send: () => asAgent('/mcp', deepObject, { accept: 'application/json, text/event-stream' }),
    status: 400,
    also: (a) => expect(a.body).toMatchObject({ jsonrpc: '2.0', error: { code: -32700 } }),
  },
  {
    name: 'a CR/LF in the login form’s next field',
    send: async () => {
      const { answer } = await logInWithNext('/review\r\nSet-Cookie: airlock_session=forged');
      return { status: answer.status, headers: new Headers(), text: answer.text, body: null };
    },
    status: 400,
    also: (a) => expect(a.text).toContain('not a dashboard address'),
  },
  {
    name: 'a login form whose next leads to another site',
    send: async () => {
      const { answer } = await logInWithNext('//evil.example/review');
      return { status: answer.status, headers: new Headers(), text: answer.text, body: null };
    },
    status: 400,
  },
  {
    name: 'a CR/LF in a header value on the actions API',
    send: () => withHeaders({ 'X-Trace': 'abc\r\nX-Injected: 1' }),
    status: 400,
    code: 'parameter_invalid',
    param: 'headers.X-Trace',
  },
  {
    name: 'a NUL in a header value on the actions API',
    send: () => withHeaders({ 'X-Trace': 'abc\u0000' }),
    status: 400,
    code: 'parameter_invalid',
    param: 'headers.X-Trace',
  },
  {
    name: 'a trailing space in a header value on the actions API',
    send: () => withHeaders({ 'X-Trace': 'abc ' }),
    status: 400,
    code: 'parameter_invalid',
    param: 'headers.X-Trace',
  },
  {
    name: 'a trailing space in a header name on the actions API',
    send: () => withHeaders({ 'X-Trace ': 'abc' }),
    status: 400,
    code: 'parameter_invalid',
    param: 'headers.X-Trace ',
  },
  {
    name: 'a colon in a header name on the actions API',
    send: () => withHeaders({ 'X-Trace:1': 'abc' }),
    status: 400,
    code: 'parameter_invalid',
    param: 'headers.X-Trace:1',
  },
];

describe('the error table', () => {
  it.each(rows)('answers $name with $status', async (row) => {
    const before = upstream.received.length;
    const recorded = (await actions(stack.airlock.store)).length;
    const answer = await row.send();
    expect(answer.status, answer.text.slice(0, 300)).toBe(row.status);
    if (row.code) {
      // Stripe's shape, which the official client parses.
      expect(answer.body.error).toMatchObject({ code: row.code, type: 'invalid_request_error' });
      expect(typeof answer.body.error.message).toBe('string');
    }
    if (row.param) expect(answer.body.error.param).toBe(row.param);
    await row.also?.(answer);
    // A refused request records and forwards nothing.
    expect(upstream.received.length).toBe(before);
    expect((await actions(stack.airlock.store)).length).toBe(recorded);
  });

  it('passes the same action with well-formed headers, so the rows above fail for their headers alone', async () => {
    const ok = await withHeaders({ 'X-Trace': 'abc def', 'X-Other': '' });
    expect(ok.status, ok.text).toBe(200);
    expect(upstream.received.at(-1)?.headers['x-trace']).toBe('abc def');
  });

  it('logs in with a dashboard next, and sets no session for the refused ones', async () => {
    const good = await logInWithNext('/review/actions?status=completed');
    expect(good.answer.status).toBe(303);
    expect(good.answer.location).toBe('/review/actions?status=completed');
    expect(good.client.cookies.has('airlock_session')).toBe(true);
    const bad = await logInWithNext('/review\r\nX: 1');
    expect(bad.client.cookies.has('airlock_session')).toBe(false);
  });

  it('answers a bug with 500 internal_error, Stripe-shaped and not to be retried blindly', async () => {
    // A table the dashboard reads has gone: not an outage of the store, an error in what Airlock expects of it.
    const client = new FormClient(stack.airlock.url);
    expect(await client.logIn('alice@example.com')).toBe(303);
    const file = join(stack.dir, 'airlock.db');
    await withDirectSql(file, (db) => db.run('alter table review_sessions rename to review_sessions_gone'));
    try {
      const answer = await send('/review', {
        headers: { cookie: `airlock_session=${client.cookies.get('airlock_session')}` },
      });
      expect(answer.status).toBe(500);
      expect(answer.body.error).toMatchObject({ type: 'api_error', code: 'internal_error' });
      expect(answer.body.error.message).not.toMatch(/nothing was forwarded/);
      expect(answer.headers.get('stripe-should-retry')).toBe('false');
      expect(answer.headers.get('request-id')).toMatch(/^req_/);
    } finally {
      await withDirectSql(file, (db) => db.run('alter table review_sessions_gone rename to review_sessions'));
    }
  });

  it('answers 503 store_unavailable only when the store itself failed', async () => {
    const ch = await charge(stack, 5000);
    const locker = new Database(join(stack.dir, 'airlock.db'));
    locker.exec('BEGIN EXCLUSIVE');
    try {
      const answer = await send('/v1/refunds', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${stack.agentKey}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: `charge=${ch.id}&amount=100`,
      });
      expect(answer.status).toBe(503);
      expect(answer.body.error).toMatchObject({ type: 'api_error', code: 'store_unavailable' });
      expect(answer.body.error.message).toMatch(/nothing was forwarded/);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
  }, 30_000);
});
