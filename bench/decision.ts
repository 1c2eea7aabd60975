// Decision time with velocity attributes, with 10,000 and with 1,000,000 actions in the store.
// Usage: npm run bench:decision [-- --sizes 10000,1000000 --decisions 3000]
//
// Both stores hold the same last 7 days of traffic (so every velocity window holds the same rows); the bigger
// one has a longer history before that, as a ledger grows over months. A decision that scanned the ledger would
// be ~100x slower on the second; one that reads the covering indexes of migration 0003_policy is not.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { Engine, type Submission } from '../src/engine/engine.ts';
import { policyResolvers } from '../src/engine/resolvers/index.ts';
import { parsePolicy } from '../src/policy/index.ts';
import { openSqliteStore } from '../src/store/sqlite/open.ts';
import { classify } from '../src/stripe/classify.ts';
import { rng } from '../test/helpers/random.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,1000000' },
    decisions: { type: 'string', default: '3000' },
  },
});
const SIZES = values.sizes.split(',').map(Number);
const DECISIONS = Number(values.decisions);
const ROOT = join(import.meta.dirname, '..');

const NOW = Date.parse('2024-06-04T15:00:00Z');
const DAY = 86_400_000;
const RECENT = 8_000; // actions in the last 7 days, the same in every store
const AGENTS = 50;
const CUSTOMERS = 20_000;
const KINDS = [
  'refund.create',
  'refund.create',
  'refund.create',
  'payout.create',
  'transfer.create',
  'subscription.cancel',
];
const STATUSES = ['completed', 'completed', 'completed', 'awaiting_approval', 'rejected', 'blocked'];

// The shipped example policy plus rules over longer windows, so every scope is exercised.
const POLICY = parsePolicy(
  `${readFileSync(join(ROOT, 'src/policy/examples/money.yaml'), 'utf8')}
  - "Review if :account_refunds_usd_7d: > 1000000"
  - "Review if :agent_writes_count_24h: > 500"
  - "Review if :customer_refunds_usd_7d: > 3000"
`,
  'bench.yaml',
);

function seed(file: string, total: number): void {
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert =
    db.prepare(`INSERT INTO actions (id, status, kind, read, shadow, method, path, params, amount, currency,
    amount_usd, agent_id, customer, request_hash, accepts_metadata, decision, policy_version, approvals_required,
    attempts, created_at, updated_at) VALUES (?, ?, ?, 0, 0, 'POST', '/v1/refunds', '{}', ?, 'usd', ?, ?, ?, 'h', 1,
    '{"outcome":"allow"}', 'pol_bench', 1, 1, ?, ?)`);
  const rand = rng(7);
  const historyDays = 7 + Math.max(1, Math.ceil(((total - RECENT) / RECENT) * 7));
  const run = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      // The last RECENT rows fall in the last 7 days; the rest spread evenly over the history before that.
      const recent = i >= total - RECENT;
      const ageMs = recent ? rand() * 7 * DAY : 7 * DAY + rand() * (historyDays - 7) * DAY;
      const at = new Date(NOW - ageMs).toISOString();
      const cents = 1_000 + Math.floor(rand() * 90_000);
      insert.run(
        `act_${i.toString(36).padStart(10, '0')}`,
        STATUSES[Math.floor(rand() * STATUSES.length)],
        KINDS[Math.floor(rand() * KINDS.length)],
        cents,
        cents / 100,
        `agt_${Math.floor(rand() * AGENTS)}`,
        `cus_${Math.floor(rand() * CUSTOMERS)}`,
        at,
        at,
      );
    }
  });
  for (let from = 0; from < total; from += 50_000) run(from, Math.min(total, from + 50_000));
  db.exec('ANALYZE');
  db.close();
}

function submission(i: number): Submission {
  const params = {
    charge: 'ch_bench',
    amount: String(20_000 + (i % 50) * 1000),
    customer: `cus_${i % CUSTOMERS}`,
  };
  const c = classify({ method: 'POST', path: '/v1/refunds', params });
  return {
    agent: { id: `agt_${i % AGENTS}`, name: `agent-${i % AGENTS}` },
    method: 'POST',
    path: '/v1/refunds',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: null,
    classification: { ...c, currency: 'usd' },
  };
}

