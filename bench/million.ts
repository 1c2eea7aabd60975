// A ledger of 1,000,000 actions, built fast and cached, and the queries a large store must keep fast.
// Usage (standalone): node --import tsx bench/million.ts [--actions 1000000]
//
// The store is made by the real migrations and then filled with direct bulk inserts: 90 days of traffic from 200
// agents (a few busy, most quiet), 50,000 customers, Stripe kinds and amounts in realistic proportions, and every
// lifecycle an action can have, each with the ledger events the engine writes for it, hash-chained with the real
// ledgerHash so `airlock audit verify` passes. The file is cached in bench/.cache/ under a key of the schema's
// migrations and this generator's version, so only the first run pays for it; after a new migration the cached
// store is migrated forward, as a deployment's would be.

import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { Engine } from '../src/engine/engine.ts';
import { verifyLedger } from '../src/engine/ledger.ts';
import { COUNTED_STATUSES } from '../src/engine/status.ts';
import { sha256Hex } from '../src/ids.ts';
import { loadPolicyFile } from '../src/policy/index.ts';
import { loadView, queue } from '../src/review/queries.ts';
import { ReviewStore } from '../src/review/store.ts';
import { GENESIS_HASH } from '../src/store/migrations.ts';
import { openSqliteStore } from '../src/store/sqlite/open.ts';
import { ledgerHash } from '../src/store/store.ts';
import { velocityTotal } from '../src/store/velocity.ts';
import { rng } from '../test/helpers/random.ts';

const ROOT = join(import.meta.dirname, '..');
export const CACHE_DIR = join(ROOT, 'bench', '.cache');
// Bump when the generated data changes shape, so a stale cache is rebuilt.
const GENERATOR_VERSION = 1;
const DAY = 86_400_000;
const HISTORY_DAYS = 90;
const AGENTS = 200;
const CUSTOMERS = 50_000;
const REVIEWERS = 6;
const POLICY_VERSION = 'pol_bench_history';

interface KindSpec {
  kind: string;
  path: string;
  weight: number;
  mode?: 'decide';
}
const KINDS: KindSpec[] = [
  { kind: 'refund.create', path: '/v1/refunds', weight: 52 },
  { kind: 'charge.capture', path: '/v1/charges/ch_x/capture', weight: 8 },
  { kind: 'subscription.update', path: '/v1/subscriptions/sub_x', weight: 9 },
  { kind: 'subscription.cancel', path: '/v1/subscriptions/sub_x', weight: 6 },
  { kind: 'payout.create', path: '/v1/payouts', weight: 4 },
  { kind: 'transfer.create', path: '/v1/transfers', weight: 5 },
  { kind: 'invoice.void', path: '/v1/invoices/in_x/void', weight: 3 },
  { kind: 'payment_intent.create', path: '/v1/payment_intents', weight: 8 },
  { kind: 'refund.create', path: '/decisions/refund.create', weight: 5, mode: 'decide' },
];

export interface MillionStore {
  file: string;
  actions: number;
  events: number;
  /** The newest action's time: "now" for the store's own windows. */
  now: string;
  /** The busiest agent, whose windows hold the most rows. */
  busiestAgent: string;
  builtSeconds: number | null;
  bytes: number;
}

