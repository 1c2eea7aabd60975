// Issue 20, Axiru: the integration a team already has, with Axiru's own field names, pointed at Airlock by changing
// only the base URL and the key. A real Airlock on SQLite; reviewers decide over Airlock's review API; callbacks go to
// a real HTTP receiver and are checked against the documented signature scheme, not Airlock's code.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertAgentPath } from '../../src/mcp/call.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';

const SECRET = 'whsec_axiru_compat_0123456789';

// Refunds up to $500 pass and larger ones wait for a person; payouts over $10,000 are denied; credits are advisory.
const POLICY = [
  'default: review',
  'rules:',
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
  `  - "Allow if :kind: = 'payout.create' and :amount_in_usd: <= 10000"`,
  `  - "Block if :kind: = 'payout.create' and :amount_in_usd: > 10000"`,
  `  - rule: "Review if :kind: = 'credit_note.create'"`,
  '    mode: shadow',
];

let stack: Stack;
let hooks: Receiver;

/** Axiru's documented call: only the base URL and the key differ from what the team sends Axiru today. */
const axiru = {
  baseUrl: '',
  apiKey: '',
  async post(path: string, body: unknown, key?: string) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key ?? this.apiKey}`, 'Content-Type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  },
  async get(path: string) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      headers: { Authorization: `Bearer ${this.apiKey}` },
    });
    return { status: res.status, body: (await res.json()) as any };
  },
};

/** Airlock-Signature (`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`), checked from the documented scheme. */
function verified(header: string | undefined, body: string): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  if (!parts['t'] || !parts['v1']) return false;
  const expected = createHmac('sha256', SECRET).update(`${parts['t']}.${body}`).digest();
  const given = Buffer.from(parts['v1'], 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function actionCount(): Promise<number> {
  return (await ledger(stack.airlock.store, (e) => e.type === 'action.received')).length;
}

beforeAll(async () => {
  hooks = await startReceiver();
  stack = await startStackWithPolicy(POLICY, {
    AIRLOCK_CALLBACK_SECRET: SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_BACKOFF_MS: '20',
    AIRLOCK_CALLBACK_POLL_MS: '20',
  });
  axiru.baseUrl = stack.airlock.url;
  axiru.apiKey = stack.agentKey;
});

afterAll(async () => {
  await stack?.close();
  await hooks?.close();
});

describe("Axiru's documented flow against Airlock", () => {
  it('allows a $175 refund asked in cents with an upper-case currency, recorded as refund.create of 17500 usd', async () => {
    const res = await axiru.post('/api/v1/decisions', {
      intent: {
        kind: 'refund',
        amount_cents: 17500,
        currency: 'USD',
        stripe_connection_id: 'stripe_conn_abc123',
        metadata: { order_id: 'ord_4821' },
      },
      context: { customer_id: 'cus_42', customer_tenure_days: 412, reason_code: 'duplicate_charge' },
      idempotency_key: 'support_ticket_4821',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      outcome: 'allow',
      status: 'approved',
      reason_code: 'policy_allow',
      approval_id: null,
      advisory: false,
      intent: { kind: 'refund', amount_cents: 17500, currency: 'USD', metadata: { order_id: 'ord_4821' } },
    });
    expect(res.body.decision_id).toMatch(/^act_/);
    expect(res.body.policy_version).toMatch(/^pol_/);
    expect(res.body.message).toContain('Allow');
    // The same action in Airlock's own terms, as the ledger and the review API hold it.
    const own = await stack.api(`/api/decisions/${res.body.decision_id}`);
    expect(own.body.intent).toEqual({
      kind: 'refund.create',
      amount: 17500,
      currency: 'usd',
      metadata: { order_id: 'ord_4821' },
    });
    const [received] = await ledger(
      stack.airlock.store,
      (e) => e.action_id === res.body.decision_id && e.type === 'action.received',
    );
    expect(JSON.parse(received!.data).params.context).toMatchObject({
      customer: 'cus_42',
      customer_tenure_days: 412,
      stripe_connection_id: 'stripe_conn_abc123',
    });
  });

  it('holds an $800 refund, and a reviewer approving $400 reaches the caller as modified_details and a signed callback', async () => {
    const asked = await axiru.post('/api/v1/decisions', {
      intent: { kind: 'refund', amount_cents: 80000, currency: 'USD', metadata: { order_id: 'ord_5' } },
      context: { customer_id: 'cus_5', reason_code: 'damaged' },
      idempotency_key: 'support_ticket_5',
      callback_url: `${hooks.url}/axiru`,
    });
    expect(asked.status).toBe(200);
    expect(asked.body).toMatchObject({
      outcome: 'review',
      status: 'pending_approval',
      reason_code: 'policy_review',
    });
    const id: string = asked.body.decision_id;
    expect(asked.body.approval_id).toBe(id);

    const approved = await stack.api(`/api/actions/${asked.body.approval_id}/approve`, {
      method: 'POST',
      body: { note: 'half now, half after the return', changes: { amount: 40000 } },
    });
    expect(approved.status).toBe(200);

    const decided = await axiru.get(`/api/v1/decisions/${id}?wait=5`);
    expect(decided.status).toBe(200);
    // The changed request ($400) was decided again and passes on its own, so the answer is now allow.
    expect(decided.body).toMatchObject({
      decision_id: id,
      approval_id: id,
      outcome: 'allow',
      status: 'approved',
      reason_code: 'reviewer_approved',
      modified_details: { amount_cents: 40000 },
      decision_note: 'half now, half after the return',
      intent: { kind: 'refund', amount_cents: 40000, currency: 'USD' },
    });
    // The caller prefers modified_details over its own payload, as Axiru tells it to.
    const amountToRefund = decided.body.modified_details?.amount_cents ?? 80000;
    expect(amountToRefund).toBe(40000);

    const hook = await until(() => hooks.received.find((h) => h.body.includes(id)));
    expect(verified(hook.headers['airlock-signature'] as string, hook.body)).toBe(true);
    expect(verified(hook.headers['airlock-signature'] as string, hook.body.replace('40000', '80000'))).toBe(
      false,
    );
    const event = JSON.parse(hook.body);
    expect(event.type).toBe('decision.approved');
    expect(event.data.object).toMatchObject({ id, status: 'approved', modified_details: { amount: 40000 } });
  });

  it('answers a rejected hold with the reviewer note, and posts a signed decision.rejected callback', async () => {
    const asked = await axiru.post('/api/v1/decisions', {
      intent: { kind: 'refund', amount_cents: 90000, currency: 'usd' },
      context: { customer_id: 'cus_9', reason_code: 'changed_mind' },
      callback_url: `${hooks.url}/axiru`,
    });
    expect(asked.body.outcome).toBe('review');
    const rejected = await stack.api(`/api/actions/${asked.body.approval_id}/reject`, {
      method: 'POST',
      body: { note: 'Outside the 30-day window' },
    });
    expect(rejected.status).toBe(200);
    const decided = await axiru.get(`/api/v1/decisions/${asked.body.decision_id}?wait=5`);
    expect(decided.body).toMatchObject({
      status: 'rejected',
      reason_code: 'reviewer_rejected',
      decision_note: 'Outside the 30-day window',
      modified_details: null,
    });
    const hook = await until(() => hooks.received.find((h) => h.body.includes(asked.body.decision_id)));
    expect(verified(hook.headers['airlock-signature'] as string, hook.body)).toBe(true);
    expect(JSON.parse(hook.body)).toMatchObject({
      type: 'decision.rejected',
      data: { object: { status: 'rejected', decision_note: 'Outside the 30-day window' } },
    });
  });

  it('denies a $20,000 payout (block is deny) and allows a $50 one', async () => {
    const denied = await axiru.post('/api/v1/decisions', {
      intent: { kind: 'payout', amount_cents: 2_000_000, currency: 'USD' },
    });
    expect(denied.body).toMatchObject({
      outcome: 'deny',
      status: 'denied',
      reason_code: 'policy_deny',
      approval_id: null,
    });
    const allowed = await axiru.post('/api/v1/decisions', {
      intent: { kind: 'payout', amount_cents: 5000, currency: 'USD' },
    });
    expect(allowed.body).toMatchObject({ outcome: 'allow', status: 'approved' });
  });

  it('returns the same decision for a repeated idempotency_key, and a 409 naming it for a different intent', async () => {
    const body = {
      intent: { kind: 'refund', amount_cents: 70000, currency: 'USD' },
      idempotency_key: 'ticket-77',
    };
    const first = await axiru.post('/api/v1/decisions', body);
    const again = await axiru.post('/api/v1/decisions', body);
    expect(again.body.decision_id).toBe(first.body.decision_id);
    const other = await axiru.post('/api/v1/decisions', {
      ...body,
      intent: { ...body.intent, amount_cents: 70001 },
    });
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({
      error: 'idempotency_conflict',
      field_errors: { idempotency_key: [expect.any(String)] },
    });
  });
});

describe('the OpenAPI document', () => {
  it('describes the Axiru routes with the request schema the route validates with, kind names included', async () => {
    const doc = (await stack.api('/api/openapi.json')).body;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/decisions', '/api/v1/decisions/{id}']),
    );
    const intent = doc.components.schemas.AxiruDecisionRequest.properties.intent;
    expect(intent.required).toEqual(expect.arrayContaining(['kind', 'amount_cents', 'currency']));
    expect(intent.properties.kind.enum).toEqual(expect.arrayContaining(['refund', 'payout', 'dispute']));
  });
});

describe('advisory per kind (per-rule mode: shadow)', () => {
  it('answers an advisory credit as allow with what enforcement would say, then one changed line enforces it, recorded as a new policy version', async () => {
    const intent = { kind: 'credit', amount_cents: 5000, currency: 'USD' };
    const advisory = await axiru.post('/api/v1/decisions', { intent });
    expect(advisory.body).toMatchObject({
      outcome: 'allow',
      status: 'approved',
      advisory: true,
      advisory_outcome: 'review',
      reason_code: 'advisory_review',
      approval_id: null,
    });
    // Recorded as what it is: a shadow decision that would have been held.
    const own = (await stack.api(`/api/decisions/${advisory.body.decision_id}`)).body;
    expect(own).toMatchObject({ shadow: true, shadow_outcome: 'review', outcome: 'allow' });

    const file = join(stack.dir, 'policy.yaml');
    const before = readFileSync(file, 'utf8');
    const after = before.replace('    mode: shadow', '    mode: enforce');
    const changed = before.split('\n').filter((line, i) => line !== after.split('\n')[i]);
    expect(changed).toEqual(['    mode: shadow']);
    writeFileSync(file, after);
    const reload = await stack.airlock.reloadPolicy();
    expect(reload).toMatchObject({ ok: true, changed: true });

    const enforced = await axiru.post('/api/v1/decisions', { intent });
    expect(enforced.body).toMatchObject({
      outcome: 'review',
      status: 'pending_approval',
      advisory: false,
      advisory_outcome: null,
    });
    expect(enforced.body.policy_version).not.toBe(advisory.body.policy_version);
    // The switch is on record: both versions with their text, each decision naming the one that made it.
    const versions = await stack.airlock.store.policyVersions.list();
    const text = (v: string) => versions.find((r) => r.version === v)?.text ?? '';
    expect(text(advisory.body.policy_version)).toContain('mode: shadow');
    expect(text(enforced.body.policy_version)).toContain('mode: enforce');
    writeFileSync(file, before);
    await stack.airlock.reloadPolicy();
  });
});

describe('malformed Axiru input', () => {
  const valid = { intent: { kind: 'refund', amount_cents: 1000, currency: 'USD' } };
  const cases: { name: string; body: unknown; field: string }[] = [
    {
      name: 'dollars as a string',
      body: { intent: { ...valid.intent, amount_cents: '10.00' } },
      field: 'intent.amount_cents',
    },
    {
      name: 'fractional cents',
      body: { intent: { ...valid.intent, amount_cents: 10.5 } },
      field: 'intent.amount_cents',
    },
    {
      name: 'zero cents',
      body: { intent: { ...valid.intent, amount_cents: 0 } },
      field: 'intent.amount_cents',
    },
    {
      name: 'a missing amount',
      body: { intent: { kind: 'refund', currency: 'USD' } },
      field: 'intent.amount_cents',
    },
    {
      name: 'an unknown kind',
      body: { intent: { ...valid.intent, kind: 'chargeback' } },
      field: 'intent.kind',
    },
    {
      name: "Airlock's own kind name",
      body: { intent: { ...valid.intent, kind: 'refund.create' } },
      field: 'intent.kind',
    },
    {
      name: 'a two-letter currency',
      body: { intent: { ...valid.intent, currency: 'US' } },
      field: 'intent.currency',
    },
    { name: 'no intent', body: { context: { customer_id: 'cus_1' } }, field: 'intent' },
    {
      name: "Airlock's amount field smuggled beside amount_cents",
      body: { intent: { ...valid.intent, amount: 1 } },
      field: 'intent.amount',
    },
    {
      name: 'a numeric metadata value',
      body: { intent: { ...valid.intent, metadata: { order_id: 4821 } } },
      field: 'intent.metadata.order_id',
    },
    {
      name: 'negative tenure',
      body: { ...valid, context: { customer_tenure_days: -1 } },
      field: 'context.customer_tenure_days',
    },
    { name: 'an unknown top-level field', body: { ...valid, mode: 'enforce' }, field: 'mode' },
    {
      name: 'a callback that is not a URL',
      body: { ...valid, callback_url: 'not a url' },
      field: 'callback_url',
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name} with 400 invalid_request naming ${c.field}, and records nothing`, async () => {
      const before = await actionCount();
      const res = await axiru.post('/api/v1/decisions', c.body);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(Object.keys(res.body.field_errors)).toContain(c.field);
      expect(res.body.message).toContain(c.field);
      expect(res.body.request_id).toMatch(/^req_/);
      expect(await actionCount()).toBe(before);
    });
  }

  it('refuses a body that is not JSON in the same envelope', async () => {
    const res = await axiru.post('/api/v1/decisions', '{"intent": ');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', request_id: expect.any(String) });
  });

  it('refuses a body sent as text/plain with 415 in the same envelope', async () => {
    const res = await fetch(`${axiru.baseUrl}/api/v1/decisions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${axiru.apiKey}`, 'Content-Type': 'text/plain' },
      body: JSON.stringify(valid),
    });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({
      error: 'invalid_request',
      message: expect.stringContaining('Content-Type'),
    });
  });

  it('answers 401 unauthorized without a valid key and 403 forbidden for a reviewer token', async () => {
    const none = await axiru.post('/api/v1/decisions', valid, 'ak_not_a_real_key');
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('unauthorized');
    const reviewer = await axiru.post('/api/v1/decisions', valid, stack.reviewerToken);
    expect(reviewer.status).toBe(403);
    expect(reviewer.body.error).toBe('forbidden');
  });

  it('answers 404 not_found for a decision of another kind of id', async () => {
    const res = await axiru.get('/api/v1/decisions/act_doesnotexist');
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('not_found');
  });
});

