// Guarantee 5: when the store cannot record an action, Airlock refuses the write instead of forwarding it.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { charge, rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});

it('refuses a refund with 503 store_unavailable while the database is locked, and forwards nothing', async () => {
  const ch = await charge(stack, 5000);
  const agent = stripeAt(stack.agentKey, stack.airlock.port, 0);
  const before = stack.sandbox.requests().filter((r) => r.path === '/v1/refunds').length;
  // Another process takes the write lock and keeps it past Airlock's busy timeout.
  const locker = new Database(join(stack.dir, 'airlock.db'));
  locker.exec('BEGIN EXCLUSIVE');
  try {
    const err = await rejection(agent.refunds.create({ charge: ch.id, amount: 1000 }));
    expect(err.statusCode).toBe(503);
    expect(err.raw.code).toBe('store_unavailable');
    expect(err.message).toMatch(/nothing was forwarded/);
  } finally {
    locker.exec('ROLLBACK');
    locker.close();
  }
  expect(stack.sandbox.requests().filter((r) => r.path === '/v1/refunds').length).toBe(before);
  // Once the store is back, the same request goes through and is recorded.
  const refund = await agent.refunds.create({ charge: ch.id, amount: 1000 });
  expect(refund.object).toBe('refund');
}, 30_000);
