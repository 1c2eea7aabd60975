import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.ts';

let stack: Stack | null = null;
afterEach(async () => {
  await stack?.close();
  stack = null;
});

async function get(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack!.airlock.url}${path}`);
  return { status: res.status, body: await res.json() };
}

describe('health and readiness', () => {
  it('answers /healthz and /readyz with every check passing on a fresh server', async () => {
    stack = await startStack();
    const health = await get('/healthz');
    expect(health.status).toBe(200);
    expect(health.body.ok).toBe(true);
    const ready = await get('/readyz');
    expect(ready).toEqual({
      status: 200,
      body: { ok: true, checks: { store: { ok: true }, migrations: { ok: true }, policy: { ok: true } } },
    });
  });

  it('answers 503 naming the migration that is not applied', async () => {
    stack = await startStack();
    // Another process (an older binary, a restore from backup) leaves the schema one migration behind.
    const db = new Database(join(stack.dir, 'airlock.db'));
    const last = db.prepare('select name from kysely_migration order by name desc limit 1').get() as {
      name: string;
    };
    db.prepare('delete from kysely_migration where name = ?').run(last.name);
    db.close();
    const ready = await get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.ok).toBe(false);
    expect(ready.body.checks.store).toEqual({ ok: true });
    expect(ready.body.checks.migrations.ok).toBe(false);
    expect(ready.body.checks.migrations.error).toContain(last.name);
    expect(ready.body.checks.policy).toEqual({ ok: true });
  });

  it('answers 503 naming the store when the database cannot be reached', async () => {
    stack = await startStack();
    await stack.airlock.store.close();
    const ready = await get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.store.ok).toBe(false);
    expect(ready.body.checks.store.error).toEqual(expect.any(String));
    expect(ready.body.checks.migrations).toEqual({ ok: false, error: 'store unreachable' });
  });
});
