// The peer's three workload shapes replayed against Airlock, and the read path against the bare proxy:
//   - a decision policy allows at once: POST /api/decisions, a $1 refund intent
//   - a decision held for a person: POST /api/decisions, a $600 refund intent
//   - approving a distinct held decision per call: POST /api/actions/:id/approve
//   - reads: GET /v1/charges/:id through Airlock and through the bare Node proxy, as a ratio
// Each request carries a new idempotency key (and a new customer or charge); each workload runs at every
// connection count, alternated within a round, for --seconds each. After each decision run the store is read to
// check every action of the run reached the status its workload names, so a number never measures an error path.
//
// Usage: npm run bench:peer [-- --seconds 10 --rounds 1 --connections 1,32 --agents 8]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { request } from 'undici';
import type { LoadResult, LoadSpec, Scenario } from './loadgen.ts';
import { ms, type Summary, saveRun, summarize, whole } from './report.ts';
import {
  type AirlockOptions,
  createAgentKey,
  createReviewerToken,
  outputOf,
  ROOT,
  type Running,
  runLoad,
  startAirlock,
  startBareProxy,
  startInstantUpstream,
} from './servers.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '1' },
    connections: { type: 'string', default: '1,32' },
    // Agent keys the decisions are spread over, as in the suite: one agent's decisions run one at a time.
    agents: { type: 'string', default: '8' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = values.connections.split(',').filter(Boolean).map(Number);
const AGENTS = Math.max(1, Number(values.agents));

const log = (s: string) => process.stderr.write(`${s}\n`);
const dir = mkdtempSync(join(tmpdir(), 'airlock-peer-'));
const servers: Running[] = [];
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

interface Workload {
  name: string;
  label: string;
  scenario: Scenario;
  /** The status every action the run created must have reached (decision runs). */
  expect?: string;
}
const WORKLOADS: Workload[] = [
  { name: 'allow', label: 'decision allowed at once ($1)', scenario: 'decision-allow', expect: 'approved' },
  {
    name: 'held',
    label: 'decision held for a person ($600)',
    scenario: 'decision-held',
    expect: 'awaiting_approval',
  },
  { name: 'approve', label: 'approve a distinct held decision', scenario: 'approve' },
  { name: 'read', label: 'read through Airlock (GET /v1/charges/:id)', scenario: 'read' },
  { name: 'read-bare', label: 'read through the bare Node proxy', scenario: 'read' },
];

async function post(url: string, auth: string, body: unknown) {
  const res = await request(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function main(): Promise<void> {
  const started = performance.now();
  const loadavgStart = loadavg();
  const upstream = await startInstantUpstream();
  servers.push(upstream);
  const bare = await startBareProxy(upstream.url);
  servers.push(bare);
  const data = join(dir, 'airlock.db');
  const opts: AirlockOptions = { data, upstream: upstream.url, policy: join(ROOT, 'bench', 'policy.yaml') };
  const keys: string[] = [];
  for (let i = 0; i < AGENTS; i++) keys.push(await createAgentKey(opts, `peer-${i}`));
  const reviewer = await createReviewerToken(opts, 'peer-reviewer@example.com');
  const airlock = await startAirlock(opts);
  servers.push(airlock);

  // Each shape must do what it names before it is timed.
  const decision = (amount: number) => ({
    intent: { kind: 'refund.create', amount, currency: 'usd' },
    context: { customer: `cus_sanity${amount}` },
    idempotency_key: `sanity-${amount}-${Date.now()}`,
  });
  const allowed = await post(`${airlock.url}/api/decisions`, keys[0]!, decision(100));
  const held = await post(`${airlock.url}/api/decisions`, keys[0]!, decision(60_000));
  if (allowed.body['outcome'] !== 'allow' || held.body['outcome'] !== 'review')
    throw new Error(
      `the decisions are not allowed and held: ${JSON.stringify(allowed.body)} ${JSON.stringify(held.body)}\n${outputOf(airlock.child)}`,
    );
  const approved = await post(`${airlock.url}/api/actions/${held.body['id']}/approve`, reviewer, {
    note: 'sanity',
  });
  if (approved.status !== 200) throw new Error(`approving a held decision answered ${approved.status}`);
  for (const url of [airlock.url, bare.url]) {
    const r = await request(`${url}/v1/charges/ch_sanity`, {
      headers: { authorization: `Bearer ${keys[0]}` },
    });
    const body = (await r.body.json()) as Record<string, unknown>;
    if (r.statusCode !== 200 || body['object'] !== 'charge')
      throw new Error(`a read through ${url} did not come back: ${r.statusCode} ${JSON.stringify(body)}`);
  }

  // The store, read on a connection of the benchmark's own: the held decisions to approve, and each run's outcome.
  const db = new BetterSqlite3(data, { readonly: true });
  const used = new Set<string>();
  const heldIds = () =>
    (
      db
        .prepare(
          `SELECT id FROM actions WHERE status = 'awaiting_approval' AND mode = 'decide' ORDER BY rowid`,
        )
        .all() as { id: string }[]
    )
      .map((r) => r.id)
      .filter((id) => !used.has(id));
  const outcomes = (tag: string) =>
    Object.fromEntries(
      (
        db
          .prepare(`SELECT status, count(*) AS n FROM actions WHERE idempotency_key LIKE ? GROUP BY status`)
          .all(`${tag}-%`) as { status: string; n: number }[]
      ).map((r) => [r.status, r.n]),
    );

  const spec = (w: Workload, connections: number, seconds: number, tag: string): LoadSpec => ({
    url: w.name === 'read-bare' ? bare.url : airlock.url,
    scenario: w.scenario,
    key: w.name === 'read-bare' ? 'sk_test_bench' : w.name === 'approve' ? reviewer : keys.join(','),
    connections,
    seconds,
    tag,
  });
  // Held decisions for an approve run: at least twice what the fastest held run could have made in its time.
  let heldRate = 200;
  async function approvalsFor(tag: string): Promise<string> {
    const need = Math.ceil(2 * heldRate * SECONDS) + 200;
    let ids = heldIds();
    if (ids.length < need) {
      log(`  holding ${need - ids.length} more decisions to approve`);
      const fill = WORKLOADS.find((w) => w.name === 'held')!;
      const seconds = Math.ceil((need - ids.length) / heldRate) + 1;
      await runLoad(spec(fill, 32, seconds, `${tag}-fill`));
      ids = heldIds();
    }
    const file = join(dir, `${tag}.ids`);
    writeFileSync(file, `${ids.join('\n')}\n`);
    for (const id of ids) used.add(id);
    return file;
  }

  for (const w of WORKLOADS) {
    log(`warming up: ${w.label}`);
    const tag = `warm-${w.name}`;
    const s = spec(w, 8, 1, tag);
    await runLoad(w.scenario === 'approve' ? { ...s, ids: await approvalsFor(tag) } : s);
  }

  const results = new Map<string, LoadResult[]>();
  const checks: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of CONNECTIONS) {
      for (const w of WORKLOADS) {
        const tag = `${w.name}-c${c}-r${round}`;
        let s = spec(w, c, SECONDS, tag);
        if (w.scenario === 'approve') s = { ...s, ids: await approvalsFor(tag) };
        const r = await runLoad(s);
        if (w.name === 'held') heldRate = Math.max(heldRate, r.rps);
        const key = `${w.name}|${c}`;
        results.set(key, [...(results.get(key) ?? []), r]);
        let check = '';
        if (w.expect) {
          const o = outcomes(tag);
          const other = Object.entries(o).filter(([status]) => status !== w.expect);
          check = `${o[w.expect] ?? 0} ${w.expect}${other.length ? `, OTHER: ${JSON.stringify(Object.fromEntries(other))}` : ''}`;
          if (other.length) checks.push(`${tag}: ${check}`);
        }
        log(
          `round ${round}/${ROUNDS} c=${String(c).padEnd(3)} ${w.label.padEnd(44)} ${whole(r.rps).padStart(6)} req/s  p50 ${ms(r.p50)}  p99 ${ms(r.p99)} ms${r.errors ? `  ${r.errors} errors ${JSON.stringify(r.statuses)}` : ''}${check ? `  (${check})` : ''}`,
        );
        if (r.errors) checks.push(`${tag}: ${r.errors} errors ${JSON.stringify(r.statuses)}`);
      }
    }
  }
  db.close();

  const summary = (name: string, c: number): Summary | undefined => {
    const rounds = results.get(`${name}|${c}`);
    return rounds ? summarize(rounds) : undefined;
  };
  const head = `| workload | ${CONNECTIONS.map((c) => `c=${c} req/s | c=${c} p50/p99 ms`).join(' | ')} |`;
  const rule = `|---|${CONNECTIONS.map(() => '--:|--:').join('|')}|`;
  const rows = WORKLOADS.map(
    (w) =>
      `| ${w.label} | ${CONNECTIONS.map((c) => {
        const s = summary(w.name, c);
        return s ? `${whole(s.rps)} | ${ms(s.p50)} / ${ms(s.p99)}` : '– | –';
      }).join(' | ')} |`,
  );
  const ratios = CONNECTIONS.map((c) => {
    const a = summary('read', c)?.rps;
    const b = summary('read-bare', c)?.rps;
    return { connections: c, ratio: a && b ? a / b : null };
  });
  rows.push(
    `| read: Airlock ÷ bare proxy | ${ratios.map((r) => `${r.ratio === null ? '–' : `${(r.ratio * 100).toFixed(1)}%`} | `).join('| ')}|`,
  );
  const table = [
    `Run ${new Date().toISOString()}: ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, load average ${loadavgStart.map((x) => x.toFixed(1)).join(' ')} at the start. ` +
      `${ROUNDS === 1 ? 'One round' : `Medians of ${ROUNDS} rounds`} of ${SECONDS} s per run, workloads alternated; decisions from ${AGENTS} agents in turn, a new idempotency key and customer each; bench/policy.yaml on a fresh SQLite store.`,
    '',
    head,
    rule,
    ...rows,
    '',
  ].join('\n');
  process.stdout.write(`\n${table}`);
  if (checks.length) process.stdout.write(`\nNot clean:\n${checks.map((c) => `- ${c}`).join('\n')}\n`);
  const saved = saveRun(
    ROOT,
    'peer',
    {
      at: new Date().toISOString(),
      config: { seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, agents: AGENTS },
      machine: { cpus: cpus().length, model: cpus()[0]?.model.trim(), node: process.version, loadavgStart },
      workloads: WORKLOADS.map((w) => ({
        ...w,
        byConnections: Object.fromEntries(CONNECTIONS.map((c) => [c, summary(w.name, c)])),
      })),
      readRatios: ratios,
      checks,
      durationSeconds: (performance.now() - started) / 1000,
    },
    table,
  );
  log(`wrote ${saved}`);
  if (checks.length) process.exitCode = 1;
}

try {
  await main();
} finally {
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
