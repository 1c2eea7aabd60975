// Cheqpoint's documented flow against a real Airlock, in Cheqpoint's field names: only the base URL and the key change.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { AirlockUnavailableError, type CheqpointAnswer, createCheqpoint, verifyWebhook } from 'airlock/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { ACTIONS_POLICY, rejection, type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';

const SECRET = 'whsec_cheqpoint_0123456789abcdef';
let stack: Stack;
let hooks: Receiver;
let cheqpoint: ReturnType<typeof createCheqpoint>;

beforeAll(async () => {
  hooks = await startReceiver();
  stack = await startStackWithPolicy(ACTIONS_POLICY, {
    AIRLOCK_CALLBACK_SECRET: SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_BACKOFF_MS: '20',
    AIRLOCK_CALLBACK_POLL_MS: '20',
  });
  // What a Cheqpoint user changes: the base URL and the key.
  cheqpoint = createCheqpoint({ baseUrl: stack.airlock.url, apiKey: stack.agentKey });
});

afterAll(async () => {
  await stack?.close();
  await hooks?.close();
});

/** Checks Airlock-Signature from the documented scheme, independently of Airlock's code. */
function signedBySecret(header: string | undefined, body: string): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  if (!parts['t'] || !parts['v1']) return false;
  const expected = createHmac('sha256', SECRET).update(`${parts['t']}.${body}`).digest();
  const given = Buffer.from(parts['v1'], 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Cheqpoint's request for a refund of `amount_cents`, as its documentation writes it. */
function refund(amount_cents: number, extra: Record<string, unknown> = {}) {
  return {
    action: 'issue_refund' as const,
    summary: `Refund ${amount_cents} on order 42`,
    details: {
      charge_id: 'ch_42',
      amount_cents,
      currency: 'USD',
      reason: 'requested_by_customer',
      customer_id: 'cus_42',
    },
    justification: 'The parcel arrived damaged',
    ...extra,
  };
}

/** A raw call to the Cheqpoint endpoints, as Cheqpoint's own client would make it. */
async function raw(path: string, body: unknown, method = 'POST') {
  const res = await fetch(`${stack.airlock.url}/api/cheqpoint/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.agentKey}`, 'content-type': 'application/json' },
    body: method === 'GET' ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** The held decision a reviewer sees, found by its amount: requestSync has not answered yet. */
async function heldWithAmount(amount: number): Promise<string> {
  const end = Date.now() + 10_000;
  for (;;) {
    const list = await stack.api('/api/actions?status=awaiting_approval&limit=100');
    const found = list.body.data.find((a: any) => a.kind === 'refund.create' && a.amount === amount);
    if (found) return found.id;
    if (Date.now() > end) throw new Error(`no held refund of ${amount}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("Cheqpoint's flow, changing only the base URL and the key", () => {
  it('approves a $20 refund at once, and the policy saw refund.create for 2000 usd', async () => {
    const answer = await cheqpoint.requestSync(refund(2000, { timeoutMs: 5000 }));
    expect(answer).toMatchObject({
      status: 'approved',
      modifiedDetails: null,
      decisionNote: null,
      outcome: 'allow',
      reasonCode: 'policy_allow',
    });
    expect(answer.approvalId).toMatch(/^act_/);
    const seen = (await stack.api(`/api/decisions/${answer.approvalId}`)).body;
    expect(seen.intent).toMatchObject({ kind: 'refund.create', amount: 2000, currency: 'usd' });
  });

  it('holds an $800 refund; requestSync answers approved with modifiedDetails once a reviewer lowers it to $400', async () => {
    const pending = cheqpoint.requestSync(refund(80000, { timeoutMs: 20_000 }));
    const id = await heldWithAmount(80000);
    const approved = await stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      body: { note: 'half now, half after the return', changes: { amount: 40000 } },
    });
    expect(approved.status).toBe(200);
    const answer = await pending;
    expect(answer).toMatchObject({
      approvalId: id,
      status: 'approved',
      modifiedDetails: { amount_cents: 40000 },
      decisionNote: 'half now, half after the return',
      reasonCode: 'reviewer_approved',
    });
    // What Airlock recorded as decided is the lowered amount, not the one asked for, and the ledger says so.
    const seen = (await stack.api(`/api/decisions/${id}`)).body;
    expect(seen.intent.amount).toBe(40000);
    const events = (await stack.api(`/api/actions/${id}/events`)).body.data;
    expect(events.map((e: any) => e.type)).toContain('action.modified');
    expect(events.at(-1).to).toBe('approved');
  });

  it('answers pending when timeoutMs passes first, and get() reads the decision later', async () => {
    const answer = await cheqpoint.requestSync(refund(70000, { timeoutMs: 200 }));
    expect(answer.status).toBe('pending');
    expect(answer.modifiedDetails).toBeNull();
    await stack.api(`/api/actions/${answer.approvalId}/approve`, { method: 'POST', body: { note: 'fine' } });
    const later = await cheqpoint.get(answer.approvalId, { timeoutMs: 5000 });
    expect(later).toMatchObject({ status: 'approved', decisionNote: 'fine', modifiedDetails: null });
  });

  it('posts a rejection with its note to callbackUrl in Cheqpoint shape, signed by Airlock', async () => {
    const answer = await cheqpoint.requestAsync({
      ...refund(90000),
      callbackUrl: `${hooks.url}/cheqpoint`,
    });
    expect(answer.status).toBe('pending');
    const rejected = await stack.api(`/api/actions/${answer.approvalId}/reject`, {
      method: 'POST',
      body: { note: 'Duplicate of the refund issued yesterday' },
    });
    expect(rejected.status).toBe(200);
    const hook = await until(() => hooks.received.find((h) => h.body.includes(answer.approvalId)));
    const header = hook.headers['airlock-signature'] as string;
    expect(signedBySecret(header, hook.body)).toBe(true);
    expect(signedBySecret(header, hook.body.replace('rejected', 'approved'))).toBe(false);
    const posted = verifyWebhook(hook.body, header, SECRET) as unknown as CheqpointAnswer;
    expect(posted).toMatchObject({
      approvalId: answer.approvalId,
      status: 'rejected',
      decisionNote: 'Duplicate of the refund issued yesterday',
      modifiedDetails: null,
      reasonCode: 'reviewer_rejected',
    });
    expect(hook.headers['airlock-event-id']).toMatch(/^evt_/);
    expect((await cheqpoint.get(answer.approvalId)).status).toBe('rejected');
  });

  it('posts an approval with a lower amount to callbackUrl with modifiedDetails', async () => {
    const answer = await cheqpoint.requestAsync({
      ...refund(120000),
      callbackUrl: `${hooks.url}/cheqpoint`,
    });
    await stack.api(`/api/actions/${answer.approvalId}/approve`, {
      method: 'POST',
      body: { note: 'partial', changes: { amount: 30000 } },
    });
    const hook = await until(() => hooks.received.find((h) => h.body.includes(answer.approvalId)));
    const posted = verifyWebhook(
      hook.body,
      hook.headers['airlock-signature'],
      SECRET,
    ) as unknown as CheqpointAnswer;
    expect(posted).toMatchObject({ status: 'approved', modifiedDetails: { amount_cents: 30000 } });
  });

  it('answers rejected, never approved, for what the policy blocks', async () => {
    const answer = await cheqpoint.requestSync({
      action: 'create_payout',
      details: { amount_cents: 100, currency: 'usd' },
      timeoutMs: 1000,
    });
    expect(answer).toMatchObject({ status: 'rejected', outcome: 'block', reasonCode: 'policy_block' });
  });

  it('returns the same request for a repeated idempotencyKey, and names idempotencyKey for a different one', async () => {
    const a = await raw('/requests/sync', refund(75000, { idempotencyKey: 'cheq-7', timeoutMs: 0 }));
    const b = await raw('/requests/sync', refund(75000, { idempotencyKey: 'cheq-7', timeoutMs: 0 }));
    expect(b.body.approvalId).toBe(a.body.approvalId);
    const c = await raw('/requests/sync', refund(75001, { idempotencyKey: 'cheq-7', timeoutMs: 0 }));
    expect(c.status).toBe(409);
    expect(c.body.error.param).toBe('idempotencyKey');
    expect(c.body.error.message).toContain('idempotencyKey');
  });

  it('throws AirlockUnavailableError, not an approval, when Airlock cannot be reached', async () => {
    const down = createCheqpoint({ baseUrl: 'http://127.0.0.1:1', apiKey: stack.agentKey, maxRetries: 0 });
    const err = await rejection(down.requestSync(refund(100)));
    expect(err).toBeInstanceOf(AirlockUnavailableError);
  });
});

describe("errors name Cheqpoint's fields", () => {
  const cases: [string, string, unknown, string][] = [
    ['no details', '/requests/sync', { action: 'issue_refund' }, 'details'],
    ['an unknown action', '/requests/sync', { ...refund(100), action: 'refund' }, 'action'],
    [
      'a text amount',
      '/requests/sync',
      refund(100, { details: { amount_cents: 'lots', currency: 'usd' } }),
      'details.amount_cents',
    ],
    [
      'a fractional amount',
      '/requests/sync',
      refund(100, { details: { amount_cents: 10.5, currency: 'usd' } }),
      'details.amount_cents',
    ],
    [
      'an amount without currency',
      '/requests/sync',
      refund(100, { details: { amount_cents: 100 } }),
      'details.currency',
    ],
    [
      'a bad currency',
      '/requests/sync',
      refund(100, { details: { amount_cents: 100, currency: 'dollars' } }),
      'details.currency',
    ],
    [
      'an unknown detail',
      '/requests/sync',
      refund(100, { details: { amount: 100, currency: 'usd' } }),
      'details.amount',
    ],
    ['an unknown field', '/requests/sync', refund(100, { priority: 'high' }), 'priority'],
    ['a negative timeoutMs', '/requests/sync', refund(100, { timeoutMs: -1 }), 'timeoutMs'],
    ['requestAsync without callbackUrl', '/requests/async', refund(100), 'callbackUrl'],
    [
      'requestAsync with timeoutMs',
      '/requests/async',
      refund(100, { timeoutMs: 10, callbackUrl: 'http://127.0.0.1:9/x' }),
      'timeoutMs',
    ],
    [
      'a callbackUrl that is not http',
      '/requests/async',
      refund(100, { callbackUrl: 'file:///etc/passwd' }),
      'callbackUrl',
    ],
  ];
  for (const [name, path, body, param] of cases) {
    it(`answers 400 naming ${param} for ${name}`, async () => {
      const res = await raw(path, body);
      expect(res.status).toBe(400);
      expect(res.body.error.param).toBe(param);
      expect(res.body.error.message).toContain(param);
    });
  }

  it('answers 401 before looking at the body without a key, and 403 for a reviewer token', async () => {
    const url = `${stack.airlock.url}/api/cheqpoint/v1/requests/sync`;
    const none = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'nope' }),
    });
    expect(none.status).toBe(401);
    const asReviewer = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.reviewerToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(refund(100)),
    });
    expect(asReviewer.status).toBe(403);
  });

  it('lists the actions it knows when the action is not one of them', async () => {
    const res = await raw('/requests/sync', { ...refund(100), action: 'refund' });
    expect(res.body.error.message).toContain('issue_refund');
  });

  it('answers 404 naming approvalId for an id that is not a decision request', async () => {
    const res = await raw('/requests/act_nope', undefined, 'GET');
    expect(res.status).toBe(404);
    expect(res.body.error.param).toBe('approvalId');
  });
});

describe('OpenAPI', () => {
  it('describes the Cheqpoint and SafeFetch routes with their request schemas, and still validates', async () => {
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const doc = (await (await fetch(`${stack.airlock.url}/api/openapi.json`)).json()) as any;
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/cheqpoint/v1/requests/sync',
        '/api/cheqpoint/v1/requests/async',
        '/api/cheqpoint/v1/requests/{approvalId}',
        '/api/safefetch/v1/actions',
        '/api/safefetch/v1/actions/{id}/approve',
      ]),
    );
    expect(doc.components.schemas.CheqpointSyncRequest.required).toEqual(['action', 'details']);
    expect(doc.components.schemas.CheqpointAsyncRequest.required).toContain('callbackUrl');
    expect(doc.components.schemas.SafeFetchRequest.properties.notify).toBeDefined();
  });
});
