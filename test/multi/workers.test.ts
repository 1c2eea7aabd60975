// `airlock serve --workers 2` as a real process tree on PostgreSQL: both workers answer on the one port, a worker
// killed with SIGKILL is restarted by the primary while the official Stripe client's refunds keep being answered,
// and SIGTERM stops the whole group. On SQLite, more than one worker is refused with the reason.

import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServeProcess, spawnServe } from '../../harness/serve-process.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli } from '../helpers/process.ts';
import { stripeAt, tempDir, until } from '../helpers/stack.ts';
import { createPostgresDatabase, type TestDatabase, unavailable } from '../store/databases.ts';

const POLICY = `
default: review
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
`;

const LISTENING = /"worker":(\d+),"pid":(\d+),"url":"[^"]+"[^\n]*"msg":"Airlock is listening"/g;

/** The pid of each worker slot's latest start, read from the workers' own "Airlock is listening" lines. */
function workerPids(output: string): Map<number, number> {
  const pids = new Map<number, number>();
  for (const m of output.matchAll(LISTENING)) pids.set(Number(m[1]), Number(m[2]));
  return pids;
}

/** GET /healthz on a fresh connection (no keep-alive), so the kernel may hand it to either worker. */
function health(port: number): Promise<{ status: number; body: { ok: boolean; worker?: number } }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Asks /healthz up to `tries` times and returns the worker slots that answered. */
async function answeringWorkers(port: number, tries: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < tries && seen.size < 2; i++) {
    const res = await health(port);
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(true);
    if (res.body.worker !== undefined) seen.add(res.body.worker);
  }
  return seen;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(unavailable('postgres'))('airlock serve --workers 2 on PostgreSQL', () => {
  let db: TestDatabase;
  let sandbox: Sandbox;
  let primary: ServeProcess;
  let agentKey: string;

  beforeAll(async () => {
    db = await createPostgresDatabase();
    sandbox = await startSandbox();
    const dir = tempDir();
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    const env = {
      DATABASE_URL: db.url,
      STRIPE_API_BASE: sandbox.url,
      AIRLOCK_POLICY: join(dir, 'policy.yaml'),
      AIRLOCK_LOG_FORMAT: 'json',
    };
    // The primary migrates a fresh database before forking: nothing is migrated here beforehand.
    primary = await spawnServe({ env, args: ['--workers', '2'], timeoutMs: 120_000 });
    await until(() => (workerPids(primary.output()).size === 2 ? true : undefined), 120_000);
    const key = await cli(['keys', 'create', '--agent', 'workers-bot', '--json'], env);
    expect(key.code, key.stderr).toBe(0);
    agentKey = JSON.parse(key.stdout).key;
  }, 240_000);

  afterAll(async () => {
    await primary?.stop();
    await sandbox?.close();
    await db?.drop();
  });

  it('answers on one port from both workers, and names the worker in /healthz', async () => {
    const pids = workerPids(primary.output());
    expect([...pids.keys()].sort()).toEqual([1, 2]);
    expect(pids.get(1)).not.toBe(pids.get(2));
    for (const pid of pids.values()) expect(pid).not.toBe(primary.pid);
    // Round-robin hands connections out in turn, so a couple of hundred fresh ones reach both.
    expect([...(await answeringWorkers(primary.port, 200))].sort()).toEqual([1, 2]);
  });

  it('restarts a worker killed with SIGKILL while refunds keep being answered', async () => {
    const agent = stripeAt(agentKey, primary.port, 3);
    const direct = stripeAt('sk_test_direct', sandbox.port);
    const charge = await direct.charges.create({ amount: 1_000_000, currency: 'usd', source: 'tok_visa' });
    const before = workerPids(primary.output());
    const victim = before.get(1)!;
    process.kill(victim, 'SIGKILL');

    // Refunds one after another until worker 1 is back under a new pid; every one must be answered.
    let answered = 0;
    for (let i = 0; i < 2_000; i++) {
      const refund = await agent.refunds.create({ charge: charge.id, amount: 100 });
      expect(refund.status).toBe('succeeded');
      answered++;
      const now = workerPids(primary.output()).get(1);
      if (now !== undefined && now !== victim) break;
    }
    const after = workerPids(primary.output());
    expect(after.get(1)).toBeDefined();
    expect(after.get(1)).not.toBe(victim);
    expect(after.get(2)).toBe(before.get(2));
    expect(alive(victim)).toBe(false);
    expect(primary.output()).toMatch(
      /"worker":1,"worker_pid":\d+,"code":null,"signal":"SIGKILL"[^\n]*restarting it/,
    );
    expect(sandbox.list('refund')).toHaveLength(answered);

    // The restarted worker takes requests again.
    expect([...(await answeringWorkers(primary.port, 200))].sort()).toEqual([1, 2]);
  }, 240_000);

  it('stops every worker on SIGTERM to the primary and exits 0', async () => {
    const pids = [...workerPids(primary.output()).values()];
    const exit = new Promise<number | null>((r) => primary.child.once('exit', (code) => r(code)));
    await primary.stop('SIGTERM');
    expect(await exit).toBe(0);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(primary.output()).toMatch(/"reason":"SIGTERM","workers":2,"msg":"stopping workers"/);
  }, 60_000);
});

describe('airlock serve --workers 2 on SQLite', () => {
  it('refuses to start, saying one process owns the SQLite file', async () => {
    const dir = tempDir();
    const res = await cli(['serve', '--workers', '2'], {
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      DATABASE_URL: '',
      STRIPE_API_BASE: 'http://127.0.0.1:9',
      PORT: '0',
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/--workers 2 needs PostgreSQL \(DATABASE_URL\)/);
    expect(res.stderr).toMatch(/one process owns the database file/);
  });

  it('refuses a worker count that is not a whole number of at least 1', async () => {
    const res = await cli(['serve', '--workers', '0'], { DATABASE_URL: '' });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/--workers: expected a whole number of at least 1, got '0'/);
  });
});
