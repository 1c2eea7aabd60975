// Guarantee 3: an approval is bound to the exact request. Changing the request after the decision, outside the
// engine, must stop it from executing; a reviewer's change makes earlier approvals stop counting.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { charge, rejection, type Stack, startStack, startStackWithPolicy } from '../helpers/stack.ts';

describe('a request edited in the database after approval', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  it('is not executed: dispatch fails it because the approval no longer matches', async () => {
    const ch = await charge(stack, 90000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60000 }));
    const id: string = err.raw.airlock_action;
    // Hold dispatch so the row can be edited between the approval and the upstream call.
    await stack.airlock.dispatcher.stop();
    const approved = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    expect(approved.body.status).toBe('pending');
    const db = new Database(join(stack.dir, 'airlock.db'));
    const row = db.prepare('select params from actions where id = ?').get(id) as { params: string };
    db.prepare('update actions set params = ? where id = ?').run(row.params.replace('60000', '90000'), id);
    db.close();
    stack.airlock.dispatcher.start();
    const done = (await stack.api(`/api/actions/${id}?wait=10`)).body;
    expect(done.status).toBe('failed');
    expect(done.last_error).toBe('approval does not match this request');
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
    expect(stack.sandbox.requests().some((r) => r.idempotencyKey === `airlock-${id}`)).toBe(false);
  });
});

describe('approvals of an earlier version', () => {
  let stack: Stack;
  let second: string;
  beforeAll(async () => {
    stack = await startStackWithPolicy([
      'default: review',
      'rules:',
      `  - rule: "Review if :kind: = 'refund.create'"`,
      '    approvals: 2',
    ]);
    second = (await createReviewer(stack.airlock.store, 'second@example.com')).token;
  });
  afterAll(async () => {
    await stack.close();
  });

  it('stop counting towards the quorum once a reviewer changes the request', async () => {
    const ch = await charge(stack, 90000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 80000 }));
    const id: string = err.raw.airlock_action;
    const first = await stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      body: { note: 'as asked' },
    });
    expect(first.body.status).toBe('awaiting_approval');
    // The second reviewer approves a lower amount: a new request, so the first approval was for something else.
    const changed = await stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      body: { changes: { amount: 40000 } },
      token: second,
    });
    expect(changed.status).toBe(200);
    expect(changed.body.status).toBe('awaiting_approval');
    expect(changed.body.amount).toBe(40000);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
  });
});
