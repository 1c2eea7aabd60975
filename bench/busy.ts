// "A decision costs the same for a busy agent as for a new one": one agent with 100,000 actions in its last hour
// against a fresh agent, in the same run, decisions per second for each and the ratio busy ÷ fresh (target ≥ 0.9).
//
// The store is made by the real migrations, then the busy agent's actions are inserted directly (as
// bench/decision.ts and bench/million.ts fill theirs): completed $1 refunds, spread over the last --spread minutes,
// so they all count towards its hourly velocity windows and the risk score's hour while the run lasts. The
// policy is bench/policy.yaml (velocity windows, the risk score; its hourly refund limit is $10,000,000, so
// 100,000 refunds of $1 stay allowed). Each run is POST /api/decisions for $1 with a new customer and idempotency
// key, from the one agent's key; every run uses an agent of its own that has never sent anything, and the busy
// agent's runs alternate with them at each connection count.
//
// Usage: npm run bench:busy [-- --actions 100000 --seconds 10 --rounds 3 --connections 8,1 --spread 45]
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { request } from 'undici';
import { COUNTED_STATUSES } from '../src/engine/status.ts';
import { openSqliteStore } from '../src/store/sqlite/open.ts';
import type { LoadResult } from './loadgen.ts';
import { median, ms, saveRun, whole } from './report.ts';
import {
  type AirlockOptions,
  cpuSecondsOf,
  createAgentKey,
  outputOf,
  ROOT,
  type Running,
  runLoad,
  startAirlock,
  startInstantUpstream,
} from './servers.ts';

const { values } = parseArgs({
  options: {
    actions: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '8,1' },
    // Minutes before the start the busy agent's actions are spread over: the run must end before the oldest
    // leaves the hour.
    spread: { type: 'string', default: '45' },
  },
});
const ACTIONS = Number(values.actions);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = values.connections.split(',').filter(Boolean).map(Number);
const SPREAD_MS = Number(values.spread) * 60_000;
const HOUR_MS = 3_600_000;

const log = (s: string) => process.stderr.write(`${s}\n`);
const dir = mkdtempSync(join(tmpdir(), 'airlock-busy-'));
const servers: Running[] = [];
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

/** The busy agent's last hour: completed $1 refunds, created evenly over the SPREAD_MS before now. */
function fillHour(file: string, agentId: string, total: number, nowMs: number): void {
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert =
    db.prepare(`INSERT INTO actions (id, status, kind, read, shadow, method, path, params, amount, currency,
    amount_usd, agent_id, customer, request_hash, accepts_metadata, decision, policy_version, approvals_required,
    attempts, created_at, decided_at, completed_at, updated_at, response_code)
    VALUES (?, 'completed', 'refund.create', 0, 0, 'POST', '/v1/refunds', ?, 100, 'usd', 1, ?, ?, ?, 1,
    '{"outcome":"allow","rules":["small_refund"]}', 'pol_bench', 1, 1, ?, ?, ?, ?, 200)`);
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const at = new Date(nowMs - SPREAD_MS + Math.floor(((i + 0.5) / total) * SPREAD_MS)).toISOString();
      insert.run(
        `act_busy${i.toString(36).padStart(8, '0')}`,
        `{"charge":"ch_busy${i}","amount":"100"}`,
        agentId,
        `cus_busy${i % 20_000}`,
        `busy${i}`,
        at,
        at,
        at,
        at,
      );
    }
  });
  for (let from = 0; from < total; from += 20_000) batch(from, Math.min(total, from + 20_000));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

interface Run extends LoadResult {
  /** Airlock's CPU over the run ÷ the requests it answered, in ms. */
  cpuMsPerRequest: number;
}

