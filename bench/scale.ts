// Does Airlock on PostgreSQL scale with processes? In one run: the allow path (bench/policy.yaml, $1 refunds, an
// instant upstream, the agent keys and connections of the suite's (d)) through one instance, through two instances
// (two `airlock serve` processes with the load split between their ports, and `serve --workers 2` on one port),
// and through one instance on SQLite; alternating within each round, medians over rounds. Besides req/s and
// latency it reports CPU per request of each process group (Airlock's processes from /proc/<pid>/stat, and every
// `postgres` process on the machine) and the statements PostgreSQL's active backends were running, sampled from
// pg_stat_activity during each run. Then, in the same rounds, fixed-rate runs (`--rates`, requests a second) through
// each single-port target: the latency a steady load sees, and whether the rate is sustained.
//
// Usage: npm run bench:scale [-- --rounds 3 --seconds 10 --connections 32 --agents 8 --rates 50,100
//                                 --no-processes --no-workers]
//        AIRLOCK_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test) is where a fresh database is made.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { request } from 'undici';
import type { LoadResult, LoadSpec } from './loadgen.ts';
import { median } from './report.ts';
import {
  type AirlockOptions,
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
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    agents: { type: 'string', default: '8' },
    rates: { type: 'string', default: '50,100' },
    'no-processes': { type: 'boolean', default: false },
    'no-workers': { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const AGENTS = Math.max(1, Number(values.agents));
const RATES = values.rates
  .split(',')
  .map(Number)
  .filter((r) => r > 0);
const PG_ADMIN_URL = process.env['AIRLOCK_BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const POLICY = join(ROOT, 'bench', 'policy.yaml');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const SAMPLE_MS = 500;

const log = (s: string) => process.stderr.write(`${s}\n`);
const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-scale-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

interface Group {
  name: string;
  label: string;
  store: 'postgres' | 'sqlite';
  servers: Running[];
  urls: string[];
  key: string;
}

interface Run {
  load: LoadResult;
  ok: number;
  airlockCpuMs: number;
  /** This benchmark's backends and PostgreSQL's writers. */
  postgresCpuMs: number;
  /** Every `postgres` process on the machine, whoever it works for. */
  postgresAllCpuMs: number;
  active: Map<string, number>;
  samples: number;
}

// ---- CPU from /proc ----

function statOf(pid: number): { comm: string; ppid: number; ticks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may hold spaces; the fields after it are space-separated.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' ');
    // After comm: state(0) ppid(1) … utime(11) stime(12).
    return { comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** The pids of a group: its server processes and their children (the workers of `serve --workers`). */
function groupPids(g: Group): number[] {
  const roots = new Set(g.servers.map((s) => s.child.pid!));
  const pids = new Set(roots);
  for (const pid of allPids()) {
    const s = statOf(pid);
    if (s && roots.has(s.ppid)) pids.add(pid);
  }
  return [...pids];
}

/** CPU time in ms used so far by each pid; a process that exits mid-run keeps its last reading. */
function cpuTicks(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const s = statOf(pid);
    if (s) out.set(pid, s.ticks);
  }
  return out;
}

function postgresPids(): number[] {
  return allPids().filter((pid) => statOf(pid)?.comm === 'postgres');
}

/**
 * The PostgreSQL processes working for this benchmark: the backends connected to its database, and the WAL
 * writer, checkpointer and background writer (shared with anyone else writing to the server).
 */
async function benchBackends(client: pg.Client, db: string): Promise<number[]> {
  const { rows } = await client.query<{ pid: number }>(
    `select pid from pg_stat_activity
      where (datname = $1 and pid <> pg_backend_pid())
         or backend_type in ('walwriter', 'checkpointer', 'background writer')`,
    [db],
  );
  return rows.map((r) => r.pid);
}

function cpuMsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return (ticks * 1000) / CLK_TCK;
}

// ---- pg_stat_activity ----

function shape(query: string): string {
  return query.replace(/\s+/g, ' ').replace(/\$\d+/g, '?').trim().slice(0, 110);
}

async function sampleActivity(client: pg.Client, db: string, into: Map<string, number>): Promise<void> {
  const { rows } = await client.query<{ query: string; wait: string | null }>(
    `select query, nullif(concat_ws(':', wait_event_type, wait_event), '') as wait
       from pg_stat_activity
      where state = 'active' and datname = $1 and pid <> pg_backend_pid()`,
    [db],
  );
  for (const r of rows) {
    const key = `${shape(r.query)}${r.wait ? `  [${r.wait}]` : ''}`;
    into.set(key, (into.get(key) ?? 0) + 1);
  }
}

// ---- the run ----

async function refundOnce(url: string, key: string): Promise<void> {
  const res = await request(`${url}/v1/refunds`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key.split(',')[0]}`,
      'content-type': 'application/x-www-form-urlencoded',
      'idempotency-key': `sanity-${Date.now()}-${Math.random()}`,
    },
    body: `charge=ch_sanity${Date.now()}&amount=100`,
  });
  const body = (await res.body.json()) as Record<string, unknown>;
  if (res.statusCode !== 200 || body['object'] !== 'refund')
    throw new Error(`${url}: a $1 refund did not go through: ${res.statusCode} ${JSON.stringify(body)}`);
}

function spec(g: Group, seconds: number, rate?: number): LoadSpec {
  return {
    url: g.urls[0]!,
    ...(g.urls.length > 1 && rate === undefined ? { urls: g.urls } : {}),
    scenario: 'refund',
    key: g.key,
    connections: CONNECTIONS,
    seconds,
    ...(rate === undefined ? {} : { rate }),
    tag: `scale-${g.name}${rate === undefined ? '' : `-rate${rate}`}`,
  };
}

interface RateReport {
  name: string;
  label: string;
  rate: number;
  rounds: { rps: number; p50: number; p99: number; sustained: boolean | null; errors: number }[];
  rps: number;
  p50: number;
  p99: number;
  /** Sustained in every round. */
  sustained: boolean;
}

function rateReport(g: Group, rate: number, runs: LoadResult[]): RateReport {
  const rounds = runs.map((r) => ({
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    sustained: r.sustained,
    errors: r.errors,
  }));
  return {
    name: g.name,
    label: g.label,
    rate,
    rounds,
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    sustained: rounds.every((r) => r.sustained === true),
  };
}

async function measureOnce(g: Group, admin: pg.Client, dbName: string): Promise<Run> {
  const pids = groupPids(g);
  const airlockBefore = cpuTicks(pids);
  const pgBefore = cpuTicks(postgresPids());
  const oursBefore = new Set(await benchBackends(admin, dbName));
  const active = new Map<string, number>();
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    // Skip the generator's start-up; then a sample every SAMPLE_MS while the load runs.
    await new Promise((r) => setTimeout(r, 300));
    while (sampling) {
      await sampleActivity(admin, dbName, active);
      samples++;
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
  })();
  const load = await runLoad(spec(g, SECONDS));
  sampling = false;
  await sampler;
  const airlockAfter = cpuTicks(pids);
  const pgAfter = cpuTicks(postgresPids());
  const ours = new Set([...oursBefore, ...(await benchBackends(admin, dbName))]);
  const only = (m: Map<number, number>) => new Map([...m].filter(([pid]) => ours.has(pid)));
  const ok = Object.entries(load.statuses)
    .filter(([s]) => s.startsWith('2'))
    .reduce((a, [, n]) => a + n, 0);
  return {
    load,
    ok,
    airlockCpuMs: cpuMsBetween(airlockBefore, airlockAfter),
    postgresCpuMs: g.store === 'postgres' ? cpuMsBetween(only(pgBefore), only(pgAfter)) : 0,
    postgresAllCpuMs: g.store === 'postgres' ? cpuMsBetween(pgBefore, pgAfter) : 0,
    active,
    samples,
  };
}

interface GroupReport {
  name: string;
  label: string;
  store: string;
  rounds: {
    rps: number;
    p50: number;
    p99: number;
    errors: number;
    airlock_cpu_ms_per_req: number;
    postgres_cpu_ms_per_req: number;
    all_postgres_cpu_ms_per_req: number;
  }[];
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  airlock_cpu_ms_per_req: number;
  postgres_cpu_ms_per_req: number;
  all_postgres_cpu_ms_per_req: number;
  cpu_ms_per_req: number;
  active_samples: number;
  top_active: { statement: string; seen: number }[];
}

function report(g: Group, runs: Run[]): GroupReport {
  const rounds = runs.map((r) => ({
    rps: r.load.rps,
    p50: r.load.p50,
    p99: r.load.p99,
    errors: r.load.errors,
    airlock_cpu_ms_per_req: r.ok ? r.airlockCpuMs / r.ok : 0,
    postgres_cpu_ms_per_req: r.ok ? r.postgresCpuMs / r.ok : 0,
    all_postgres_cpu_ms_per_req: r.ok ? r.postgresAllCpuMs / r.ok : 0,
  }));
  const active = new Map<string, number>();
  for (const r of runs) for (const [k, n] of r.active) active.set(k, (active.get(k) ?? 0) + n);
  const airlockCpu = median(rounds.map((r) => r.airlock_cpu_ms_per_req));
  const pgCpu = median(rounds.map((r) => r.postgres_cpu_ms_per_req));
  return {
    name: g.name,
    label: g.label,
    store: g.store,
    rounds,
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    airlock_cpu_ms_per_req: airlockCpu,
    postgres_cpu_ms_per_req: pgCpu,
    all_postgres_cpu_ms_per_req: median(rounds.map((r) => r.all_postgres_cpu_ms_per_req)),
    cpu_ms_per_req: airlockCpu + pgCpu,
    active_samples: runs.reduce((a, r) => a + r.samples, 0),
    top_active: [...active.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([statement, seen]) => ({ statement, seen })),
  };
}

function markdownOf(reports: GroupReport[], rates: RateReport[], meta: Record<string, unknown>): string {
  const one = reports.find((r) => r.name === 'pg-1');
  const sqlite = reports.find((r) => r.name === 'sqlite-1');
  const f = (n: number, d = 0) => n.toFixed(d);
  const lines = [
    `Allow path, $1 refunds, bench/policy.yaml, ${meta['agents']} agent keys, ${meta['connections']} connections, instant upstream; ${meta['rounds']} rounds of ${meta['seconds']} s, medians. ${meta['cpus']} CPUs, load average ${meta['loadavg']} at start.`,
    '',
    '| target | req/s | ÷ one PG instance | p50 ms | p99 ms | errors | Airlock CPU ms/req | PostgreSQL CPU ms/req | total CPU ms/req | ÷ SQLite CPU/req | every postgres process, CPU ms/req |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of reports) {
    lines.push(
      `| ${r.label} | ${f(r.rps)} | ${one ? f(r.rps / one.rps, 2) : '–'} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${r.errors} | ${f(r.airlock_cpu_ms_per_req, 2)} | ${r.store === 'postgres' ? f(r.postgres_cpu_ms_per_req, 2) : '–'} | ${f(r.cpu_ms_per_req, 2)} | ${sqlite ? f(r.cpu_ms_per_req / sqlite.cpu_ms_per_req, 2) : '–'} | ${r.store === 'postgres' ? f(r.all_postgres_cpu_ms_per_req, 2) : '–'} |`,
    );
  }
  lines.push(
    '',
    "PostgreSQL CPU counts this run's database's backends and the server's WAL writer, checkpointer and background writer; the last column counts every `postgres` process on the machine, including other users' backends.",
  );
  if (sqlite) {
    lines.push('');
    for (const r of reports.filter((x) => x.store === 'postgres')) {
      const ratio = r.cpu_ms_per_req / sqlite.cpu_ms_per_req;
      lines.push(
        `- ${r.label}: CPU per request ${ratio <= 2 ? 'within' : 'NOT within'} 2× of SQLite's (${f(ratio, 2)}×).`,
      );
    }
  }
  if (rates.length > 0) {
    lines.push(
      '',
      'Fixed rates (one port each; medians of the rounds; sustained: at least 95% of the rate answered in time, every round):',
      '',
      '| target | rate asked | req/s | p50 ms | p99 ms | sustained | errors |',
      '|---|--:|--:|--:|--:|---|--:|',
    );
    for (const r of rates)
      lines.push(
        `| ${r.label} | ${r.rate} | ${f(r.rps)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${r.sustained ? 'yes' : 'no'} | ${r.rounds.reduce((a, x) => a + x.errors, 0)} |`,
      );
  }
  for (const r of reports.filter((x) => x.store === 'postgres')) {
    lines.push(
      '',
      `Most common active statements, ${r.label} (${r.active_samples} samples of pg_stat_activity):`,
      '',
    );
    lines.push('| seen | statement [wait event] |', '|--:|---|');
    for (const a of r.top_active) lines.push(`| ${a.seen} | \`${a.statement.replace(/\|/g, '\\|')}\` |`);
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const dbName = `airlock_bench_scale_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const dbUrl = Object.assign(new URL(PG_ADMIN_URL), { pathname: `/${dbName}` }).toString();
  const servers: Running[] = [];
  try {
    const upstream = await startInstantUpstream();
    servers.push(upstream);
    const pgOpts: AirlockOptions = {
      data: join(dir, 'unused.db'),
      upstream: upstream.url,
      policy: POLICY,
      databaseUrl: dbUrl,
      profileDir: process.env['AIRLOCK_PROFILE_DIR'],
    };
    const sqliteOpts: AirlockOptions = {
      data: join(dir, 'airlock.db'),
      upstream: upstream.url,
      policy: POLICY,
      profileDir: process.env['AIRLOCK_PROFILE_DIR'],
    };
    // The first CLI call migrates the fresh database; the keys are shared by every PostgreSQL group.
    const pgKeys: string[] = [];
    for (let i = 0; i < AGENTS; i++) pgKeys.push(await createAgentKey(pgOpts, `bench-${i}`));
    const sqliteKeys: string[] = [];
    for (let i = 0; i < AGENTS; i++) sqliteKeys.push(await createAgentKey(sqliteOpts, `bench-${i}`));

    const groups: Group[] = [];
    const add = async (
      name: string,
      label: string,
      store: Group['store'],
      opts: AirlockOptions[],
      keys: string[],
    ) => {
      log(`starting ${label}`);
      const started = await Promise.all(opts.map((o) => startAirlock(o)));
      servers.push(...started);
      groups.push({
        name,
        label,
        store,
        servers: started,
        urls: started.map((s) => s.url),
        key: keys.join(','),
      });
    };
    await add('pg-1', 'PostgreSQL, 1 instance', 'postgres', [pgOpts], pgKeys);
    if (!values['no-processes'])
      await add('pg-2p', 'PostgreSQL, 2 processes (load split)', 'postgres', [pgOpts, pgOpts], pgKeys);
    if (!values['no-workers'])
      await add('pg-2w', 'PostgreSQL, serve --workers 2', 'postgres', [{ ...pgOpts, workers: 2 }], pgKeys);
    await add('sqlite-1', 'SQLite, 1 instance', 'sqlite', [sqliteOpts], sqliteKeys);
    // `serve --workers N` is ready (for the harness) when its first worker is; wait for the rest.
    for (const g of groups)
      for (const s of g.servers)
        if (s === groups.find((x) => x.name === 'pg-2w')?.servers[0])
          while (!outputOf(s.child).includes('every worker is listening'))
            await new Promise((r) => setTimeout(r, 200));
    for (const g of groups) for (const url of g.urls) await refundOnce(url, g.key);

    for (const g of groups) {
      log(`warming up ${g.label}`);
      await runLoad(spec(g, 2));
    }
    const runs = new Map<string, Run[]>(groups.map((g) => [g.name, []]));
    const rateRuns = new Map<string, LoadResult[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order too, so a drift of the machine does not always favour the same target.
      const order = round % 2 === 1 ? groups : [...groups].reverse();
      for (const g of order) {
        const r = await measureOnce(g, admin, dbName);
        runs.get(g.name)!.push(r);
        log(
          `round ${round}/${ROUNDS} ${g.label.padEnd(38)} ${Math.round(r.load.rps).toString().padStart(6)} req/s  p50 ${r.load.p50.toFixed(2)}  p99 ${r.load.p99.toFixed(2)} ms  Airlock ${(r.airlockCpuMs / Math.max(1, r.ok)).toFixed(2)}  PG ${(r.postgresCpuMs / Math.max(1, r.ok)).toFixed(2)} CPU ms/req${r.load.errors ? `  ${r.load.errors} errors ${JSON.stringify(r.load.statuses)}` : ''}`,
        );
      }
      for (const rate of RATES) {
        for (const g of order) {
          if (g.urls.length > 1) continue;
          const r = await runLoad(spec(g, SECONDS, rate));
          const key = `${g.name}|${rate}`;
          rateRuns.set(key, [...(rateRuns.get(key) ?? []), r]);
          log(
            `round ${round}/${ROUNDS} rate ${String(rate).padEnd(5)} ${g.label.padEnd(33)} ${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50.toFixed(2)}  p99 ${r.p99.toFixed(2)} ms${r.sustained === false ? '  (rate not sustained)' : ''}${r.errors ? `  ${r.errors} errors` : ''}`,
          );
        }
      }
    }
    const reports = groups.map((g) => report(g, runs.get(g.name)!));
    const rates = groups
      .filter((g) => g.urls.length === 1)
      .flatMap((g) => RATES.map((rate) => rateReport(g, rate, rateRuns.get(`${g.name}|${rate}`)!)));
    const meta = {
      rates: RATES,
      rounds: ROUNDS,
      seconds: SECONDS,
      connections: CONNECTIONS,
      agents: AGENTS,
      cpus: cpus().length,
      loadavg: loadavg()
        .map((x) => x.toFixed(1))
        .join(' '),
      node: process.version,
      postgres: (await admin.query<{ server_version: string }>('show server_version')).rows[0]
        ?.server_version,
      at: new Date().toISOString(),
    };
    const table = markdownOf(reports, rates, meta);
    const resultsDir = join(ROOT, 'bench', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const stamp = meta.at.replace(/[:.]/g, '-');
    writeFileSync(
      join(resultsDir, `scale-${stamp}.json`),
      `${JSON.stringify({ ...meta, groups: reports, rates }, null, 2)}\n`,
    );
    writeFileSync(join(resultsDir, 'scale-latest.md'), table);
    process.stdout.write(`\n${table}`);
    log(`wrote bench/results/scale-${stamp}.json and bench/results/scale-latest.md`);
  } finally {
    for (const s of servers.reverse()) await s.stop();
    await admin.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
      [dbName],
    );
    await admin.query(`drop database if exists ${dbName}`);
    await admin.end();
  }
}

await main();
