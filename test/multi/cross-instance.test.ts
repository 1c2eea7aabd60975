// Guarantees that only show with several instances on one PostgreSQL: velocity limits under concurrent requests
// through different instances, and an approval on one instance waking the dispatcher of another.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { type RunningAirlock, startAirlock } from '../../src/server.ts';
import { openPostgresStore } from '../../src/store/postgres/open.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { stripeAt, tempDir } from '../helpers/stack.ts';
import { actions, ledger } from '../helpers/store-reads.ts';
import { createPostgresDatabase, type TestDatabase, unavailable } from '../store/databases.ts';

const SAMPLES = Number(process.env['AIRLOCK_WAKEUP_SAMPLES'] ?? 200);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe.skipIf(unavailable('postgres'))('several instances on one PostgreSQL', () => {
  let db: TestDatabase;
  let sandbox: Sandbox;
  let env: Record<string, string>;
  let dir: string;
  let agentKey: string;
  let reviewerToken: string;
  const processes: ServerProcess[] = [];

  beforeAll(async () => {
    db = await createPostgresDatabase();
    sandbox = await startSandbox();
    dir = tempDir();
    // Instance A is built from this env and takes more than the default 100 requests a minute from one key.
    env = { DATABASE_URL: db.url, STRIPE_API_BASE: sandbox.url, AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000' };
    expect((await cli(['migrate'], env)).code).toBe(0);
    agentKey = JSON.parse((await cli(['keys', 'create', '--agent', 'refund-bot', '--json'], env)).stdout).key;
    reviewerToken = JSON.parse(
      (await cli(['reviewers', 'create', '--email', 'lead@example.com', '--json'], env)).stdout,
    ).token;
  }, 60_000);

  afterAll(async () => {
    for (const p of processes) await stopProcess(p);
    await sandbox?.close();
    await db?.drop();
  });

  it('lets no more than six of ten concurrent $300 refunds from one agent through three instances under a $2,000-per-hour rule', async () => {
    // Refunds up to $500 allowed, but one agent's refunds in the last hour (held ones too) held past $2,000.
    const policy = join(dir, 'velocity.yaml');
    writeFileSync(
      policy,
      [
        'default: review',
        'rules:',
        `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
        `  - "Review if :kind: = 'refund.create' and :agent_refunds_usd_1h: + :amount_in_usd: > 2000"`,
        '',
      ].join('\n'),
    );
    const three = await Promise.all([0, 1, 2].map(() => spawnAirlock({ ...env, AIRLOCK_POLICY: policy })));
    processes.push(...three);
    const direct = stripeAt('sk_test_direct', sandbox.port);
    const ch = await direct.charges.create({ amount: 1_000_000, currency: 'usd', source: 'tok_visa' });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        stripeAt(agentKey, three[i % 3]!.port).refunds.create({ charge: ch.id, amount: 300_00 }),
      ),
    );
    const allowed = results.filter((r) => r.status === 'fulfilled');
    const held = results.flatMap((r) =>
      r.status === 'rejected' && r.reason instanceof Stripe.errors.StripePermissionError ? [r.reason] : [],
    );
    // On failure, say what each request got and why each action was decided so.
    const store = await openPostgresStore(db.url, { migrate: false });
    const decisions = await actions(store, (a) => a.kind === 'refund.create').finally(() => store.close());
    const why = [
      ...results.map((r) => (r.status === 'fulfilled' ? 'ok' : `${r.reason?.type}: ${r.reason?.message}`)),
      ...decisions.map((d) => `${d.created_at} ${d.status}: ${JSON.parse(d.decision).reason}`),
    ].join('\n');
    expect(allowed.length, why).toBeLessThanOrEqual(6);
    expect(allowed.length, why).toBe(6);
    expect(held, why).toHaveLength(4);
    for (const e of held) expect(e.code).toBe('approval_required');
    expect(sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(allowed.length);
    for (const p of three) await stopProcess(p);
  }, 60_000);

  it('dispatches on instance B within milliseconds of an approval on instance A, with B polling only once a minute', async () => {
    const policy = join(dir, 'hold-all.yaml');
    writeFileSync(policy, `default: review\nrules:\n  - "Allow if :read:"\n`);
    // A: in this process, its dispatcher stopped, so only B can make the upstream call.
    const a: RunningAirlock = await startAirlock(
      loadConfig({ ...env, PORT: '0', AIRLOCK_POLICY: policy, AIRLOCK_SANDBOX_PORT: '0' }, undefined),
      pino({ level: 'silent' }),
    );
    await a.dispatcher.stop();
    const b = await spawnAirlock({ ...env, AIRLOCK_POLICY: policy, AIRLOCK_DISPATCH_POLL_MS: '60000' });
    processes.push(b);
    try {
      const agent = stripeAt(agentKey, a.port);
      const direct = stripeAt('sk_test_direct', sandbox.port);
      const ch = await direct.charges.create({ amount: 10_000_000, currency: 'usd', source: 'tok_visa' });
      const arrived = new Map<string, number>();
      const stop = sandbox.onRequest((r) => {
        if (r.idempotencyKey?.startsWith('airlock-'))
          arrived.set(r.idempotencyKey.slice(8), performance.now());
      });
      // B's LISTEN connection is up once a first approval reaches it well before its one-minute poll.
      const fromStart: number[] = [];
      const fromCommit: number[] = [];
      for (let i = -3; i < SAMPLES; i++) {
        const err = await agent.refunds.create({ charge: ch.id, amount: 1000 + i }).catch((e: unknown) => e);
        const id = (err as { raw: { airlock_action: string } }).raw.airlock_action;
        const t0 = performance.now();
        const res = await fetch(`${a.url}/api/actions/${id}/approve`, {
          method: 'POST',
          headers: { authorization: `Bearer ${reviewerToken}`, 'content-type': 'application/json' },
          body: '{}',
        });
        const t1 = performance.now();
        expect(res.status).toBe(200);
        const deadline = Date.now() + 10_000;
        while (!arrived.has(id) && Date.now() < deadline) await sleep(1);
        expect(arrived.has(id), `B never dispatched ${id}`).toBe(true);
        if (i < 0) continue; // warm-up
        fromStart.push(arrived.get(id)! - t0);
        fromCommit.push(arrived.get(id)! - t1);
      }
      stop();
      // Every attempt was B's: A's dispatcher never ran.
      const attempts = await ledger(a.store, (e) => e.type === 'dispatch.attempt');
      expect(attempts.length).toBeGreaterThanOrEqual(SAMPLES);
      expect(attempts.some((e) => e.actor === `dispatcher:${a.dispatcher.owner}`)).toBe(false);

      fromStart.sort((x, y) => x - y);
      fromCommit.sort((x, y) => x - y);
      const fmt = (xs: number[]) =>
        `p50 ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms, max ${xs[xs.length - 1]!.toFixed(1)} ms`;
      console.log(
        `[wakeup] approval on A -> upstream call by B over ${SAMPLES} approvals (B polls every 60 s):\n` +
          `  from the approve request: ${fmt(fromStart)}\n  from A's answer (approval committed): ${fmt(fromCommit)}`,
      );
      // Polling is once a minute, so anything near this bound can only be LISTEN/NOTIFY.
      expect(percentile(fromStart, 99)).toBeLessThan(1_000);
    } finally {
      await a.close();
    }
  }, 120_000);
});
