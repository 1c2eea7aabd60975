// Reviewer tokens are rvw_ now; the rk_ tokens Airlock 0.1 issued (Stripe's restricted-key prefix) still work
// during the deprecation period, with the same rights and the same refusals. Real server, real SQLite, official client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createReviewer,
  hashCredential,
  LEGACY_REVIEWER_TOKEN_PREFIX,
  REVIEWER_TOKEN_PREFIX,
} from '../../src/auth/credentials.ts';
import { newId, randomToken } from '../../src/ids.ts';
import { charge, rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';

let stack: Stack;
let current: string;
let legacy: string;

beforeAll(async () => {
  stack = await startStack();
  current = (await createReviewer(stack.airlock.store, 'new@example.com')).token;
  // A token as Airlock 0.1 made it: rk_ and 40 random characters, stored only as its hash.
  const old = await createReviewer(stack.airlock.store, 'old@example.com');
  legacy = `rk_${randomToken(40)}`;
  await stack.airlock.store.credentials.insertReviewerToken({
    id: newId('rtk'),
    reviewer_id: old.id,
    token_hash: hashCredential(legacy),
    created_at: new Date().toISOString(),
    expires_at: null,
  });
});
afterAll(async () => {
  await stack?.close();
});

/** A $600 refund the starter policy holds; returns the action id. */
async function held(): Promise<{ actionId: string; chargeId: string }> {
  const ch = await charge(stack, 100_000);
  const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60_000 }));
  expect(err.code).toBe('approval_required');
  return { actionId: err.raw.airlock_action, chargeId: ch.id };
}

async function settled(id: string): Promise<any> {
  return (await stack.api(`/api/actions/${id}?wait=10`, { token: current })).body;
}

describe('reviewer token prefixes', () => {
  it("issues rvw_ tokens, not Stripe's rk_", () => {
    expect(REVIEWER_TOKEN_PREFIX).toBe('rvw_');
    expect(current).toMatch(/^rvw_\w{40}$/);
    expect(current.startsWith(LEGACY_REVIEWER_TOKEN_PREFIX)).toBe(false);
  });

  for (const which of ['rvw_ (current)', 'rk_ (deprecated)'] as const) {
    it(`approves a held refund with an ${which} token, and the refund executes once`, async () => {
      const token = which.startsWith('rvw_') ? current : legacy;
      const { actionId, chargeId } = await held();
      const list = await stack.api('/api/actions?status=awaiting_approval', { token });
      expect(list.status).toBe(200);
      expect(list.body.data.map((a: { id: string }) => a.id)).toContain(actionId);
      const approve = await stack.api(`/api/actions/${actionId}/approve`, {
        method: 'POST',
        token,
        body: { note: which },
      });
      expect(approve.status).toBe(200);
      expect((await settled(actionId)).status).toBe('completed');
      expect(stack.sandbox.list('refund').filter((r) => r['charge'] === chargeId)).toHaveLength(1);
    });

    it(`refuses an ${which} token on the Stripe proxy and /mcp with 403, as a reviewer credential`, async () => {
      const token = which.startsWith('rvw_') ? current : legacy;
      const ch = await charge(stack, 10_000);
      const err = await rejection(
        stripeAt(token, stack.airlock.port).refunds.create({ charge: ch.id, amount: 100 }),
      );
      expect(err.statusCode).toBe(403);
      expect(err.message).toContain('Reviewer credentials cannot call the Stripe proxy');
      const mcp = await fetch(`${stack.airlock.url}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(mcp.status).toBe(403);
      expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
    });
  }

  it('answers 401 invalid_api_key to an unknown token of either prefix', async () => {
    for (const token of [`rvw_${'x'.repeat(40)}`, `rk_${'x'.repeat(40)}`]) {
      const res = await stack.api('/api/actions', { token });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('invalid_api_key');
    }
  });
});
