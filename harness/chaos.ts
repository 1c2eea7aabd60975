// The crash loop: agents and reviewers work against a real `airlock serve` child that is SIGKILLed at random moments
// and restarted, in front of an in-process sandbox. Afterwards the store, the ledger and the sandbox must agree:
// every action settled or legitimately held, the hash chain intact, and each allowed or approved write seen upstream
// exactly once.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import Stripe from 'stripe';
import { createAgentKey, createReviewer } from '../src/auth/credentials.ts';
import { loadConfig } from '../src/config/config.ts';
import { openStore } from '../src/server.ts';
import type { ActionRow } from '../src/store/store.ts';
import { type Sandbox, startSandbox } from '../src/stripe/sandbox/index.ts';
import { BIN, freePort, ROOT, type ServeProcess, spawnServe } from './serve-process.ts';

const run = promisify(execFile);

/**
 * How long one start or restart may take. A restart costs a few seconds of CPU (Node, tsx, the migrations check);
 * on a shared 2-core machine under a 200-agent soak it took over 30 s, spawnServe's default, and ended the run.
 */
const START_TIMEOUT_MS = 180_000;

export interface ChaosOptions {
  /** How long the workload runs while the server is being killed. */
  seconds: number;
  /** How many SIGKILLs to deliver, spread at random over the run. */
  kills: number;
  agents: number;
  reviewers: number;
  store: 'sqlite' | 'postgres';
  /** Admin URL used to create and drop the run's own PostgreSQL database. */
  postgresUrl: string;
  seed?: number;
  /**
   * dispatch.lease_ms. On PostgreSQL a dead instance's claim on an action is taken over only when its lease
   * runs out (other live instances may hold leases), so recovery after each kill waits this long.
   */
  leaseMs?: number;
  /**
   * dispatch.reconcile_ms (default 1,000 here, 60,000 in production). An action whose outcome Stripe could not be
   * asked about during an outage stays pending until the next reconcile, and its agent is told to try again until
   * then; a production-length interval makes every such agent wait a minute, longer than its patience below.
   */
  reconcileMs?: number;
  /**
   * Also inject upstream faults on refunds: 5xx bursts, 429 bursts with Retry-After, connections reset before processing, and answers
   * held past Airlock's upstream timeout after the refund was made (the outcome unknown to Airlock).
   */
  faults?: boolean;
  log?: (line: string) => void;
}

export interface ChaosReport {
  store: 'sqlite' | 'postgres';
  seconds: number;
  /** Seconds from the end of the workload until nothing was left in flight. */
  drainSeconds: number;
  kills: number;
  /** Kills that landed while a write was inside the sandbox, or while a reviewer's decision was in flight. */
  killsDuringUpstreamWrite: number;
  killsDuringReview: number;
  restarts: number;
  /** The longest time from a kill until the restarted server answered, in seconds. */
  longestRestartSeconds: number;
  requests: number;
  actions: number;
  statuses: Record<string, number>;
  /** Actions an agent was told about (an answer naming the action) that the store does not hold. */
  lostActions: number;
  /** Allowed or approved writes that reached Stripe more than once. */
  duplicates: number;
  /** Completed actions whose write is not in the sandbox, or whose recorded answer names another object. */
  missingUpstream: number;
  /** Writes the sandbox received that no action in the ledger accounts for. */
  unledgeredWrites: number;
  /** Actions reported `failed` whose write Stripe nevertheless made. */
  failedButExecuted: number;
  /** Actions in a non-terminal status other than awaiting_approval after the drain. */
  unsettled: number;
  upstreamWrites: number;
  reviewsDecided: number;
  /** Fault episodes injected upstream, by kind. */
  faultEpisodes: Record<string, number>;
  ledgerVerified: boolean;
  ledgerOutput: string;
  problems: string[];
}

