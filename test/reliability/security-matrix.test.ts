// Every route against every credential kind, with the status each must get. Bearer credentials never open the
// dashboard (it takes a session cookie); agents see only their own actions; a revoked key is a wrong key.
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAgentKey } from '../../src/auth/credentials.ts';
import { cli } from '../helpers/process.ts';
import { charge, rejection, type Stack, startStack } from '../helpers/stack.ts';

type Kind =
  | 'none'
  | 'wrongAgent'
  | 'wrongReviewer'
  | 'garbage'
  | 'revoked'
  | 'otherAgent'
  | 'reviewer'
  | 'agent';
// Owners and reviewers last: the cells that change something (approve, cancel) run after every refusal.
const KINDS: Kind[] = [
  'none',
  'wrongAgent',
  'wrongReviewer',
  'garbage',
  'revoked',
  'otherAgent',
  'reviewer',
  'agent',
];

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
  tokens.garbage = 'sk_live_not_an_airlock_key';
  const env = { AIRLOCK_DATA: join(stack.dir, 'airlock.db') };
  const revoked = JSON.parse((await cli(['keys', 'create', '--agent', 'gone-bot', '--json'], env)).stdout);
  expect((await cli(['keys', 'revoke', revoked.id], env)).code).toBe(0);
  tokens.revoked = revoked.key;
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

const NO_AUTH = { none: 401, wrongAgent: 401, wrongReviewer: 401, garbage: 401, revoked: 401 } as const;
const PROXY = { ...NO_AUTH, wrongReviewer: 403 } as const; // the proxy refuses any rk_ token outright
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
    expect: { ...PROXY, otherAgent: 200, reviewer: 403, agent: 200 },
  },
  {
    route: 'proxy write',
    method: 'POST',
    path: () => '/v1/customers',
    body: 'email=a@example.com',
    expect: { ...PROXY, otherAgent: 403, reviewer: 403, agent: 403 }, // held for review: approval_required
  },
  { route: 'openapi', method: 'GET', path: () => '/api/openapi.json', expect: PUBLIC },
  { route: 'healthz', method: 'GET', path: () => '/healthz', expect: PUBLIC },
  {
    route: 'list actions',
    method: 'GET',
    path: () => '/api/actions',
    expect: { ...NO_AUTH, otherAgent: 200, reviewer: 200, agent: 200 },
  },
  {
    route: 'get action',
    method: 'GET',
    path: () => `/api/actions/${ids['read']}`,
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 200, agent: 200 },
  },
  {
    route: 'action events',
    method: 'GET',
    path: () => `/api/actions/${ids['read']}/events`,
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 200, agent: 200 },
  },
  {
    route: 'approve',
    method: 'POST',
    path: () => `/api/actions/${ids['approve']}/approve`,
    body: {},
    expect: { ...NO_AUTH, otherAgent: 403, reviewer: 200, agent: 403 },
  },
  {
    route: 'reject',
    method: 'POST',
    path: () => `/api/actions/${ids['reject']}/reject`,
    body: {},
    expect: { ...NO_AUTH, otherAgent: 403, reviewer: 200, agent: 403 },
  },
  {
    route: 'cancel',
    method: 'POST',
    path: () => `/api/actions/${ids['cancel']}/cancel`,
    body: {},
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 403, agent: 200 },
  },
  {
    route: 'actions API',
    method: 'POST',
    path: () => '/api/actions',
    body: { method: 'POST', url: 'https://example.com/x' },
    expect: { ...NO_AUTH, otherAgent: 403, reviewer: 403, agent: 403 }, // agents pass auth; no upstream hosts configured
  },
  {
    route: 'decisions API',
    method: 'POST',
    path: () => '/api/decisions',
    body: { intent: { kind: 'refund.create', amount: 100, currency: 'usd' } },
    expect: { ...NO_AUTH, otherAgent: 200, reviewer: 403, agent: 200 },
  },
  {
    route: 'get decision',
    method: 'GET',
    path: () => `/api/decisions/${ids['decision']}`,
    expect: { ...NO_AUTH, otherAgent: 404, reviewer: 200, agent: 200 },
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
    expect: { ...PROXY, otherAgent: 200, reviewer: 403, agent: 200 },
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