describe('the MCP tool alias axiru.decisions.create', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ name: 'axiru-agent', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${stack.airlock.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${stack.agentKey}` } },
      }),
    );
  });
  afterAll(async () => {
    await client?.close();
  });

  async function create(args: Record<string, unknown>): Promise<CallToolResult> {
    return (await client.callTool({ name: 'axiru.decisions.create', arguments: args })) as CallToolResult;
  }

  it("is listed under Axiru's name and answers Axiru's payload as the HTTP route does", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('axiru.decisions.create');
    const small = await create({ intent: { kind: 'refund', amount_cents: 2500, currency: 'USD' } });
    expect(small.isError).toBe(false);
    expect(small.structuredContent).toMatchObject({ outcome: 'allow', status: 'approved' });
    const large = await create({
      intent: { kind: 'refund', amount_cents: 60000, currency: 'USD', metadata: { order_id: 'ord_mcp' } },
      context: { customer_id: 'cus_mcp' },
    });
    expect(large.structuredContent).toMatchObject({ outcome: 'review', status: 'pending_approval' });
    const text = large.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
    expect(text).toContain('do NOT proceed');
    const own = (await stack.api(`/api/decisions/${(large.structuredContent as any).decision_id}`)).body;
    expect(own.intent).toMatchObject({ kind: 'refund.create', amount: 60000, currency: 'usd' });
  });

  it('may reach the Axiru route from a tool, over stdio too, but no approve or reject beside it', () => {
    expect(() => assertAgentPath('POST', '/api/v1/decisions')).not.toThrow();
    for (const path of [
      '/api/v1/decisions/act_1/approve',
      '/api/v1/decisions/act_1/reject',
      '/api/v1/decisions/../actions',
    ]) {
      expect(() => assertAgentPath('POST', path)).toThrow(/Tools cannot call/);
    }
  });

  it('reports a malformed payload as a tool error naming the field', async () => {
    const res = await create({ intent: { kind: 'refund', amount_cents: 12.5, currency: 'USD' } });
    expect(res.isError).toBe(true);
    expect(res.structuredContent).toMatchObject({
      error: 'invalid_request',
      field_errors: { 'intent.amount_cents': [expect.any(String)] },
    });
  });
});

describe('rate limits in Axiru terms', () => {
  it('answers 429 rate_limited with Retry-After once the key has used its allowance', async () => {
    const tight = await startStackWithPolicy(POLICY, { AIRLOCK_RATE_LIMIT_PER_MINUTE: '2' });
    try {
      const ask = () =>
        fetch(`${tight.airlock.url}/api/v1/decisions`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${tight.agentKey}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ intent: { kind: 'refund', amount_cents: 100, currency: 'USD' } }),
        });
      const answers = [await ask(), await ask(), await ask()];
      expect(answers.slice(0, 2).map((r) => r.status)).toEqual([200, 200]);
      const limited = answers[2]!;
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await limited.json()).toMatchObject({ error: 'rate_limited', request_id: expect.any(String) });
    } finally {
      await tight.close();
    }
  });
});