/** The schema's identity: the names of the migrations a fresh store applies. */
async function schemaKey(dir: string): Promise<string> {
  const probe = join(dir, `schema-probe-${process.pid}.db`);
  const store = await openSqliteStore(probe, { migrate: false });
  const names = await store.pendingMigrations();
  await store.close();
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${probe}${suffix}`, { force: true });
  return sha256Hex(`${GENERATOR_VERSION}\n${names.join('\n')}`).slice(0, 12);
}

interface PendingEvent {
  atMs: number;
  actionId: string;
  type: string;
  from: string | null;
  to: string | null;
  actor: string;
  data: string;
}

/** A min-heap of events due later (a reviewer's vote hours after the hold), so the ledger stays in time order. */
class Later {
  readonly #h: PendingEvent[] = [];
  get size(): number {
    return this.#h.length;
  }
  peek(): PendingEvent | undefined {
    return this.#h[0];
  }
  push(e: PendingEvent): void {
    const h = this.#h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.atMs <= h[i]!.atMs) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop(): PendingEvent | undefined {
    const h = this.#h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.atMs < h[m]!.atMs) m = l;
        if (r < h.length && h[r]!.atMs < h[m]!.atMs) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

function fill(file: string, total: number, nowMs: number): { events: number; busiestAgent: string } {
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -262144');
  const rand = rng(20240604);
  const startMs = nowMs - HISTORY_DAYS * DAY;
  const iso = (ms: number) => new Date(ms).toISOString();

  // Agents follow a Zipf law: the busiest does about a sixth of all traffic, most do a little.
  const agentIds = Array.from({ length: AGENTS }, (_, k) => `agt_bench${String(k).padStart(4, '0')}`);
  const weights = agentIds.map((_, k) => 1 / (k + 1));
  const cumulative: number[] = [];
  weights.reduce((s, w, k) => {
    cumulative[k] = s + w;
    return s + w;
  }, 0);
  const weightSum = cumulative[cumulative.length - 1]!;
  const pickAgent = () => {
    const x = rand() * weightSum;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const kindTotal = KINDS.reduce((s, k) => s + k.weight, 0);
  const pickKind = () => {
    let x = rand() * kindTotal;
    for (const k of KINDS) {
      x -= k.weight;
      if (x <= 0) return k;
    }
    return KINDS[0]!;
  };

  const insertAgent = db.prepare('INSERT INTO agents (id, name, created_at) VALUES (?, ?, ?)');
  const insertReviewer = db.prepare(
    `INSERT INTO reviewers (id, email, password_hash, groups, created_at) VALUES (?, ?, NULL, '["finance"]', ?)`,
  );
  const insertAction =
    db.prepare(`INSERT INTO actions (id, status, kind, read, shadow, method, path, url, params,
    amount, currency, amount_usd, agent_id, stripe_account, stripe_version, customer, idempotency_key,
    idempotency_scope, request_hash, accepts_metadata, decision, policy_version, approvals_required, expires_at,
    response_code, response_body, last_error, attempts, next_attempt_at, lease_owner, lease_until, created_at,
    decided_at, completed_at, updated_at, requested_by, original_params, mode, callback_url, http_headers,
    http_body, details)
    VALUES (?, ?, ?, 0, 0, ?, ?, NULL, ?, ?, 'usd', ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL,
    NULL, NULL, ?, ?, ?, ?, NULL, NULL, ?, NULL, NULL, NULL, ?)`);
  const insertApproval =
    db.prepare(`INSERT INTO approvals (id, action_id, reviewer_id, reviewer_email, decision,
    note, changes, bound_hash, at, agent_id) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)`);
  const insertEvent =
    db.prepare(`INSERT INTO ledger (seq, action_id, type, from_status, to_status, actor, data,
    at, prev_hash, hash, pos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  db.transaction(() => {
    for (const [k, id] of agentIds.entries()) insertAgent.run(id, `agent-${k}`, iso(startMs - DAY));
    for (let r = 0; r < REVIEWERS; r++)
      insertReviewer.run(`rev_bench${r}`, `reviewer${r}@example.com`, iso(startMs - DAY));
  })();

  let seq = 0;
  let prev = GENESIS_HASH;
  const later = new Later();
  const append = (e: PendingEvent) => {
    seq++;
    const row = {
      seq,
      action_id: e.actionId,
      type: e.type,
      from_status: e.from,
      to_status: e.to,
      actor: e.actor,
      data: e.data,
      at: iso(e.atMs),
    };
    const hash = ledgerHash(prev, row);
    insertEvent.run(seq, e.actionId, e.type, e.from, e.to, e.actor, e.data, row.at, prev, hash, seq);
    prev = hash;
  };
  const agentCounts = new Array<number>(AGENTS).fill(0);

  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const createdMs = Math.floor(startMs + ((i + rand()) / total) * HISTORY_DAYS * DAY);
      while (later.size && later.peek()!.atMs <= createdMs) append(later.pop()!);
      const id = `act_b${i.toString(36).padStart(8, '0')}${Math.floor(rand() * 1e9).toString(36)}`;
      const spec = pickKind();
      const agentIndex = pickAgent();
      agentCounts[agentIndex]!++;
      const agentId = agentIds[agentIndex]!;
      const customer = `cus_b${Math.floor(rand() * CUSTOMERS)}`;
      // Log-normal amounts: most refunds are tens of dollars, a few are thousands.
      const cents = Math.max(
        50,
        Math.round(Math.exp(8 + 1.2 * Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(6.283 * rand()))),
      );
      const usd = cents / 100;
      const decide = spec.mode === 'decide';
      const params = decide
        ? { intent: { kind: spec.kind, amount: cents, currency: 'usd' }, context: { customer } }
        : { amount: String(cents), customer, metadata: { order: `ord_${i}` } };
      const paramsJson = JSON.stringify(params);
      const roll = rand();
      const outcome = roll < 0.82 ? 'allow' : roll < 0.97 ? 'review' : 'block';
      const reviewDelay = (5 + rand() * 240) * 60_000;
      const ageMs = nowMs - createdMs;
      const expiresMs = createdMs + 72 * 3_600_000;
      let status: string;
      let vote: 'approve' | 'reject' | null = null;
      if (outcome === 'block') status = 'blocked';
      else if (outcome === 'review') {
        const r = rand();
        if (ageMs < reviewDelay + 3_600_000 && ageMs < 72 * 3_600_000 && r < 0.6)
          status = 'awaiting_approval';
        else if (r < 0.7) {
          status = decide ? 'approved' : 'completed';
          vote = 'approve';
        } else if (r < 0.9) {
          status = 'rejected';
          vote = 'reject';
        } else if (r < 0.98) status = 'expired';
        else status = 'cancelled';
      } else status = decide ? 'approved' : rand() < 0.97 ? 'completed' : 'failed';
      // A vote or expiry that would fall after "now" has not happened yet: the action is still held.
      if ((vote && createdMs + reviewDelay > nowMs) || (status === 'expired' && expiresMs > nowMs)) {
        status = 'awaiting_approval';
        vote = null;
      }
      const risk = Math.floor(rand() * 60);
      const decision = JSON.stringify({
        outcome,
        rules:
          outcome === 'allow' ? ['small_refund'] : outcome === 'review' ? ['large_refund'] : ['night_payout'],
        policy_version: POLICY_VERSION,
        risk_score: risk,
        risk_factors: risk > 20 ? [{ name: 'velocity', points: risk - 10 }] : [],
        reason:
          outcome === 'allow'
            ? 'Allowed by small_refund'
            : outcome === 'review'
              ? 'Held for review by large_refund'
              : 'Blocked by night_payout',
        shadow_outcome: null,
        notify: [],
        reviewers: [],
      });
      const decidedMs = createdMs + 2;
      const endMs = vote ? createdMs + reviewDelay : createdMs + 40;
      const terminal = ['completed', 'failed', 'approved', 'rejected', 'expired', 'cancelled', 'blocked'];
      const completedMs = terminal.includes(status)
        ? status === 'expired'
          ? expiresMs
          : status === 'blocked'
            ? decidedMs
            : endMs + 30
        : null;
      const executed = status === 'completed' || status === 'failed';
      const requestHash = sha256Hex(`${id}${paramsJson}`);
      insertAction.run(
        id,
        status,
        spec.kind,
        decide ? 'DECIDE' : 'POST',
        spec.path,
        paramsJson,
        cents,
        usd,
        agentId,
        customer,
        `idem_${i}`,
        `${agentId}||idem_${i}`,
        requestHash,
        decide ? 0 : 1,
        decision,
        POLICY_VERSION,
        outcome === 'review' ? 1 : 1,
        outcome === 'review' ? iso(expiresMs) : null,
        status === 'completed' ? 200 : status === 'failed' ? 402 : null,
        status === 'completed'
          ? `{"id":"re_b${i}","object":"refund","amount":${cents},"status":"succeeded"}`
          : status === 'failed'
            ? '{"error":{"type":"card_error","code":"charge_already_refunded"}}'
            : null,
        status === 'failed' ? 'Stripe answered 402' : null,
        executed ? 1 : 0,
        iso(createdMs),
        iso(decidedMs),
        completedMs === null ? null : iso(completedMs),
        iso(completedMs ?? decidedMs),
        decide ? 'decide' : 'stripe',
        JSON.stringify({ summary: decide ? 'Refund a duplicate charge' : null }),
      );
      const actor = `agent:agent-${agentIndex}`;
      append({
        atMs: createdMs,
        actionId: id,
        type: 'action.received',
        from: null,
        to: 'received',
        actor,
        data: JSON.stringify({
          kind: spec.kind,
          method: decide ? 'DECIDE' : 'POST',
          path: spec.path,
          params,
          amount: cents,
          currency: 'usd',
          stripe_account: null,
          idempotency_key: `idem_${i}`,
          request_hash: requestHash,
        }),
      });
      const decidedTo =
        outcome === 'allow'
          ? decide
            ? 'approved'
            : 'pending'
          : outcome === 'review'
            ? 'awaiting_approval'
            : 'blocked';
      append({
        atMs: decidedMs,
        actionId: id,
        type: 'action.decided',
        from: 'received',
        to: decidedTo,
        actor: 'policy',
        data: decision,
      });
      const dispatch = (atMs: number) => {
        later.push({
          atMs,
          actionId: id,
          type: 'dispatch.attempt',
          from: 'pending',
          to: 'pending',
          actor: 'dispatcher:bench',
          data: JSON.stringify({ attempt: 1, idempotency_key: `airlock-${id}` }),
        });
        later.push({
          atMs: atMs + 30,
          actionId: id,
          type: status === 'failed' ? 'action.failed' : 'action.completed',
          from: 'pending',
          to: status,
          actor: 'dispatcher:bench',
          data: JSON.stringify(
            status === 'failed' ? { response_code: 402 } : { response_code: 200, object_id: `re_b${i}` },
          ),
        });
      };
      if (vote) {
        const reviewer = Math.floor(rand() * REVIEWERS);
        const at = createdMs + reviewDelay;
        insertApproval.run(
          `apv_b${i.toString(36)}`,
          id,
          `rev_bench${reviewer}`,
          `reviewer${reviewer}@example.com`,
          vote,
          vote === 'reject' ? 'Not a duplicate' : null,
          sha256Hex(`${requestHash}\n${POLICY_VERSION}`),
          iso(at),
          agentId,
        );
        const to = vote === 'approve' ? (decide ? 'approved' : 'pending') : 'rejected';
        later.push({
          atMs: at,
          actionId: id,
          type: vote === 'approve' ? 'action.approved' : 'action.rejected',
          from: 'awaiting_approval',
          to,
          actor: `reviewer:reviewer${reviewer}@example.com`,
          data: JSON.stringify({ note: vote === 'reject' ? 'Not a duplicate' : null, approvals: 1 }),
        });
        if (vote === 'approve' && !decide) dispatch(at + 5);
      } else if (executed) dispatch(decidedMs + 3);
      if (status === 'expired' || status === 'cancelled') {
        later.push({
          atMs: completedMs!,
          actionId: id,
          type: `action.${status}`,
          from: 'awaiting_approval',
          to: status,
          actor: status === 'expired' ? 'system' : actor,
          data: '{}',
        });
      }
    }
  });
  for (let from = 0; from < total; from += 20_000) {
    batch(from, Math.min(total, from + 20_000));
    if (from % 200_000 === 0) process.stderr.write(`  ${from.toLocaleString('en-US')} actions…\n`);
  }
  // What is still due (votes and expiries after "now" are cut: they have not happened yet).
  db.transaction(() => {
    while (later.size && later.peek()!.atMs <= nowMs) append(later.pop()!);
  })();
  db.prepare('UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1').run(seq, prev);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const busiest = agentCounts.indexOf(Math.max(...agentCounts));
  return { events: seq, busiestAgent: agentIds[busiest]! };
}