interface Result {
  size: number;
  seedSeconds: number;
  medianUs: number;
  p95Us: number;
  meanUs: number;
  plan: string;
}

async function measure(size: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-'));
  const file = join(dir, 'airlock.db');
  try {
    (await openSqliteStore(file)).close(); // migrations
    const t0 = performance.now();
    seed(file, size);
    const seedSeconds = (performance.now() - t0) / 1000;
    const store = await openSqliteStore(file);
    const engine = new Engine({
      store,
      policy: POLICY,
      clock: { now: () => new Date(NOW) },
      resolvers: policyResolvers(null),
    });
    const hour = new Date(NOW - 3_600_000).toISOString();
    const week = new Date(NOW - 7 * DAY).toISOString();
    const until = new Date(NOW).toISOString();
    const counted = `status IN ('received','pending','completed','awaiting_approval','approved')`;
    const shapes: Record<string, [string, string]> = {
      agent_kind: [`agent_id = 'agt_1' AND kind IN ('refund.create') AND created_at >= ?`, hour],
      agent_writes: [`agent_id = 'agt_1' AND read = 0 AND created_at >= ?`, hour],
      customer_kind: [`customer = 'cus_1' AND kind IN ('refund.create') AND created_at >= ?`, week],
      account_kind: [`kind IN ('refund.create') AND created_at >= ?`, week],
    };
    // The plans, read on a connection of the benchmark's own to the same file.
    const plans: string[] = [];
    const explain = new BetterSqlite3(file, { readonly: true });
    for (const [name, [where, since]] of Object.entries(shapes)) {
      const rows = explain
        .prepare(`EXPLAIN QUERY PLAN SELECT count(*), sum(amount_usd) FROM actions
          WHERE ${where} AND created_at <= ? AND ${counted}`)
        .all(since, until) as { detail: string }[];
      plans.push(`${name}: ${rows.map((x) => x.detail).join('; ')}`);
    }
    explain.close();
    for (let i = 0; i < 300; i++) await engine.evaluate(submission(i)); // warm-up
    const times: number[] = [];
    let attrs = 0;
    for (let i = 0; i < DECISIONS; i++) {
      const s = performance.now();
      const e = await engine.evaluate(submission(i));
      times.push((performance.now() - s) * 1000);
      attrs += e.stored.risk_score === null ? 0 : 1;
    }
    if (attrs !== DECISIONS) throw new Error('a decision came back without a risk score');
    await store.close();
    times.sort((a, b) => a - b);
    return {
      size,
      seedSeconds,
      medianUs: times[Math.floor(times.length / 2)]!,
      p95Us: times[Math.floor(times.length * 0.95)]!,
      meanUs: times.reduce((s, t) => s + t, 0) / times.length,
      plan: plans.join('\n  '),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const results: Result[] = [];
for (const size of SIZES) {
  process.stderr.write(`seeding ${size.toLocaleString('en-US')} actions…\n`);
  const r = await measure(size);
  results.push(r);
  process.stdout.write(
    `${r.size.toLocaleString('en-US').padStart(10)} actions: median ${r.medianUs.toFixed(0)} µs, p95 ${r.p95Us.toFixed(0)} µs, mean ${r.meanUs.toFixed(0)} µs per decision (${DECISIONS} decisions; seeded in ${r.seedSeconds.toFixed(1)} s)\n`,
  );
}
for (const r of results)
  process.stdout.write(`query plans at ${r.size.toLocaleString('en-US')}:\n  ${r.plan}\n`);
if (results.length >= 2) {
  const first = results[0]!;
  const last = results[results.length - 1]!;
  const ratio = last.medianUs / first.medianUs;
  process.stdout.write(
    `median at ${last.size.toLocaleString('en-US')} is ${(ratio * 100).toFixed(0)}% of the median at ${first.size.toLocaleString('en-US')} (${ratio <= 1.2 ? 'within' : 'NOT within'} 20%)\n`,
  );
  if (ratio > 1.2) process.exitCode = 1;
}
