// The core money path again, with the real server on PostgreSQL (DATABASE_URL) instead of a SQLite file.
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { charge, rejection, type Stack, startStack } from '../helpers/stack.ts';
import { createPostgresDatabase, type TestDatabase, unavailable } from '../store/databases.ts';

describe.skipIf(unavailable('postgres'))('money path on PostgreSQL', () => {
  let db: TestDatabase;
  let stack: Stack;

  beforeAll(async () => {
    db = await createPostgresDatabase();
    stack = await startStack({ DATABASE_URL: db.url });
  });
  afterAll(async () => {
    await stack?.close();
    await db?.drop();
  });

  const callsFor = (id: string) =>
    stack.sandbox.requests().filter((r) => r.idempotencyKey === `airlock-${id}`);

  it('runs on PostgreSQL, not on a SQLite file', () => {
    expect(stack.airlock.store.dialect).toBe('postgres');
  });

  it('forwards an allowed $20 refund once, tagged with its action', async () => {
    const ch = await charge(stack, 5000);
    const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 2000 });
    expect(refund.amount).toBe(2000);
    const stored = stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id);
    expect(stored).toHaveLength(1);
    const actionId = (stored[0]!['metadata'] as Record<string, string>)['airlock_action']!;
    expect(actionId).toMatch(/^act_/);
    expect(callsFor(actionId)).toHaveLength(1);
  });

  it('holds a $600 refund, then executes it exactly once after approval', async () => {
    const ch = await charge(stack, 60000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60000 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(err.code).toBe('approval_required');
    const actionId: string = err.raw.airlock_action;
    expect(callsFor(actionId)).toHaveLength(0);
    const approved = await stack.api(`/api/actions/${actionId}/approve`, { method: 'POST', body: {} });
    expect(approved.status).toBe(200);
    let final = (await stack.api(`/api/actions/${actionId}?wait=10`)).body;
    if (final.status !== 'completed') final = (await stack.api(`/api/actions/${actionId}?wait=10`)).body;
    expect(final.status).toBe('completed');
    expect(final.response_body.object).toBe('refund');
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
    expect(callsFor(actionId)).toHaveLength(1);
  });

  it('never sends a rejected action upstream', async () => {
    const ch = await charge(stack, 90000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 90000 }));
    const actionId: string = err.raw.airlock_action;
    const rejected = await stack.api(`/api/actions/${actionId}/reject`, { method: 'POST', body: {} });
    expect(rejected.body.status).toBe('rejected');
    const again = await stack.api(`/api/actions/${actionId}/approve`, { method: 'POST', body: {} });
    expect(again.body.error.code).toBe('already_decided');
    await new Promise((r) => setTimeout(r, 200));
    expect(callsFor(actionId)).toHaveLength(0);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
  });

  it('answers a repeated Idempotency-Key with the same refund, forwarding once', async () => {
    const ch = await charge(stack, 3000);
    const key = `pg-idem-${ch.id}`;
    const [r1, r2] = await Promise.all([
      stack.agent.refunds.create({ charge: ch.id, amount: 1000 }, { idempotencyKey: key }),
      stack.agent.refunds.create({ charge: ch.id, amount: 1000 }, { idempotencyKey: key }),
    ]);
    expect(r1.id).toBe(r2.id);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
  });

  it('keeps a verifiable hash-chained ledger', async () => {
    const { verifyLedger } = await import('../../src/engine/ledger.ts');
    const report = await verifyLedger(stack.airlock.store);
    expect(report.problems).toEqual([]);
    expect(report.events).toBeGreaterThan(5);
  });
});

describe.skipIf(unavailable('postgres'))('failing closed on PostgreSQL', () => {
  it('refuses a refund with 503 store_unavailable once the database is gone, and forwards nothing', async () => {
    const db = await createPostgresDatabase();
    const stack = await startStack({ DATABASE_URL: db.url });
    try {
      const ch = await charge(stack, 5000);
      await db.drop();
      const before = stack.sandbox.requests().filter((r) => r.path === '/v1/refunds').length;
      const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 1000 }));
      expect(err.statusCode).toBe(503);
      expect(err.raw.code).toBe('store_unavailable');
      expect(stack.sandbox.requests().filter((r) => r.path === '/v1/refunds').length).toBe(before);
    } finally {
      await stack.close();
    }
  });
});
