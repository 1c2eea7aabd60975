// Every route against every credential kind, with the status each must get. Bearer credentials never open the
// dashboard (it takes a session cookie); agents see only their own actions; a revoked or expired credential is a wrong
// one (an expired one says so); admin tokens reach only the admin API, and only they do.
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createAdminToken,
  createAgentKey,
  createReviewer,
  revokeAdminToken,
} from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { cli } from '../helpers/process.ts';
import { charge, rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';
import { FormClient } from '../review/helpers.ts';

type Kind =
  | 'none'
  | 'wrongAgent'
  | 'wrongReviewer'
  | 'wrongAdmin'
  | 'garbage'
  | 'revoked'
  | 'revokedAdmin'
  | 'expired'
  | 'expiredReviewer'
  | 'expiredAdmin'
  | 'otherAgent'
  | 'reviewer'
  | 'admin'
  | 'agent';
// Owners, reviewers and admins last: the cells that change something (approve, cancel, freeze) run after every refusal.
const KINDS: Kind[] = [
  'none',
  'wrongAgent',
  'wrongReviewer',
  'wrongAdmin',
  'garbage',
  'revoked',
  'revokedAdmin',
  'expired',
  'expiredReviewer',
  'expiredAdmin',
  'otherAgent',
  'reviewer',
  'admin',
  'agent',
];
const EXPIRED: Kind[] = ['expired', 'expiredReviewer', 'expiredAdmin'];

let stack: Stack;
const tokens: Partial<Record<Kind, string>> = {};
const ids: Record<string, string> = {};

async function held(amount: number): Promise<string> {
  const err = await rejection(stack.agent.refunds.create({ charge: (await charge(stack, amount)).id }));
  expect(err.code).toBe('approval_required');
  return err.raw.airlock_action as string;
}

beforeAll(async () => {
  stack = await startStack();
  tokens.agent = stack.agentKey;
  tokens.reviewer = stack.reviewerToken;
  tokens.otherAgent = (await createAgentKey(stack.airlock.store, 'other-bot')).key;
  tokens.wrongAgent = `ak_${'x'.repeat(40)}`;
  tokens.wrongReviewer = `rk_${'x'.repeat(40)}`;
  tokens.wrongAdmin = `adm_${'x'.repeat(40)}`;
  tokens.garbage = 'sk_live_not_an_airlock_key';
  const env = { AIRLOCK_DATA: join(stack.dir, 'airlock.db') };
  const revoked = JSON.parse((await cli(['keys', 'create', '--agent', 'gone-bot', '--json'], env)).stdout);
  expect((await cli(['keys', 'revoke', revoked.id], env)).code).toBe(0);
  tokens.revoked = revoked.key;
  const store = stack.airlock.store;
  const past = new Date(Date.now() - 60_000).toISOString();
  tokens.expired = (await createAgentKey(store, 'support-bot', { expiresAt: past })).key;
  tokens.expiredReviewer = (await createReviewer(store, 'finance@example.com', { expiresAt: past })).token;
  tokens.expiredAdmin = (await createAdminToken(store, 'old-ops', { expiresAt: past })).token;
  tokens.admin = (await createAdminToken(store, 'ops')).token;
  const gone = await createAdminToken(store, 'gone-ops');
  expect(await revokeAdminToken(store, gone.id)).toBe(true);
  tokens.revokedAdmin = gone.token;
  // An agent nobody uses: the admin cells freeze and unfreeze it, and revoke one of its keys.
  ids['spareKey'] = (await createAgentKey(store, 'idle-bot')).id;
  ids['read'] = await held(70_000);
  ids['approve'] = await held(71_000);
  ids['reject'] = await held(72_000);
  ids['cancel'] = await held(73_000);
  const decision = await stack.api('/api/decisions', {
    method: 'POST',
    token: stack.agentKey,
    body: { intent: { kind: 'refund.create', amount: 100, currency: 'usd' } },
  });
  expect(decision.status).toBe(200);
  ids['decision'] = decision.body.id;
}, 60_000);

afterAll(async () => {
  await stack.close();
});

const NO_AUTH = {
  none: 401,
  wrongAgent: 401,
  wrongReviewer: 401,
  wrongAdmin: 401,
  garbage: 401,
  revoked: 401,
  revokedAdmin: 401,
  expired: 401,
  expiredReviewer: 401,
  expiredAdmin: 401,
} as const;
// The proxy and /mcp refuse any rk_ or adm_ token outright, known or not: neither may move money.
const PROXY = {
  ...NO_AUTH,
  wrongReviewer: 403,
  wrongAdmin: 403,
  revokedAdmin: 403,
  expiredReviewer: 403,
  expiredAdmin: 403,
  admin: 403,
  reviewer: 403,
} as const;
// Only a live admin token passes; every other live credential is known but not allowed.
const ADMIN = { ...NO_AUTH, otherAgent: 403, reviewer: 403, agent: 403, admin: 200 } as const;
const PUBLIC = { ...Object.fromEntries(KINDS.map((k) => [k, 200])) } as Record<Kind, number>;
// The dashboard ignores bearer credentials: pages send the browser to the login page, fragments answer 401.
const DASHBOARD_PAGE = Object.fromEntries(KINDS.map((k) => [k, 303])) as Record<Kind, number>;

const MATRIX: {
  route: string;
  method: string;
  path: () => string;
  body?: unknown;
  expect: Record<Kind, number>;
}[] = [
  {
    route: 'proxy read',
    method: 'GET',
    path: () => '/v1/balance',
    expect: { ...PROXY, otherAgent: 200, agent: 200 },
  },
  {
    route: 'proxy write',
    method: 'POST',
    path: () => '/v1/customers',
    body: 'email=a@example.com',
    expect: { ...PROXY, otherAgent: 403, agent: 403 }, // held for review: approval_required
  },
  { route: 'openapi', method: 'GET', path: () => '/api/openapi.json', expect: PUBLIC },
  { route: 'healthz', method: 'GET', path: () => '/healthz', expect: PUBLIC },
  { route: 'metrics', method: 'GET', path: () => '/metrics', expect: PUBLIC },
  { route: 'admin freezes', method: 'GET', path: () => '/api/admin/freezes', expect: ADMIN },
  {
    route: 'admin freeze',
    method: 'POST',
    path: () => '/api/admin/freeze',
    body: { agent: 'idle-bot', reason: 'matrix' },
    expect: ADMIN,
  },
  {
    route: 'admin unfreeze',
    method: 'POST',
    path: () => '/api/admin/unfreeze',
    body: { agent: 'idle-bot' },
    expect: ADMIN,
  },
  {
    route: 'admin revoke key',
    method: 'POST',
    path: () => `/api/admin/keys/${ids['spareKey']}/revoke`,
    body: {},
    expect: ADMIN,
  },
  {
    route: 'list actions',
    method: 'GET',
    path: () => '/api/actions',
    expect: { ...NO_AUTH, otherAgent: 200, reviewer: 200, admin: 403, agent: 200 },
  },
  {
    route: 'get action',
    method: 'GET',
    path: () => `/api/actions/${ids['read']}`,
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 200, admin: 403, agent: 200 },
  },
  {
    route: 'action events',
    method: 'GET',
    path: () => `/api/actions/${ids['read']}/events`,
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 200, admin: 403, agent: 200 },
  },
  {
    route: 'approve',
    method: 'POST',
    path: () => `/api/actions/${ids['approve']}/approve`,
    body: {},
    expect: { ...NO_AUTH, otherAgent: 403, reviewer: 200, admin: 403, agent: 403 },
  },
  {
    route: 'reject',
    method: 'POST',
    path: () => `/api/actions/${ids['reject']}/reject`,
    body: {},
    expect: { ...NO_AUTH, otherAgent: 403, reviewer: 200, admin: 403, agent: 403 },
  },
  {
    route: 'cancel',
    method: 'POST',
    path: () => `/api/actions/${ids['cancel']}/cancel`,
    body: {},
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 403, admin: 403, agent: 200 },
  },
  {
    route: 'actions API',
    method: 'POST',
    path: () => '/api/actions',
    body: { method: 'POST', url: 'https://example.com/x' },
    expect: { ...NO_AUTH, otherAgent: 403, reviewer: 403, admin: 403, agent: 403 }, // agents pass auth; no upstream hosts configured
  },
  {
    route: 'decisions API',
    method: 'POST',
    path: () => '/api/decisions',
    body: { intent: { kind: 'refund.create', amount: 100, currency: 'usd' } },
    expect: { ...NO_AUTH, otherAgent: 200, reviewer: 403, admin: 403, agent: 200 },
  },
  {
    route: 'get decision',
    method: 'GET',
    path: () => `/api/decisions/${ids['decision']}`,
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 200, admin: 403, agent: 200 },
  },
  {
    route: 'mcp',
    method: 'POST',
    path: () => '/mcp',
    body: {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    },
    expect: { ...PROXY, otherAgent: 200, agent: 200 },
  },
  { route: 'dashboard queue', method: 'GET', path: () => '/review', expect: DASHBOARD_PAGE },
  {
    route: 'dashboard action',
    method: 'GET',
    path: () => `/review/actions/${ids['read']}`,
    expect: DASHBOARD_PAGE,
  },
  {
    route: 'dashboard rows',
    method: 'GET',
    path: () => '/review/queue/rows',
    expect: Object.fromEntries(KINDS.map((k) => [k, 401])) as Record<Kind, number>,
  },
  { route: 'dashboard kill switch', method: 'GET', path: () => '/review/freeze', expect: DASHBOARD_PAGE },
  { route: 'dashboard outside', method: 'GET', path: () => '/review/outside', expect: DASHBOARD_PAGE },
  {
    // Stripe's deliveries carry a signature, never a bearer credential; without a secret the endpoint is off.
    route: 'stripe webhooks',
    method: 'POST',
    path: () => '/stripe/webhooks',
    body: { id: 'evt_matrix', type: 'refund.created', created: 1 },
    expect: Object.fromEntries(KINDS.map((k) => [k, 503])) as Record<Kind, number>,
  },
  {
    route: 'dashboard freeze',
    method: 'POST',
    path: () => '/review/freeze',
    body: 'agent=&reason=x',
    expect: Object.fromEntries(KINDS.map((k) => [k, 401])) as Record<Kind, number>,
  },
];

