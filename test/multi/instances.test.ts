// Three real `airlock serve` processes on one PostgreSQL database and one sandbox, with requests and approvals
// spread over them and one instance SIGKILLed mid-run and restarted. AIRLOCK_MULTI_ACTIONS sets how many actions
// (default 1000; `npm run test:multi` runs the same).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { openPostgresStore } from '../../src/store/postgres/open.ts';
import type { Store } from '../../src/store/store.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { stripeAt, tempDir } from '../helpers/stack.ts';
import { actions } from '../helpers/store-reads.ts';
import { createPostgresDatabase, type TestDatabase, unavailable } from '../store/databases.ts';

const N = Number(process.env['AIRLOCK_MULTI_ACTIONS'] ?? 1000);
const CONCURRENCY = 24;

const POLICY = `
default: review
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
`;

// Short leases so the killed instance's claims are taken over within the test; timeouts below the lease.
const CONFIG = `
log_level: warn
dispatch:
  lease_ms: 3000
  poll_ms: 200
  upstream_timeout_ms: 2000
  backoff_ms: 20
  max_backoff_ms: 200
  max_attempts: 10
`;

type Plan = 'allow' | 'approve' | 'reject';
const planFor = (i: number): Plan => (['allow', 'approve', 'reject'] as const)[i % 3]!;
const centsFor = (plan: Plan) => (plan === 'allow' ? 100_00 : plan === 'approve' ? 600_00 : 700_00);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(unavailable('postgres'))(`${N} actions over three instances on one PostgreSQL`, () => {
  let db: TestDatabase;
  let sandbox: Sandbox;
  let store: Store;
  let env: Record<string, string>;
  const instances: (ServerProcess | null)[] = [null, null, null];
  let agentKey: string;
  let reviewerToken: string;

  beforeAll(async () => {
    db = await createPostgresDatabase();
    sandbox = await startSandbox();
    const dir = tempDir();
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    writeFileSync(join(dir, 'airlock.yaml'), CONFIG);
    env = {
      DATABASE_URL: db.url,
      STRIPE_API_BASE: sandbox.url,
      AIRLOCK_POLICY: join(dir, 'policy.yaml'),
      AIRLOCK_CONFIG: join(dir, 'airlock.yaml'),
    };
    // Upgrade order: migrate once, then start the instances.
    const migrated = await cli(['migrate', '--json'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    const key = await cli(['keys', 'create', '--agent', 'multi-bot', '--json'], env);
    agentKey = JSON.parse(key.stdout).key;
    const reviewer = await cli(['reviewers', 'create', '--email', 'ops@example.com', '--json'], env);
    reviewerToken = JSON.parse(reviewer.stdout).token;
    const started = await Promise.all(
      [0, 1, 2].map(() => spawnAirlock({ ...env, AIRLOCK_LOG_LEVEL: 'info' })),
    );
    started.forEach((p, i) => {
      instances[i] = p;
    });
    store = await openPostgresStore(db.url, { migrate: false });
  }, 120_000);

  afterAll(async () => {
    for (const p of instances) if (p) await stopProcess(p);
    await store?.close();
    await sandbox?.close();
    await db?.drop();
  });

  /** One HTTP call to instance i, or to the next live one when it cannot be reached. */
  async function call(
    start: number,
    path: string,
    init: { method: string; headers: Record<string, string>; body: string },
  ): Promise<{ status: number; body: any } | null> {
    for (let k = 0; k < 3; k++) {
      const p = instances[(start + k) % 3];
      if (!p) continue;
      try {
        const res = await fetch(`${p.url}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
        const text = await res.text();
        return { status: res.status, body: text ? JSON.parse(text) : null };
      } catch {
        // Killed or restarting: a load balancer would send the retry elsewhere; so do we.
      }
    }
    return null;
  }

  /** The agent's refund, retried with the same Idempotency-Key until Airlock has recorded and answered it. */
  async function submit(i: number, chargeId: string): Promise<{ held: string | null }> {
    const plan = planFor(i);
    for (let attempt = 0; attempt < 200; attempt++) {
      const res = await call(i + attempt, '/v1/refunds', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${agentKey}`,
          'idempotency-key': `multi-${i}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: `charge=${chargeId}&amount=${centsFor(plan)}&metadata[test_index]=${i}`,
      });
      if (res?.status === 200) return { held: null };
      if (res?.status === 403 && res.body.error.code === 'approval_required') {
        return { held: res.body.error.airlock_action as string };
      }
      await sleep(50); // unreachable, or still executing on an instance that died: ask again
    }
    throw new Error(`action ${i} was never answered`);
  }

  async function decide(i: number, actionId: string, verb: 'approve' | 'reject'): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const res = await call(i + 1 + attempt, `/api/actions/${actionId}/${verb}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reviewerToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ note: `multi ${i}` }),
      });
      if (res?.status === 200) return;
      // A retry after a lost answer finds our own earlier decision.
      if (res?.status === 409 && res.body.error.code === 'already_decided') return;
      await sleep(50);
    }
    throw new Error(`action ${i} was never decided`);
  }

  it('ends every action in a terminal status and executes each allowed or approved one exactly once', async () => {
    const direct = stripeAt('sk_test_direct', sandbox.port);
    const charges = await Promise.all(
      Array.from({ length: Math.ceil(N / 20) }, () =>
        direct.charges.create({ amount: 1_000_000, currency: 'usd', source: 'tok_visa' }),
      ),
    );
    const started = performance.now();
    let next = 0;
    let done = 0;
    let killedAt = -1;
    const killer = (async () => {
      while (done < N / 3) await sleep(20);
      killedAt = done;
      await stopProcess(instances[1]!, 'SIGKILL');
      instances[1] = null;
      await sleep(1_000);
      instances[1] = await spawnAirlock({ ...env, AIRLOCK_LOG_LEVEL: 'info' });
    })();
    const ids = new Map<number, string>();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < N; i = next++) {
          const plan = planFor(i);
          const { held } = await submit(i, charges[i % charges.length]!.id);
          if (plan === 'allow') {
            expect(held).toBeNull();
          } else {
            expect(held).toMatch(/^act_/);
            ids.set(i, held!);
            await decide(i, held!, plan === 'approve' ? 'approve' : 'reject');
          }
          done++;
        }
      }),
    );
    await killer;
    expect(killedAt).toBeGreaterThan(0);
    expect(killedAt).toBeLessThan(N);

    // Wait for the dispatchers (and the takeover of the killed instance's leases) to settle everything.
    const deadline = Date.now() + 60_000;
    let open = -1;
    while (Date.now() < deadline) {
      const settled = ['completed', 'rejected', 'failed', 'blocked', 'expired', 'cancelled'];
      open = (await actions(store, (a) => !settled.includes(a.status))).length;
      if (open === 0) break;
      await sleep(100);
    }
    const elapsed = Math.round(performance.now() - started);
    expect(open).toBe(0);

    const rows = await actions(store, (a) => a.kind === 'refund.create');
    expect(rows).toHaveLength(N);
    const byKey = new Map(rows.map((r) => [r.idempotency_key, r]));
    expect(byKey.size).toBe(N);
    for (let i = 0; i < N; i++) {
      const row = byKey.get(`multi-${i}`)!;
      expect(row.status, `action ${i} (${planFor(i)})`).toBe(
        planFor(i) === 'reject' ? 'rejected' : 'completed',
      );
      if (ids.has(i)) expect(row.id).toBe(ids.get(i));
    }
    const completed = new Set(rows.filter((r) => r.status === 'completed').map((r) => r.id));
    expect(completed.size).toBe(
      Array.from({ length: N }, (_, i) => planFor(i)).filter((p) => p !== 'reject').length,
    );

    // The sandbox holds one refund per executed action, tagged with it, and nothing else.
    const refunds = sandbox.list('refund');
    const tags = refunds.map((r) => (r['metadata'] as Record<string, string>)['airlock_action']);
    expect(tags.length).toBe(completed.size);
    expect(new Set(tags).size).toBe(tags.length);
    for (const tag of tags) expect(completed.has(tag!)).toBe(true);
    // Every refund request it received carried the key of an executed action: no rejected one, no stray call.
    const posts = sandbox.requests().filter((r) => r.method === 'POST' && r.path === '/v1/refunds');
    for (const r of posts)
      expect(completed.has((r.idempotencyKey ?? '').replace(/^airlock-/, ''))).toBe(true);
    const retried = posts.length - new Set(posts.map((r) => r.idempotencyKey)).size;

    const report = await verifyLedger(store);
    expect(report.problems).toEqual([]);
    console.log(
      `[multi] ${N} actions over 3 instances (one SIGKILLed after ${killedAt} and restarted): ` +
        `${completed.size} executed once each, ${N - completed.size} rejected, ${retried} upstream retries ` +
        `answered from the idempotency store, ${report.events} ledger events verified, ${elapsed} ms`,
    );
  }, 180_000);
});