const SETTLED = new Set([
  'completed',
  'failed',
  'blocked',
  'rejected',
  'expired',
  'cancelled',
  'awaiting_approval',
]);
const SEED_PREFIX = 'chaos-seed-';

/** A small seeded PRNG, so a failing run can be repeated with --seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `airlock_chaos_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** What an agent learnt from one call: the action it names, or nothing if the server never answered. */
function actionOf(result: unknown, err: unknown): string | null {
  if (result) {
    const headers = (result as { lastResponse?: { headers?: Record<string, string> } }).lastResponse?.headers;
    return headers?.['airlock-action'] ?? null;
  }
  const e = err as { raw?: { airlock_action?: string }; headers?: Record<string, string> };
  return e?.raw?.airlock_action ?? e?.headers?.['airlock-action'] ?? null;
}

/** Whether an error leaves the outcome open. Stripe's own 5xx relayed for a failed action (it names the action) is final. */
function retryable(err: unknown, actionId: string | null): boolean {
  const e = err as { type?: string; statusCode?: number; code?: string };
  if (e.type === 'StripeConnectionError') return true;
  if (e.code === 'action_in_progress' || e.code === 'store_unavailable') return true;
  return actionId === null && (e.statusCode ?? 0) >= 500;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const random = rng(opts.seed ?? Date.now());
  const dir = mkdtempSync(join(tmpdir(), 'airlock-chaos-'));
  const sandbox: Sandbox = await startSandbox();
  const database = opts.store === 'postgres' ? await createDatabase(opts.postgresUrl) : null;
  const port = await freePort();
  const configFile = join(dir, 'airlock.yaml');
  writeFileSync(configFile, `dispatch:\n  lease_ms: ${opts.leaseMs ?? 5000}\n`);
  const env: Record<string, string> = {
    AIRLOCK_CONFIG: configFile,
    PORT: String(port),
    STRIPE_API_BASE: sandbox.url,
    AIRLOCK_DISPATCH_POLL_MS: '100',
    AIRLOCK_DISPATCH_BACKOFF_MS: '20',
    AIRLOCK_DISPATCH_MAX_BACKOFF_MS: '200',
    AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000',
    AIRLOCK_UPSTREAM_TIMEOUT_MS: '400',
    AIRLOCK_DISPATCH_RECONCILE_MS: String(opts.reconcileMs ?? 1000),
    ...(database ? { DATABASE_URL: database.url } : { AIRLOCK_DATA: join(dir, 'airlock.db') }),
  };
  const problems: string[] = [];
  let server: ServeProcess | null = null;
  // Time the server spent dead or starting: an agent's patience does not run while there is no server to answer.
  let downMs = 0;
  let longestRestartMs = 0;
  try {
    // Credentials are made before the first start, straight in the store, as `airlock keys create` does.
    const setup = await openStore(loadConfig({ ...env, AIRLOCK_LOG_LEVEL: 'silent' }));
    const agentKeys: string[] = [];
    const reviewerTokens: string[] = [];
    try {
      for (let i = 0; i < opts.agents; i++)
        agentKeys.push((await createAgentKey(setup, `chaos-agent-${i}`)).key);
      for (let i = 0; i < opts.reviewers; i++)
        reviewerTokens.push((await createReviewer(setup, `reviewer-${i}@example.com`)).token);
    } finally {
      await setup.close();
    }

    // A refund takes a moment upstream, which widens the window in which a kill lands inside dispatch.
    const calm = { delayMs: 25, pathPrefix: '/v1/refunds' };
    sandbox.setFaults(calm);
    server = await spawnServe({ env, port, outputLimit: 200_000, timeoutMs: START_TIMEOUT_MS });
    const base = `http://127.0.0.1:${port}`;
    const direct = new Stripe('sk_test_direct', { host: '127.0.0.1', port: sandbox.port, protocol: 'http' });

    let stopping = false;
    let requests = 0;
    let reviewsDecided = 0;
    let reviewsInFlight = 0;
    let upstreamInFlight = 0;
    // The sandbox logs a request on arrival and then holds refunds for delayMs: the dispatch window.
    sandbox.onRequest((r) => {
      if (r.method === 'GET' || r.idempotencyKey?.startsWith(SEED_PREFIX)) return;
      upstreamInFlight++;
      setTimeout(() => upstreamInFlight--, 25);
    });
    // Idempotency key → the action an answer named; each key is retried until the server answers definitively.
    const acknowledged = new Map<string, string>();

    async function agentLoop(key: string, n: number): Promise<void> {
      const client = new Stripe(key, {
        host: '127.0.0.1',
        port,
        protocol: 'http',
        maxNetworkRetries: 0,
        timeout: 20_000,
      });
      for (let i = 0; !stopping; i++) {
        const idem = `chaos-${n}-${i}-${randomBytes(4).toString('hex')}`;
        const roll = random();
        let call: () => Promise<unknown>;
        if (roll < 0.8) {
          const amount =
            roll < 0.55 ? 1000 + Math.floor(random() * 40_000) : 60_000 + Math.floor(random() * 50_000);
          const ch = await direct.charges.create(
            { amount, currency: 'usd', source: 'tok_visa' },
            { idempotencyKey: `${SEED_PREFIX}${idem}` },
          );
          call = () => client.refunds.create({ charge: ch.id, amount }, { idempotencyKey: idem });
        } else {
          call = () => client.customers.create({ email: `${idem}@example.com` }, { idempotencyKey: idem });
        }
        // Retry the same request with the same key until the server gives an answer that is not "try again", for
        // as long as an action can legitimately stay in flight: a lease, a reconcile interval and a restart, twice.
        const asked = Date.now();
        const downAtAsk = downMs;
        const patience = asked + 2 * (opts.leaseMs ?? 5000) + 2 * (opts.reconcileMs ?? 1000) + 60_000;
        for (let attempt = 0; ; attempt++) {
          requests++;
          let result: unknown = null;
          let error: unknown = null;
          try {
            result = await call();
          } catch (err) {
            error = err;
          }
          const id = actionOf(result, error);
          if (id) acknowledged.set(idem, id);
          if (result || !retryable(error, id)) break;
          if (Date.now() - (downMs - downAtAsk) > patience) {
            problems.push(
              `${idem}: no definitive answer after ${attempt} attempts in ${Math.round((Date.now() - asked) / 1000)} s (the server down for ${Math.round((downMs - downAtAsk) / 1000)} s of them): ${(error as Error).message}`,
            );
            break;
          }
          await sleep(50 + random() * 100);
        }
      }
    }

    async function reviewerLoop(token: string): Promise<void> {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      while (!stopping) {
        try {
          const res = await fetch(`${base}/api/actions?status=awaiting_approval&limit=20`, { headers });
          const list = (await res.json()) as { data?: { id: string }[] };
          for (const a of list.data ?? []) {
            if (stopping) break;
            // Most holds are approved, some rejected, some left for later.
            const r = random();
            if (r > 0.9) continue;
            const verb = r < 0.7 ? 'approve' : 'reject';
            reviewsInFlight++;
            try {
              const d = await fetch(`${base}/api/actions/${a.id}/${verb}`, {
                method: 'POST',
                headers,
                body: '{}',
              });
              if (d.status === 200) reviewsDecided++;
              await d.arrayBuffer();
            } finally {
              reviewsInFlight--;
            }
          }
        } catch {
          // The server is down; try again shortly.
        }
        await sleep(50 + random() * 150);
      }
    }

    const faultEpisodes: Record<string, number> = {};
    async function faultLoop(): Promise<void> {
      while (!stopping) {
        await sleep(300 + random() * 700);
        if (stopping) break;
        const r = random();
        const [name, fault] =
          r < 0.25
            ? [
                '5xx burst',
                { failNext: 1 + Math.floor(random() * 4), failStatus: random() < 0.5 ? 500 : 503 },
              ]
            : r < 0.4
              ? [
                  '429 burst with Retry-After',
                  { failNext: 1 + Math.floor(random() * 3), failStatus: 429, retryAfter: 1 },
                ]
              : r < 0.65
                ? ['reset before processing', { dropNext: 1 + Math.floor(random() * 3) }]
                : r < 0.8
                  ? ['answer after the timeout', { holdResponseMs: 600 }]
                  : r < 0.9
                    ? ['down past the retry budget', { down: true }]
                    : ['calm', {}];
        faultEpisodes[name] = (faultEpisodes[name] ?? 0) + 1;
        sandbox.setFaults({ ...calm, ...fault });
        // An outage outlasts the dispatcher's retries (about 0.5 s here), so some actions end honestly `failed`.
        await sleep(name === 'down past the retry budget' ? 1500 : 200 + random() * 400);
        sandbox.setFaults(calm);
      }
    }

    const workers = [
      ...(opts.faults ? [faultLoop()] : []),
      ...agentKeys.map((k, i) => agentLoop(k, i)),
      ...reviewerTokens.map((t) => reviewerLoop(t)),
    ];

    let kills = 0;
    let killsDuringUpstreamWrite = 0;
    let killsDuringReview = 0;
    let restarts = 0;
    const started = Date.now();
    const gap = (opts.seconds * 1000) / (opts.kills + 1);
    while (kills < opts.kills) {
      await sleep(gap * (0.4 + random() * 1.2));
      if (upstreamInFlight > 0) killsDuringUpstreamWrite++;
      if (reviewsInFlight > 0) killsDuringReview++;
      const killed = Date.now();
      await server.stop('SIGKILL');
      kills++;
      log(`kill ${kills}/${opts.kills} at ${((Date.now() - started) / 1000).toFixed(1)}s`);
      server = await spawnServe({ env, port, outputLimit: 200_000, timeoutMs: START_TIMEOUT_MS });
      restarts++;
      const down = Date.now() - killed;
      downMs += down;
      longestRestartMs = Math.max(longestRestartMs, down);
    }
    const left = opts.seconds * 1000 - (Date.now() - started);
    if (left > 0) await sleep(left);
    stopping = true;
    await Promise.all(workers);

    // Let the restarted dispatcher finish whatever the kills left in flight.
    const reviewer = reviewerTokens[0]!;
    const drainStarted = Date.now();
    const deadline = drainStarted + 120_000;
    for (;;) {
      let busy = 0;
      for (const status of ['received', 'approved', 'pending']) {
        const res = await fetch(`${base}/api/actions?status=${status}&limit=1`, {
          headers: { authorization: `Bearer ${reviewer}` },
        });
        busy += ((await res.json()) as { data: unknown[] }).data.length;
      }
      if (busy === 0 || Date.now() > deadline) break;
      await sleep(200);
    }
    const drainSeconds = (Date.now() - drainStarted) / 1000;
    await server.stop('SIGTERM');
    server = null;

    // --- the checks ---------------------------------------------------------------------------------------------
    const store = await openStore(loadConfig({ ...env, AIRLOCK_LOG_LEVEL: 'silent' }), {
      migrate: false,
    });
    const actions: ActionRow[] = [];
    try {
      let after: string | undefined;
      for (;;) {
        const page = await store.listActions({ limit: 500, startingAfter: after });
        actions.push(...page.rows);
        if (!page.hasMore) break;
        after = page.rows[page.rows.length - 1]!.id;
      }
    } finally {
      await store.close();
    }
    const byId = new Map(actions.map((a) => [a.id, a]));
    const statuses: Record<string, number> = {};
    for (const a of actions) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    const unsettled = actions.filter((a) => !SETTLED.has(a.status));
    for (const a of unsettled) problems.push(`${a.id} left ${a.status}`);

    let lostActions = 0;
    for (const [idem, id] of acknowledged) {
      if (!byId.has(id)) {
        lostActions++;
        problems.push(`${idem}: answered with ${id}, which the store does not hold`);
      }
    }

    // Everything the sandbox holds that Airlock wrote carries the action id in its metadata.
    const upstream = [...sandbox.list('refund'), ...sandbox.list('customer')];
    const objectsByAction = new Map<string, Record<string, unknown>[]>();
    let untagged = 0;
    for (const o of upstream) {
      const tag = (o['metadata'] as Record<string, string> | undefined)?.['airlock_action'];
      if (!tag) {
        untagged++;
        continue;
      }
      objectsByAction.set(tag, [...(objectsByAction.get(tag) ?? []), o]);
    }
    let duplicates = 0;
    let missingUpstream = 0;
    let unledgeredWrites = untagged;
    let failedButExecuted = 0;
    if (untagged) problems.push(`${untagged} upstream object(s) carry no airlock_action`);
    for (const [id, objects] of objectsByAction) {
      const a = byId.get(id);
      // A failed action must not have executed: an unknown outcome is reconciled before failure is declared.
      if (a?.status === 'failed') {
        failedButExecuted++;
        problems.push(`${id} is failed, but upstream holds ${objects.length} object(s) for it`);
      } else if (a?.status !== 'completed') {
        unledgeredWrites += objects.length;
        problems.push(
          `upstream holds ${objects.length} object(s) for ${id}, which is ${a?.status ?? 'unknown'}`,
        );
      }
      if (objects.length > 1) {
        duplicates += objects.length - 1;
        problems.push(`${id} executed ${objects.length} times upstream`);
      }
    }
    for (const a of actions) {
      if (a.status !== 'completed') continue;
      const objects = objectsByAction.get(a.id) ?? [];
      const answered = a.response_body ? (JSON.parse(a.response_body) as { id?: string }).id : undefined;
      if (objects.length === 0 || objects[0]!['id'] !== answered) {
        missingUpstream++;
        problems.push(`${a.id} is completed but upstream holds ${objects.length} object(s) for it`);
      }
    }
    // Every write request is either our seeding or an action's own idempotency key.
    for (const r of sandbox.requests()) {
      if (r.method === 'GET') continue;
      const key = r.idempotencyKey ?? '';
      if (key.startsWith(SEED_PREFIX)) continue;
      const id = key.startsWith('airlock-') ? key.slice('airlock-'.length) : null;
      const a = id ? byId.get(id) : undefined;
      if (!a || (a.status !== 'completed' && a.status !== 'failed')) {
        unledgeredWrites++;
        problems.push(`sandbox saw ${r.method} ${r.path} with key '${key}' that no executed action holds`);
      }
    }

    const verify = await run(process.execPath, [BIN, 'audit', 'verify'], {
      cwd: ROOT,
      env: { ...process.env, ...env, AIRLOCK_LOG_LEVEL: 'silent' },
    }).then(
      (r) => ({ ok: true, out: r.stdout.trim() }),
      (e: { stdout?: string; stderr?: string }) => ({
        ok: false,
        out: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim(),
      }),
    );
    if (!verify.ok) problems.push(`audit verify failed: ${verify.out}`);

    return {
      store: opts.store,
      seconds: Math.round((Date.now() - started) / 1000),
      drainSeconds,
      kills,
      killsDuringUpstreamWrite,
      killsDuringReview,
      restarts,
      longestRestartSeconds: longestRestartMs / 1000,
      requests,
      actions: actions.length,
      statuses,
      lostActions,
      duplicates,
      missingUpstream,
      unledgeredWrites,
      failedButExecuted,
      unsettled: unsettled.length,
      upstreamWrites: upstream.length,
      reviewsDecided,
      faultEpisodes,
      ledgerVerified: verify.ok,
      ledgerOutput: verify.out,
      problems,
    };
  } finally {
    if (server) await server.stop('SIGKILL');
    await sandbox.close();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