/** The cached 1M store, built on first use. Pass a copy to anything that writes to it. */
export async function millionStore(total = 1_000_000): Promise<MillionStore> {
  mkdirSync(CACHE_DIR, { recursive: true });
  const key = await schemaKey(CACHE_DIR);
  const file = join(CACHE_DIR, `actions-${total}-${key}.db`);
  const metaFile = `${file}.json`;
  if (existsSync(file) && existsSync(metaFile)) {
    return { ...(JSON.parse(readFileSync(metaFile, 'utf8')) as MillionStore), file, builtSeconds: null };
  }
  const upgraded = await upgradeCached(total, file);
  if (upgraded) return upgraded;
  process.stderr.write(`building a store of ${total.toLocaleString('en-US')} actions (cached afterwards)…\n`);
  const t0 = performance.now();
  const building = `${file}.building`;
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${building}${suffix}`, { force: true });
  await (await openSqliteStore(building)).close(); // the real migrations
  // An hour-aligned "now" a minute ago, so every window ends inside the history.
  const nowMs = Math.floor((Date.now() - 60_000) / 3_600_000) * 3_600_000;
  const { events, busiestAgent } = fill(building, total, nowMs);
  for (const suffix of ['-wal', '-shm']) rmSync(`${building}${suffix}`, { force: true });
  renameSync(building, file);
  const meta: MillionStore = {
    file,
    actions: total,
    events,
    now: new Date(nowMs).toISOString(),
    busiestAgent,
    builtSeconds: (performance.now() - t0) / 1000,
    bytes: statSync(file).size,
  };
  const { file: _file, ...saved } = meta;
  writeFileSync(metaFile, JSON.stringify({ ...saved, generatorVersion: GENERATOR_VERSION }, null, 2));
  return meta;
}

/**
 * A store cached under an older schema is brought forward by the pending migrations, as an upgrade of a real
 * deployment would be, instead of being built again: a new migration costs seconds, not a quarter of an hour.
 */
async function upgradeCached(total: number, file: string): Promise<MillionStore | null> {
  const prefix = `actions-${total}-`;
  for (const name of readdirSync(CACHE_DIR)) {
    if (!name.startsWith(prefix) || !name.endsWith('.db')) continue;
    const old = join(CACHE_DIR, name);
    if (old === file || !existsSync(`${old}.json`)) continue;
    const meta = JSON.parse(readFileSync(`${old}.json`, 'utf8')) as MillionStore & {
      generatorVersion?: number;
    };
    if ((meta.generatorVersion ?? 1) !== GENERATOR_VERSION) continue;
    process.stderr.write(
      `migrating the cached store of ${total.toLocaleString('en-US')} actions to the current schema…\n`,
    );
    const building = `${file}.building`;
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${building}${suffix}`, { force: true });
    renameSync(old, building);
    rmSync(`${old}.json`, { force: true });
    await (await openSqliteStore(building)).close();
    for (const suffix of ['-wal', '-shm']) rmSync(`${building}${suffix}`, { force: true });
    renameSync(building, file);
    const { file: _file, builtSeconds: _built, ...rest } = meta;
    const saved = { ...rest, bytes: statSync(file).size, generatorVersion: GENERATOR_VERSION };
    writeFileSync(`${file}.json`, JSON.stringify(saved, null, 2));
    return { ...saved, file, builtSeconds: null };
  }
  return null;
}