async function main(): Promise<void> {
  const started = performance.now();
  const loadavgStart = loadavg();
  const data = join(dir, 'airlock.db');
  await (await openSqliteStore(data)).close(); // the real migrations
  const upstream = await startInstantUpstream();
  servers.push(upstream);
  const opts: AirlockOptions = {
    data,
    upstream: upstream.url,
    policy: join(ROOT, 'bench', 'policy.yaml'),
    profileDir: process.env['AIRLOCK_PROFILE_DIR'],
  };
  const busyKey = await createAgentKey(opts, 'busy');
  // One agent per fresh run, so every fresh run's agent has sent nothing before it.
  const freshKeys = new Map<string, string>();
  for (let round = 1; round <= ROUNDS; round++)
    for (const c of CONNECTIONS)
      freshKeys.set(`${round}|${c}`, await createAgentKey(opts, `fresh-${round}-${c}`));
  const db = new BetterSqlite3(data);
  const busyId = (db.prepare(`SELECT id FROM agents WHERE name = 'busy'`).get() as { id: string }).id;
  db.close();
  const nowMs = Date.now();
  const t0 = performance.now();
  fillHour(data, busyId, ACTIONS, nowMs);
  log(
    `${ACTIONS.toLocaleString('en-US')} actions for the busy agent in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const airlock = await startAirlock(opts);
  servers.push(airlock);
  // The fresh agents are checked by their runs' outcomes below: a request now would make them less fresh.
  const sanity = await request(`${airlock.url}/api/decisions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${busyKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      intent: { kind: 'refund.create', amount: 100, currency: 'usd' },
      context: { customer: 'cus_sanity' },
      idempotency_key: `sanity-${Date.now()}`,
    }),
  });
  const body = (await sanity.body.json()) as Record<string, unknown>;
  if (body['outcome'] !== 'allow')
    throw new Error(
      `the busy agent's $1 decision was not allowed: ${JSON.stringify(body)}\n${outputOf(airlock.child)}`,
    );

  const reader = new BetterSqlite3(data, { readonly: true });
  const statusesOf = (tag: string) =>
    reader
      .prepare(`SELECT status, count(*) AS n FROM actions WHERE idempotency_key LIKE ? GROUP BY status`)
      .all(`${tag}-%`) as { status: string; n: number }[];
  const counted = COUNTED_STATUSES.map((s) => `'${s}'`).join(',');
  const busyWindow = () =>
    (
      reader
        .prepare(
          `SELECT count(*) AS n FROM actions WHERE agent_id = ? AND kind = 'refund.create' AND created_at >= ? AND status IN (${counted})`,
        )
        .get(busyId, new Date(Date.now() - HOUR_MS).toISOString()) as { n: number }
    ).n;

  async function run(key: string, c: number, seconds: number, tag: string): Promise<Run> {
    const cpu0 = cpuSecondsOf(airlock.child.pid!);
    const r = await runLoad({
      url: airlock.url,
      scenario: 'decision-allow',
      key,
      connections: c,
      seconds,
      tag,
    });
    const cpu = cpuSecondsOf(airlock.child.pid!) - cpu0;
    const other = statusesOf(tag).filter((s) => s.status !== 'approved');
    if (other.length) throw new Error(`${tag}: decisions not allowed at once: ${JSON.stringify(other)}`);
    return { ...r, cpuMsPerRequest: r.requests ? (cpu * 1000) / r.requests : Number.NaN };
  }

  log('warming up');
  await run(busyKey, 8, 2, 'warm-busy');
  await run(freshKeys.get(`1|${CONNECTIONS[0]}`)!, 8, 1, 'warm-fresh');
  const windowAtStart = busyWindow();
  const results = new Map<string, Run[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of CONNECTIONS) {
      for (const who of ['busy', 'fresh'] as const) {
        const key = who === 'busy' ? busyKey : freshKeys.get(`${round}|${c}`)!;
        const r = await run(key, c, SECONDS, `${who}-c${c}-r${round}`);
        results.set(`${who}|${c}`, [...(results.get(`${who}|${c}`) ?? []), r]);
        log(
          `round ${round}/${ROUNDS} c=${String(c).padEnd(3)} ${who.padEnd(6)} ${whole(r.rps).padStart(6)} decisions/s  p50 ${ms(r.p50)}  p99 ${ms(r.p99)} ms  CPU ${r.cpuMsPerRequest.toFixed(3)} ms/decision${r.errors ? `  ${r.errors} errors ${JSON.stringify(r.statuses)}` : ''}`,
        );
      }
    }
  }
  const windowAtEnd = busyWindow();
  reader.close();

  const med = (who: string, c: number, f: (r: Run) => number) =>
    median((results.get(`${who}|${c}`) ?? []).map(f));
  const rows = CONNECTIONS.map((c) => {
    const busy = med('busy', c, (r) => r.rps);
    const fresh = med('fresh', c, (r) => r.rps);
    const perRound = (results.get(`busy|${c}`) ?? []).map(
      (b, i) => b.rps / results.get(`fresh|${c}`)![i]!.rps,
    );
    return { c, busy, fresh, ratio: busy / fresh, perRound };
  });
  const table = [
    `Run ${new Date().toISOString()}: ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, load average ${loadavgStart.map((x) => x.toFixed(1)).join(' ')} at the start. ` +
      `${ROUNDS === 1 ? 'One round' : `Medians of ${ROUNDS} rounds`} of ${SECONDS} s per run, busy and fresh alternated. POST /api/decisions for $1 (a new customer and idempotency key each) from one agent's key; ` +
      `the busy agent had ${windowAtStart.toLocaleString('en-US')} counted refunds in its last hour at the start and ${windowAtEnd.toLocaleString('en-US')} at the end; each fresh run's agent had sent nothing before its run. bench/policy.yaml, SQLite.`,
    '',
    '| connections | busy agent decisions/s | p50 / p99 ms | CPU ms/decision | fresh agent decisions/s | p50 / p99 ms | CPU ms/decision | busy ÷ fresh (rounds) | target ≥ 0.9 |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|---|',
    ...rows.map(
      (r) =>
        `| ${r.c} | ${whole(r.busy)} | ${ms(med('busy', r.c, (x) => x.p50))} / ${ms(med('busy', r.c, (x) => x.p99))} | ${med('busy', r.c, (x) => x.cpuMsPerRequest).toFixed(3)} | ` +
        `${whole(r.fresh)} | ${ms(med('fresh', r.c, (x) => x.p50))} / ${ms(med('fresh', r.c, (x) => x.p99))} | ${med('fresh', r.c, (x) => x.cpuMsPerRequest).toFixed(3)} | ` +
        `**${r.ratio.toFixed(2)}** (${r.perRound.map((x) => x.toFixed(2)).join(', ')}) | ${r.ratio >= 0.9 ? 'met' : 'not met'} |`,
    ),
    '',
  ].join('\n');
  process.stdout.write(`\n${table}`);
  const saved = saveRun(
    ROOT,
    'busy',
    {
      at: new Date().toISOString(),
      config: {
        actions: ACTIONS,
        seconds: SECONDS,
        rounds: ROUNDS,
        connections: CONNECTIONS,
        spreadMs: SPREAD_MS,
      },
      machine: { cpus: cpus().length, model: cpus()[0]?.model.trim(), node: process.version, loadavgStart },
      busyWindow: { atStart: windowAtStart, atEnd: windowAtEnd },
      results: Object.fromEntries(results),
      ratios: rows,
      durationSeconds: (performance.now() - started) / 1000,
    },
    table,
  );
  log(`wrote ${saved}`);
}

try {
  await main();
} finally {
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
