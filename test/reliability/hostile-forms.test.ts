// Property-based hostile input (fast-check) on the reviewer dashboard: the login form, approve / reject / approve
// with changes, a reviewer's refund request, freeze and unfreeze, logout, the signed email links and the pages'
// query strings, with hostile fields, bodies, content types, cookies and Origins. Never a 5xx; nothing is decided,
// requested, frozen or forwarded by a request that lacks a session, the session's CSRF token or our own Origin; every
// write the sandbox received belongs to an action the ledger holds. Counts per route go to the log for
// docs/RELIABILITY.md.
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { clearFreeze, listFreezes } from '../../src/engine/freeze.ts';
import { ReviewStore } from '../../src/review/store.ts';
import { withDirectSql } from '../helpers/direct-sql.ts';
import { PASSWORD, type ReviewStack, startReviewStack } from '../review/helpers.ts';

// Runs per property; `npm test` uses the default, the long run sets AIRLOCK_FUZZ_RUNS (docs/RELIABILITY.md).
const RUNS = Number(process.env['AIRLOCK_FUZZ_RUNS'] ?? 25);
// A long run on a busy machine may take its time; a property stuck for good still fails.
const TIMEOUT_MS = 120_000 + RUNS * 1000;

// Requests are sent with this Host, so "our own Origin" is well defined.
const HOST = 'airlock.test:8080';
const OWN = `http://${HOST}`;

let stack: ReviewStack;
let reviews: ReviewStore;

interface Login {
  reviewerId: string;
  email: string;
  token: string;
  csrf: string;
}
const sessions = {} as Record<'alice' | 'carol' | 'admin', Login>;

// --- bookkeeping ------------------------------------------------------------------------------------------------

/** Status counts per route, printed at the end for the documentation. */
const outcomes: Record<string, Record<string, number>> = {};
/** What went wrong, kept (not thrown) so a long run counts every defect instead of stopping at the first. */
const problems = new Map<string, { count: number; example: string }>();
let requests = 0;

function tally(route: string, status: number): void {
  const t = outcomes[route] ?? {};
  outcomes[route] = t;
  t[status] = (t[status] ?? 0) + 1;
  requests++;
}

function problem(kind: string, example: string): void {
  const p = problems.get(kind);
  if (p) p.count++;
  else problems.set(kind, { count: 1, example: example.slice(0, 600) });
}

let reported = 0;
/** The kinds of problem met since the last call: each property answers for its own routes. */
function newProblems(): string[] {
  const kinds = [...problems.keys()].slice(reported);
  reported = problems.size;
  return kinds;
}

function setCookies(headers: Record<string, unknown>): string[] {
  const v = headers['set-cookie'];
  return v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
}

interface Sent {
  route: string;
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  payload?: string;
}

interface Answer {
  status: number;
  location: string | null;
  cookies: string[];
  body: string;
}

/** One request through the whole Fastify pipeline (hooks, parsers, error handler), counted and checked for 5xx. */
async function send(req: Sent): Promise<Answer> {
  let status: number;
  let location: string | null = null;
  let cookies: string[] = [];
  let body = '';
  try {
    const res = await stack.airlock.app.inject({
      method: req.method,
      url: req.url,
      headers: { host: HOST, ...req.headers },
      ...(req.payload !== undefined ? { payload: req.payload } : {}),
    });
    status = res.statusCode;
    location = typeof res.headers.location === 'string' ? res.headers.location : null;
    cookies = setCookies(res.headers);
    body = res.body;
  } catch (err) {
    status = 0;
    body = String(err);
  }
  tally(req.route, status);
  const show = () =>
    `${req.method} ${req.url} ${JSON.stringify(req.headers)} ${JSON.stringify(req.payload ?? '').slice(0, 300)} → ${status} ${body.slice(0, 200)}`;
  if (status === 0) problem(`${req.route}: the request threw`, show());
  else if (status >= 500) {
    const code = /"code":"([a-z_]+)"/.exec(body)?.[1] ?? /<h1>([^<]*)<\/h1>/.exec(body)?.[1] ?? '';
    problem(`${req.route}: ${status} ${code}`, show());
  }
  return { status, location, cookies, body };
}