/** A writable copy of the store for a server to run on. */
export function copyStore(m: MillionStore, to: string): string {
  copyFileSync(m.file, to);
  return to;
}

export interface QueryTiming {
  name: string;
  /** What was timed, in the words of the code that runs it. */
  what: string;
  runs: number;
  p50: number;
  p99: number;
  /** Rows the query returned (or summed over), to show it did real work. */
  rows: number;
}

export interface MillionResult {
  store: Omit<MillionStore, 'file'>;
  queries: QueryTiming[];
  verify: { events: number; seconds: number; eventsPerSecond: number; ok: boolean };
}

async function timeIt(
  name: string,
  what: string,
  runs: number,
  fn: (i: number) => Promise<number>,
): Promise<QueryTiming> {
  let rows = 0;
  for (let i = 0; i < 20; i++) rows = await fn(i);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    rows = await fn(i);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return {
    name,
    what,
    runs,
    p50: times[Math.floor(runs / 2)]!,
    p99: times[Math.min(runs - 1, Math.floor(runs * 0.99))]!,
    rows,
  };
}

/** Times the queries on a store of 1M actions: the review queue, an action, a velocity window, the audit. */
export async function measureMillion(
  m: MillionStore,
  opts: { verify?: boolean; runs?: number } = {},
): Promise<MillionResult> {
  const runs = opts.runs ?? 300;
  const store = await openSqliteStore(m.file, { migrate: false });
  try {
    const engine = new Engine({ store, policy: loadPolicyFile() });
    const reviews = new ReviewStore(store);
    // Ids to read back, picked on a connection of the benchmark's own.
    const picker = new BetterSqlite3(m.file, { readonly: true });
    const ids = (
      picker.prepare('select id from actions where id > ? limit ?').all(
        `act_b${Math.floor(Math.random() * m.actions * 0.9)
          .toString(36)
          .padStart(8, '0')}`,
        runs,
      ) as { id: string }[]
    ).map((r) => r.id);
    picker.close();
    const now = m.now;
    const since24h = new Date(Date.parse(now) - DAY).toISOString();
    const queries: QueryTiming[] = [];
    queries.push(
      await timeIt(
        'queue_page',
        'dashboard review queue: review/queries.ts queue() (held actions, soonest to expire first, with their views)',
        Math.min(runs, 50),
        async () => (await queue(engine, reviews)).length,
      ),
    );
    queries.push(
      await timeIt(
        'queue_page_api',
        "review API queue page: store.listActions({status: 'awaiting_approval', limit: 20})",
        runs,
        async () => (await store.listActions({ status: 'awaiting_approval', limit: 20 })).rows.length,
      ),
    );
    queries.push(
      await timeIt('action_lookup', 'one action by id: store.getAction(id)', runs, async (i) =>
        (await store.getAction(ids[i % ids.length]!)) ? 1 : 0,
      ),
    );
    queries.push(
      await timeIt(
        'action_receipt',
        'an action receipt: review/queries.ts loadView(id, {ledger: true}) (row, approvals, agent, ledger events)',
        runs,
        async (i) => (await loadView(engine, reviews, ids[i % ids.length]!, { ledger: true })).ledger.length,
      ),
    );
    queries.push(
      await timeIt(
        'velocity_24h',
        "the busiest agent's refunds over 24 h: store/velocity.ts velocityTotal({scope: 'agent', kinds: ['refund.create']})",
        runs,
        async () =>
          (
            await velocityTotal(store, {
              scope: 'agent',
              subject: m.busiestAgent,
              kinds: ['refund.create'],
              statuses: COUNTED_STATUSES,
              since: since24h,
              until: now,
            })
          ).count,
      ),
    );
    let verify = { events: 0, seconds: 0, eventsPerSecond: 0, ok: false };
    if (opts.verify ?? true) {
      const t0 = performance.now();
      const report = await verifyLedger(store);
      const seconds = (performance.now() - t0) / 1000;
      verify = { events: report.events, seconds, eventsPerSecond: report.events / seconds, ok: report.ok };
    }
    const { file: _file, ...meta } = m;
    return { store: meta, queries, verify };
  } finally {
    await store.close();
  }
}

/**
 * measureMillion in a process of its own, as every other figure of the suite is taken: in the suite's process the
 * queries shared a heap holding every latency of the run, and its garbage collection showed in their times.
 */
export async function measureMillionApart(total: number): Promise<MillionResult> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--actions', String(total)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`bench/million.ts exited ${code}`);
  return JSON.parse(out) as MillionResult;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      actions: { type: 'string', default: '1000000' },
      'no-verify': { type: 'boolean', default: false },
    },
  });
  const m = await millionStore(Number(values.actions));
  const r = await measureMillion(m, { verify: !values['no-verify'] });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
