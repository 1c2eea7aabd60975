// A changed version restarts the vote: approvals given to the earlier version stop counting, and everyone may vote
// again on the new one, so a two-reviewer quorum cannot stall after one of them approves with a change.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FormClient, type ReviewStack, startReviewStack } from './helpers.ts';

let stack: ReviewStack;
const clients: Record<string, FormClient> = {};

beforeAll(async () => {
  stack = await startReviewStack();
  for (const name of ['alice', 'bob'] as const) {
    clients[name] = new FormClient(stack.airlock.url);
    expect(await clients[name].logIn(`${name}@example.com`)).toBe(303);
  }
});
afterAll(async () => {
  await stack?.close();
});

async function decide(name: 'alice' | 'bob', id: string, form: Record<string, string> = {}) {
  const c = clients[name]!;
  return c.request(`/review/actions/${id}/approve`, { form: { _csrf: await c.csrf(), ...form } });
}

it('lets A approve again after B approved with a change, and then executes the changed refund once', async () => {
  // $6,000 needs two finance reviewers; $5,500 still does.
  const { actionId, chargeId } = await stack.holdRefund(600_000);
  expect((await stack.airlock.engine.get(actionId)).approvals_required).toBe(2);

  expect((await decide('alice', actionId)).location).toContain('notice=recorded');
  const changed = await decide('bob', actionId, { amount: '5500.00' });
  expect(changed.status).toBe(303);
  expect(changed.location).toContain('notice=recorded');
  const held = await stack.airlock.engine.get(actionId);
  expect(held.status).toBe('awaiting_approval');
  expect(held.amount).toBe(550_000);
  expect(held.approvals_required).toBe(2);

  // B already voted on this version; A's vote was for the earlier one.
  expect((await decide('bob', actionId)).status).toBe(409);
  const again = await decide('alice', actionId, { note: 'fine at $5,500' });
  expect(again.status).toBe(303);
  expect(again.location).toContain('notice=approved');

  const done = await stack.airlock.engine.waitFor(actionId, (s) => s === 'completed' || s === 'failed', 5000);
  expect(done.status).toBe('completed');
  const refunds = stack.refundsFor(chargeId);
  expect(refunds).toHaveLength(1);
  expect(refunds[0]!['amount']).toBe(550_000);

  // Both votes now stand for the version that ran; the ledger keeps A's first vote as well.
  const approvals = await stack.airlock.store.listApprovals(actionId);
  expect(approvals.map((a) => a.reviewer_email).sort()).toEqual(['alice@example.com', 'bob@example.com']);
  expect(new Set(approvals.map((a) => a.bound_hash)).size).toBe(1);
  expect(await stack.airlock.engine.approvalsBindTo(done)).toBe(true);
  const types = (await stack.airlock.store.ledgerForAction(actionId)).map((e) => e.type);
  expect(types.filter((t) => t === 'approval.recorded')).toHaveLength(2);
  expect(types.filter((t) => t === 'action.modified')).toHaveLength(1);
  expect(types.filter((t) => t === 'action.approved')).toHaveLength(1);
});

it('still refuses a second vote on the same version', async () => {
  const { actionId } = await stack.holdRefund(600_000);
  expect((await decide('alice', actionId)).status).toBe(303);
  const twice = await decide('alice', actionId);
  expect(twice.status).toBe(409);
  expect(twice.text).toContain('Nothing more was done');
  expect((await stack.airlock.engine.get(actionId)).status).toBe('awaiting_approval');
});