// --- generators -------------------------------------------------------------------------------------------------

const NASTY = [
  '',
  ' ',
  '\r\n',
  '\u0000',
  '%',
  '%zz',
  '%E0%A4%A',
  '1e309',
  '-1',
  '0',
  '0x10',
  'NaN',
  'Infinity',
  '12.345',
  '1,000.00',
  '999999999999999999999',
  '__proto__',
  'constructor',
  '../../',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '/review\r\nSet-Cookie: a=b',
  '//evil.example/review',
  'https://evil.example/review',
  '/review/../v1/refunds',
  '/reviewx',
  '/review?x=%0d%0a',
  'a=b\nc',
  '=x',
  'k=',
  '🙂',
  'x'.repeat(3000),
];
const nasty = fc.oneof(
  fc.constantFrom(...NASTY),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
);
/** What a real HTTP client can put in a header value (no CR, LF or NUL; bytes above 0x7f as obs-text). */
const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '');

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/x-www-form-urlencoded') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/x-www-form-urlencoded; charset=utf-8',
      'application/json',
      'text/plain',
      'multipart/form-data; boundary=x',
      undefined,
    ),
  },
);

/** An Origin header; `foreign` means a form posted from another site, which must never decide anything. */
const origin = fc.constantFrom(
  { value: undefined, foreign: false },
  { value: undefined, foreign: false },
  { value: OWN, foreign: false },
  { value: OWN, foreign: false },
  { value: 'null', foreign: false },
  { value: '', foreign: false },
  { value: 'http://evil.example', foreign: true },
  { value: `http://${HOST}.evil.example`, foreign: true },
  { value: 'garbage', foreign: true },
);

type Role = 'alice' | 'carol' | 'admin';
/** The session cookie: a live session (the only kind that may act), none, or something else. */
const cookieKind = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom<Role>('alice', 'carol', 'admin').map((role) => ({ role })) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        fc.constant(''),
        fc.constant('airlock_session=%E0%A4%A'),
        fc.constant('airlock_session=%'),
        fc.constant('airlock_session='),
        fc.constant('airlock_session="unterminated'),
        fc.constant(`airlock_session=${'a'.repeat(5000)}`),
        fc.constant('=; ;;=;airlock_session'),
        nasty.map((s) => `airlock_session=${headerSafe(s)}`),
        nasty.map((s) => headerSafe(s)),
      )
      .map((raw) => ({ raw })),
  },
);

type Cookie = { role: Role } | { raw: string };
function cookieHeader(c: Cookie): string {
  return 'role' in c ? `airlock_session=${sessions[c.role].token}` : c.raw;
}

/** A form's fields: the route's own names (and their bracketed and prototype-polluting cousins) with any value. */
function fieldsOf(names: string[]) {
  const name = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...names) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('_csrf[]', '__proto__', 'constructor[prototype]', `${names[0]}[]`, '', '&'),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
  );
  return fc.array(fc.tuple(name, nasty), { maxLength: 6 });
}

/** The CSRF token a form carries: the session's own, none, another's, or junk. */
const csrfKind = fc.constantFrom('own', 'own', 'own', 'own', 'none', 'other', 'junk', 'twice');