it('answers every route with the expected status for every credential kind', async () => {
  const got: string[] = [];
  const want: string[] = [];
  for (const row of MATRIX) {
    for (const kind of KINDS) {
      const token = tokens[kind];
      const form = typeof row.body === 'string';
      const res = await stack.airlock.app.inject({
        method: row.method as 'GET',
        url: row.path(),
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(row.body === undefined
            ? {}
            : { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' }),
          ...(row.route === 'mcp' ? { accept: 'application/json, text/event-stream' } : {}),
        },
        ...(row.body === undefined
          ? {}
          : { payload: form ? (row.body as string) : JSON.stringify(row.body) }),
      });
      got.push(`${row.route} × ${kind}: ${res.statusCode}`);
      want.push(`${row.route} × ${kind}: ${row.expect[kind]}`);
    }
  }
  expect(got).toEqual(want);
}, 60_000);

it('refuses expired credentials with api_key_expired and a message that says they expired', async () => {
  for (const kind of EXPIRED) {
    for (const url of ['/api/actions', '/api/admin/freezes']) {
      const res = await stack.airlock.app.inject({
        method: 'GET',
        url,
        headers: { authorization: `Bearer ${tokens[kind]}` },
      });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('api_key_expired');
      expect(res.json().error.message).toMatch(
        /^Expired API Key provided: [a-z]{2,3}_\w{3,4}\*{4}\w{4}\. It expired at /,
      );
      // The credential itself is never echoed whole.
      expect(res.body).not.toContain(tokens[kind]);
    }
  }
  const proxy = await rejection(stripeAt(tokens.expired!, stack.airlock.port).balance.retrieve());
  expect(proxy.type).toBe('StripeAuthenticationError');
  expect(proxy.code).toBe('api_key_expired');
  // An unknown key is a different answer: the caller can tell a typo from an expiry.
  const unknown = await rejection(stripeAt(tokens.wrongAgent!, stack.airlock.port).balance.retrieve());
  expect(unknown.code).toBe('invalid_api_key');
});

it('dashboard: only a session opens pages, and only an admin session reaches the kill switch', async () => {
  const passwordHash = await hashPassword('matrix password');
  await createReviewer(stack.airlock.store, 'plain@example.com', { passwordHash, groups: ['finance'] });
  await createReviewer(stack.airlock.store, 'root@example.com', { passwordHash, groups: ['admins'] });
  const sessions: Record<'none' | 'reviewer' | 'admin', FormClient> = {
    none: new FormClient(stack.airlock.url),
    reviewer: new FormClient(stack.airlock.url),
    admin: new FormClient(stack.airlock.url),
  };
  expect(await sessions.reviewer.logIn('plain@example.com', 'matrix password')).toBe(303);
  expect(await sessions.admin.logIn('root@example.com', 'matrix password')).toBe(303);
  const csrf = {
    none: 'no-session',
    reviewer: await sessions.reviewer.csrf(),
    admin: await sessions.admin.csrf(),
  };
  const rows: {
    route: string;
    method: 'GET' | 'POST';
    path: string;
    form?: Record<string, string>;
    expect: Record<keyof typeof sessions, number>;
  }[] = [
    { route: 'queue', method: 'GET', path: '/review', expect: { none: 303, reviewer: 200, admin: 200 } },
    {
      route: 'kill switch',
      method: 'GET',
      path: '/review/freeze',
      expect: { none: 303, reviewer: 403, admin: 200 },
    },
    {
      route: 'freeze',
      method: 'POST',
      path: '/review/freeze',
      form: { agent: 'idle-bot', reason: 'matrix' },
      expect: { none: 401, reviewer: 403, admin: 303 },
    },
    {
      route: 'freeze without the CSRF token',
      method: 'POST',
      path: '/review/freeze',
      form: { agent: 'idle-bot', _csrf: 'forged' },
      expect: { none: 401, reviewer: 403, admin: 403 },
    },
    {
      route: 'unfreeze',
      method: 'POST',
      path: '/review/unfreeze',
      form: { agent: 'idle-bot' },
      expect: { none: 401, reviewer: 403, admin: 303 },
    },
  ];
  const got: string[] = [];
  const want: string[] = [];
  for (const row of rows) {
    for (const who of ['none', 'reviewer', 'admin'] as const) {
      const res = await sessions[who].request(row.path, {
        method: row.method,
        ...(row.form ? { form: { _csrf: csrf[who], ...row.form } } : {}),
      });
      got.push(`${row.route} × ${who}: ${res.status}`);
      want.push(`${row.route} × ${who}: ${row.expect[who]}`);
    }
  }
  expect(got).toEqual(want);
  // The admin's freeze and unfreeze happened, once each, and were recorded with who did them.
  const events = (
    await ledger(stack.airlock.store, (e) => e.type.startsWith('freeze.') && e.actor.startsWith('reviewer:'))
  ).map(({ type, actor }) => ({ type, actor }));
  expect(events).toEqual([
    { type: 'freeze.set', actor: 'reviewer:root@example.com' },
    { type: 'freeze.lifted', actor: 'reviewer:root@example.com' },
  ]);
});

it('never shows an agent another agent’s actions, in lists or by id', async () => {
  const mine = await stack.api('/api/actions?limit=100', { token: tokens.otherAgent! });
  expect(mine.status).toBe(200);
  // The second agent made one decision in the matrix; it sees that and nothing of the first agent's.
  expect(mine.body.data.length).toBeGreaterThan(0);
  for (const a of mine.body.data as { agent: { name: string } }[]) expect(a.agent.name).toBe('other-bot');
  expect(mine.body.data.map((a: { id: string }) => a.id)).not.toContain(ids['read']);
  // Every action of the first agent is invisible to the second, by id and through its events.
  const all = await stack.api('/api/actions?limit=100', { token: tokens.agent! });
  expect(all.body.data.length).toBeGreaterThanOrEqual(5);
  for (const a of all.body.data as { id: string }[]) {
    expect((await stack.api(`/api/actions/${a.id}`, { token: tokens.otherAgent! })).status).toBe(404);
    expect((await stack.api(`/api/actions/${a.id}/events`, { token: tokens.otherAgent! })).status).toBe(404);
  }
});