function formBody(
  pairs: [string, string][],
  csrf: string | null,
  type: string | undefined,
  deep: boolean,
): string | undefined {
  const all: [string, string][] = csrf === null ? pairs : [['_csrf', csrf], ...pairs];
  if (type === 'application/json') {
    if (deep) return `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    return JSON.stringify(Object.fromEntries(all));
  }
  if (type?.startsWith('multipart')) return all.map(([k, v]) => `--x\r\n${k}\r\n\r\n${v}`).join('\r\n');
  return all.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

interface Attempt {
  cookie: Cookie;
  csrf: string;
  type: string | undefined;
  origin: { value: string | undefined; foreign: boolean };
  pairs: [string, string][];
  deep: boolean;
}

function attempt(names: string[]) {
  return fc.record({
    cookie: cookieKind,
    csrf: csrfKind,
    type: contentType,
    origin,
    pairs: fieldsOf(names),
    // One request in twenty sends JSON nested 5,000 deep.
    deep: fc.nat({ max: 19 }).map((n) => n === 0),
  });
}

/**
 * Builds the POST for an attempt. `legit` is true when the request carries a live session, that session's CSRF
 * token where the form parser reads it, and no foreign Origin: only then may it change anything.
 */
function post(route: string, url: string, a: Attempt): { req: Sent; legit: boolean; role: Role | null } {
  const role = 'role' in a.cookie ? a.cookie.role : null;
  const own = role ? sessions[role].csrf : null;
  const token =
    a.csrf === 'own' || a.csrf === 'twice'
      ? (own ?? 'no-session')
      : a.csrf === 'other'
        ? sessions[role === 'alice' ? 'carol' : 'alice'].csrf
        : a.csrf === 'junk'
          ? 'x'.repeat(43)
          : null;
  let pairs = a.pairs.filter(([k]) => k !== '_csrf');
  if (a.csrf === 'twice' && token) pairs = [...pairs, ['_csrf', token]];
  const payload = formBody(pairs, token, a.type, a.deep);
  const readable = a.type === undefined || !/^(text\/plain|multipart)/.test(a.type);
  const deep = a.deep && a.type === 'application/json';
  // A JSON body keeps one `_csrf` of the two; a form body sends both, which the dashboard refuses.
  const ownToken = a.csrf === 'own' || (a.csrf === 'twice' && a.type === 'application/json');
  const legit =
    role !== null && ownToken && readable && !deep && !a.origin.foreign && a.type !== 'text/plain';
  const headers: Record<string, string> = {};
  const c = cookieHeader(a.cookie);
  if (c) headers['cookie'] = c;
  if (a.type) headers['content-type'] = a.type;
  if (a.origin.value !== undefined) headers['origin'] = a.origin.value;
  return { req: { route, method: 'POST', url, headers, ...(payload ? { payload } : {}) }, legit, role };
}

// --- what must not change -----------------------------------------------------------------------------------------

/** Rows in a table, read on a connection of the test's own to the store's file: what is there, whatever the cause. */
async function count(table: 'actions' | 'approvals'): Promise<number> {
  const [row] = await withDirectSql(join(stack.dir, 'airlock.db'), (db) =>
    db.all<{ n: number }>(`select count(*) as n from ${table}`),
  );
  return Number(row?.n ?? 0);
}

interface Fingerprint {
  actions: number;
  approvals: number;
  freezes: string;
}
async function fingerprint(): Promise<Fingerprint> {
  const freezes = await listFreezes(stack.airlock.store);
  return {
    actions: await count('actions'),
    approvals: await count('approvals'),
    freezes: JSON.stringify(freezes),
  };
}

function unchanged(route: string, before: Fingerprint, after: Fingerprint, req: Sent, res: Answer): void {
  const show = `${req.url} ${JSON.stringify(req.headers)} ${JSON.stringify(req.payload ?? '').slice(0, 200)} → ${res.status}`;
  if (before.actions !== after.actions) problem(`${route}: an action was created without the right`, show);
  if (before.approvals !== after.approvals)
    problem(`${route}: a decision was recorded without the right`, show);
  if (before.freezes !== after.freezes) problem(`${route}: the freezes changed without the right`, show);
  if (res.status === 303 && !res.location?.startsWith('/review/login'))
    problem(`${route}: a success redirect without the right`, show);
}

// --- held actions to decide -------------------------------------------------------------------------------------

/** Held actions the properties decide; each one decided is replaced, so later runs still reach the engine. */
const pool: string[] = [];

async function topUp(): Promise<void> {
  for (let i = 0; i < pool.length; i++) {
    const row = await stack.airlock.store.getAction(pool[i]!);
    if (row?.status !== 'awaiting_approval')
      pool[i] = (await stack.holdRefund(i % 3 === 0 ? 600_000 : 60_000)).actionId;
  }
}

const actionId = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 5 }).map((i) => ({ pooled: i })) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.constantFrom('act_missing', 'act_', 'act_../../v1/refunds', '%00', '..'), nasty)
      .map((id) => ({ raw: id })),
  },
);
const idOf = (x: { pooled: number } | { raw: string }) => ('pooled' in x ? pool[x.pooled]! : x.raw);
const seg = (s: string) => encodeURIComponent(s) || '%20';

// --- the properties ---------------------------------------------------------------------------------------------

describe('the dashboard forms under hostile input', () => {
  beforeAll(async () => {
    // The harness holds a refund for every few generated decisions; at long runs that is more than the agent rate
    // limit (100 a minute) allows, which is not what this test is about.
    stack = await startReviewStack({ AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000' });
    reviews = new ReviewStore(stack.airlock.store);
    const admin = await createReviewer(stack.airlock.store, 'admin@example.com', {
      passwordHash: await hashPassword(PASSWORD),
      groups: ['admins'],
    });
    const people = {
      alice: stack.reviewers.alice,
      carol: stack.reviewers.carol,
      admin: { id: admin.id, email: admin.email },
    };
    // Real logins through the form, before any property could trip the login throttle.
    for (const [role, who] of Object.entries(people) as [Role, { id: string; email: string }][]) {
      const loginCsrf = 'l'.repeat(43);
      const res = await stack.airlock.app.inject({
        method: 'POST',
        url: '/review/login',
        headers: {
          host: HOST,
          cookie: `airlock_login=${loginCsrf}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        payload: new URLSearchParams({
          _csrf: loginCsrf,
          email: who.email,
          password: PASSWORD,
          next: '',
        }).toString(),
      });
      expect(res.statusCode).toBe(303);
      const token = /airlock_session=([^;]+)/.exec(setCookies(res.headers).join('\n'))?.[1];
      expect(token).toBeTruthy();
      const queue = await stack.airlock.app.inject({
        method: 'GET',
        url: '/review',
        headers: { host: HOST, cookie: `airlock_session=${token}` },
      });
      const csrf = /name="_csrf" value="([^"]+)"/.exec(queue.body)?.[1];
      expect(csrf).toBeTruthy();
      sessions[role] = {
        reviewerId: who.id,
        email: who.email,
        token: decodeURIComponent(token!),
        csrf: csrf!,
      };
    }
    for (let i = 0; i < 6; i++) pool.push((await stack.holdRefund(i % 3 === 0 ? 600_000 : 60_000)).actionId);
  }, 60_000);

  afterAll(async () => {
    console.log(`dashboard fuzz: ${requests} requests`, JSON.stringify(outcomes));
    for (const [kind, p] of problems)
      console.log(`dashboard fuzz PROBLEM ×${p.count}: ${kind}\n  ${p.example}`);
    await stack?.close();
  });

  it(
    'approve, approve with changes and reject: never a 5xx, never a decision without the right',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('approve', 'reject'),
          actionId,
          attempt(['note', 'amount', 'reason', 'metadata', 'return']),
          async (verb, id, a) => {
            const { req, legit } = post(verb, `/review/actions/${seg(idOf(id))}/${verb}`, a);
            const before = legit ? null : await fingerprint();
            const res = await send(req);
            if (before) unchanged(verb, before, await fingerprint(), req, res);
            if (res.status === 303) await topUp();
          },
        ),
        { numRuns: RUNS * 2 },
      );
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    "a reviewer's refund request: never a 5xx, never an action without the right",
    async () => {
      const small = await stack.direct.charges.create({
        amount: 20_000,
        currency: 'usd',
        source: 'tok_visa',
      });
      const eur = await stack.direct.charges.create({ amount: 900_000, currency: 'eur', source: 'tok_visa' });
      const charge = fc.oneof(
        fc.constantFrom(
          small.id,
          eur.id,
          'ch_missing',
          'py_missing',
          'ch_',
          ` ${small.id} `,
          `${small.id}\n`,
        ),
        nasty,
      );
      const amount = fc.oneof(
        fc.constantFrom('1.00', '5', '600', '6000', '0.001', '-5', '0', '1e3', '١٢'),
        nasty,
      );
      await fc.assert(
        fc.asyncProperty(
          attempt(['reason', 'form_key', 'note']),
          charge,
          amount,
          fc.constantFrom('requested_by_customer', 'duplicate', 'fraudulent', 'other'),
          async (a, ch, amt, reason) => {
            const withFields: Attempt = {
              ...a,
              pairs: [['charge', ch], ['amount', amt], ['reason', reason], ...a.pairs],
            };
            const { req, legit } = post('refund', '/review/refund', withFields);
            const before = legit ? null : await fingerprint();
            const res = await send(req);
            if (before) unchanged('refund', before, await fingerprint(), req, res);
          },
        ),
        { numRuns: RUNS },
      );
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    'the signed email links: never a 5xx; a tampered link or a foreign Origin never decides',
    async () => {
      const links: { approve: string; reject: string }[] = [];
      const fresh = async () => {
        const { actionId: id } = await stack.holdRefund(60_000);
        const now = new Date();
        return reviews.createLinks(id, sessions.alice.reviewerId, now, new Date(now.getTime() + 3600_000));
      };
      for (let i = 0; i < 3; i++) links.push(await fresh());
      const tamper = (t: string, how: number) => {
        const [id = '', sig = ''] = t.split('.');
        // Each edit must change the token: the first character of the signature carries six whole bits (the last
        // one's low bits are padding), and an id that already ends in x gets a y.
        if (how === 0) return `${id}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
        if (how === 1) return `${id.slice(0, -1)}${id.endsWith('x') ? 'y' : 'x'}.${sig}`;
        if (how === 2) return `${t}.x`;
        if (how === 3) return id;
        return `${t.toUpperCase()}`;
      };
      const token = fc.oneof(
        {
          weight: 4,
          arbitrary: fc.tuple(fc.nat({ max: 2 }), fc.boolean()).map(([i, ok]) => ({ i, ok, how: -1 })),
        },
        {
          weight: 2,
          arbitrary: fc
            .tuple(fc.nat({ max: 2 }), fc.nat({ max: 4 }))
            .map(([i, how]) => ({ i, ok: true, how })),
        },
        { weight: 1, arbitrary: nasty.map((raw) => ({ raw })) },
      );
      await fc.assert(
        fc.asyncProperty(
          token,
          fc.constantFrom<'GET' | 'POST'>('POST', 'POST', 'GET'),
          origin,
          contentType,
          fieldsOf(['note']),
          async (t, method, o, type, pairs) => {
            const real = 'raw' in t ? null : links[t.i]![t.ok ? 'approve' : 'reject'];
            const sent = 'raw' in t ? t.raw : t.how < 0 ? real! : tamper(real!, t.how);
            const genuine = 'raw' in t ? false : t.how < 0;
            const headers: Record<string, string> = {};
            if (type) headers['content-type'] = type;
            if (o.value !== undefined) headers['origin'] = o.value;
            const payload = method === 'POST' ? formBody(pairs, null, type, false) : undefined;
            const req: Sent = {
              route: method === 'POST' ? 'link POST' : 'link GET',
              method,
              url: `/review/links/${seg(sent)}`,
              headers,
              ...(payload ? { payload } : {}),
            };
            const mustNotDecide = method === 'GET' || !genuine || o.foreign;
            const before = mustNotDecide ? await fingerprint() : null;
            const res = await send(req);
            if (before) unchanged(req.route, before, await fingerprint(), req, res);
            if (!('raw' in t) && method === 'POST' && res.status === 303) links[t.i] = await fresh();
          },
        ),
        { numRuns: RUNS },
      );
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    'the pages: any query string, id or cookie, never a 5xx',
    async () => {
      const page = fc.constantFrom(
        '/review',
        '/review/actions',
        '/review/actions/',
        '/review/overview',
        '/review/queue/rows',
        '/review/refund',
        '/review/freeze',
        '/review/login',
        '/review/assets/',
      );
      const query = fc.array(
        fc.tuple(
          fc.oneof(
            fc.constantFrom(
              'status',
              'kind',
              'agent',
              'min_usd',
              'max_usd',
              'from',
              'to',
              'q',
              'starting_after',
              'notice',
              'charge',
              'next',
              'status[]',
            ),
            fc.string({ maxLength: 6 }),
          ),
          fc.oneof(
            fc.constantFrom('2026-02-30', '9999-99-99', '0000-01-01', 'awaiting_approval', 'expired'),
            nasty,
          ),
        ),
        { maxLength: 5 },
      );
      await fc.assert(
        fc.asyncProperty(page, query, nasty, cookieKind, async (p, q, id, c) => {
          const path = p.endsWith('/') ? `${p}${seg(id)}` : p;
          const qs = q.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
          const cookie = cookieHeader(c);
          const before = await fingerprint();
          const req: Sent = {
            route: 'pages GET',
            method: 'GET',
            url: qs ? `${path}?${qs}` : path,
            headers: cookie ? { cookie } : {},
          };
          const res = await send(req);
          unchanged('pages GET', before, await fingerprint(), req, res);
        }),
        { numRuns: RUNS },
      );
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    'logout: never a 5xx; only the session itself, with its token, logs out',
    async () => {
      await fc.assert(
        fc.asyncProperty(attempt(['return', 'next']), fc.boolean(), async (a, throwaway) => {
          // A logout that works ends the session, so a legitimate one is tried on a session made for it.
          let cookie: Cookie = a.cookie;
          let csrf = a.csrf;
          let own: Login | null = null;
          if (throwaway && 'role' in a.cookie) {
            const made = await reviews.createSession(sessions.alice.reviewerId, new Date(), 3600_000);
            own = { ...sessions.alice, ...made };
            cookie = { raw: `airlock_session=${made.token}` };
          } else if ('role' in a.cookie) csrf = csrf === 'own' || csrf === 'twice' ? 'junk' : csrf;
          const token =
            own && (csrf === 'own' || csrf === 'twice') ? own.csrf : csrf === 'junk' ? 'x'.repeat(43) : null;
          const payload = formBody(
            a.pairs.filter(([k]) => k !== '_csrf'),
            token,
            a.type,
            a.deep,
          );
          const headers: Record<string, string> = {};
          const ch = cookieHeader(cookie);
          if (ch) headers['cookie'] = ch;
          if (a.type) headers['content-type'] = a.type;
          if (a.origin.value !== undefined) headers['origin'] = a.origin.value;
          const req: Sent = {
            route: 'logout',
            method: 'POST',
            url: '/review/logout',
            headers,
            ...(payload ? { payload } : {}),
          };
          const before = await fingerprint();
          const res = await send(req);
          unchanged('logout', before, await fingerprint(), req, res);
          // The fuzzer's own sessions must survive every logout it was not entitled to.
          if (!own) {
            const alive = await reviews.session(sessions.alice.token, new Date());
            if (!alive) problem('logout: a session ended without its CSRF token', JSON.stringify(req));
          }
        }),
        { numRuns: RUNS },
      );
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    'freeze and unfreeze: never a 5xx; only an admin with the token changes anything',
    async () => {
      const agent = fc.oneof(fc.constantFrom('support-bot', '', '*', 'nobody', ' support-bot '), nasty);
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('freeze', 'unfreeze'),
          agent,
          attempt(['reason']),
          async (verb, name, a) => {
            const withAgent: Attempt = { ...a, pairs: [['agent', name], ...a.pairs] };
            const { req, legit, role } = post(verb, `/review/${verb}`, withAgent);
            const before = legit && role === 'admin' ? null : await fingerprint();
            const res = await send(req);
            if (before) unchanged(verb, before, await fingerprint(), req, res);
          },
        ),
        { numRuns: RUNS },
      );
      for (const f of await listFreezes(stack.airlock.store))
        await clearFreeze(stack.airlock.store, f.scope, 'test');
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    'the login form: never a 5xx, a session only for the right password, a redirect only into the dashboard',
    async () => {
      const email = fc.oneof(
        fc.constantFrom('alice@example.com', 'ALICE@example.com', ' alice@example.com', 'admin@example.com'),
        nasty,
      );
      const password = fc.oneof(fc.constant(PASSWORD), fc.constant(`${PASSWORD} `), nasty);
      const next = fc.oneof(
        fc.constantFrom('', '/review', '/review/actions?status=completed', '/review#x'),
        nasty,
      );
      await fc.assert(
        fc.asyncProperty(
          email,
          password,
          next,
          fc.constantFrom('match', 'match', 'match', 'mismatch', 'no-cookie', 'no-field'),
          contentType,
          fc.boolean(),
          async (e, pw, n, csrf, type, loginGet) => {
            if (loginGet) {
              await send({
                route: 'login GET',
                method: 'GET',
                url: `/review/login?next=${encodeURIComponent(n)}&notice=${encodeURIComponent(e)}`,
                headers: {},
              });
            }
            const value = 'c'.repeat(43);
            const headers: Record<string, string> = {};
            if (csrf !== 'no-cookie')
              headers['cookie'] = `airlock_login=${csrf === 'mismatch' ? 'd'.repeat(43) : value}`;
            if (type) headers['content-type'] = type;
            const pairs: [string, string][] = [
              ['email', e],
              ['password', pw],
              ['next', n],
            ];
            const payload = formBody(pairs, csrf === 'no-field' ? null : value, type, false);
            const req: Sent = {
              route: 'login POST',
              method: 'POST',
              url: '/review/login',
              headers,
              ...(payload ? { payload } : {}),
            };
            const res = await send(req);
            const session = res.cookies.some((c) => /^airlock_session=[^;]+/.test(c));
            const show = `${JSON.stringify(pairs)} csrf=${csrf} type=${type} → ${res.status} ${res.location}`;
            if (session && (pw !== PASSWORD || csrf !== 'match'))
              problem('login: a session without the password', show);
            if (res.status === 303) {
              const loc = res.location ?? '';
              if (
                !loc.startsWith('/review') ||
                /[\r\n\0]/.test(loc) ||
                loc.startsWith('//') ||
                loc.startsWith('/\\')
              )
                problem('login: a redirect out of the dashboard', show);
            }
          },
        ),
        { numRuns: RUNS },
      );
      expect(newProblems()).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it('every write the sandbox received belongs to an action the ledger holds, and one allowed or approved', async () => {
    let writes = 0;
    for (const r of stack.sandbox.requests()) {
      if (r.method === 'GET' || !r.idempotencyKey?.startsWith('airlock-')) continue;
      writes++;
      const id = r.idempotencyKey.replace(/^airlock-/, '');
      const action = await stack.airlock.store.getAction(id);
      expect(action, `${r.method} ${r.path} reached Stripe with key ${r.idempotencyKey}`).toBeDefined();
      expect(['pending', 'completed', 'failed']).toContain(action!.status);
      const approvals = await stack.airlock.store.listApprovals(id);
      const decided = JSON.parse(action!.decision) as { outcome?: string; effect?: string };
      const allowed = decided.outcome === 'allow' || decided.effect === 'allow';
      expect(allowed || approvals.some((x) => x.decision === 'approve'), `action ${id} was forwarded`).toBe(
        true,
      );
    }
    console.log(`dashboard fuzz: ${writes} writes upstream, each held by the ledger`);
  });
});
