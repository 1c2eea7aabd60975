// The benchmark suite of issue 9, in one process tree and one report.
//   (a) direct calls to an upstream that answers at once (bench/instant-upstream.ts)
//   (b) the same through a bare Node forwarding proxy on Airlock's HTTP stack (bench/bare-proxy.ts)
//   (c) through nginx's proxy_pass, when nginx is installed
//   (d) through Airlock's allow path with a realistic policy (bench/policy.yaml)
//   (e) Airlock's decisions API
//   (f) approval to upstream call
//   (g) a store of 1,000,000 actions: queries, audit verify, and (d) on it against a fresh store
// Each server is its own process; load comes from a separate generator process (bench/loadgen.ts).
//
// Usage: npm run bench [-- --rounds 3 --seconds 5 --connections 32 --rates 100,500,2000 --approvals 300
//                          --agents 8 --no-nginx --no-million --publish]
//        npm run bench:ci   (the short form: fails only if Airlock falls below --floor of the bare proxy's rate)
// AIRLOCK_PROFILE_DIR=dir writes a V8 CPU profile of the Airlock process of (d) there.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { LoadResult, LoadSpec, Scenario } from './loadgen.ts';
import { copyStore, measureMillionApart, millionStore } from './million.ts';
import {
  type ApprovalReport,
  checks,
  markdown,
  replaceBetweenMarkers,
  type SuiteReport,
  summarize,
  svg,
  type TargetReport,
} from './report.ts';
import {
  type AirlockOptions,
  createAgentKey,
  createReviewerToken,
  nginxPath,
  outputOf,
  ROOT,
  type Running,
  runLoad,
  startAirlock,
  startBareProxy,
  startInstantUpstream,
  startNginx,
} from './servers.ts';

const { values } = parseArgs({
  options: {
    ci: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string', default: '32' },
    rates: { type: 'string' },
    approvals: { type: 'string', default: '300' },
    // Agent keys Airlock's load is spread over. One agent's decisions run one at a time when the policy reads its
    // history, so --agents 1 is Airlock's worst case; 8 is a team of agents.
    agents: { type: 'string', default: '8' },
    'no-nginx': { type: 'boolean', default: false },
    'no-million': { type: 'boolean', default: false },
    'million-actions': { type: 'string', default: '1000000' },
    floor: { type: 'string', default: '0.05' },
    publish: { type: 'boolean', default: false },
    // Re-renders a saved run (bench/results/<time>.json) with the current report code, without measuring.
    from: { type: 'string' },
  },
});
const CI = values.ci;
const ROUNDS = Number(values.rounds ?? (CI ? 2 : 3));
const SECONDS = Number(values.seconds ?? (CI ? 3 : 5));
const CONNECTIONS = Number(values.connections);
// 2,000/s is the issue's latency target; 100 and 500 are rates Airlock should sustain on two cores.
const RATES = (values.rates ?? (CI ? '' : '100,500,2000')).split(',').filter(Boolean).map(Number);
const APPROVALS = Number(values.approvals);
const AGENTS = Math.max(1, Number(values.agents));
const FLOOR = Number(values.floor);
const POLICY = join(ROOT, 'bench', 'policy.yaml');
const STRIPE_KEY = 'sk_test_bench';

const log = (s: string) => process.stderr.write(`${s}\n`);
const started = performance.now();
const loadavgStart = loadavg();
const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-'));
const servers: Running[] = [];
// Also on Ctrl-C: the directory may hold a 3 GB copy of (g)'s store.
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

interface Target {
  name: string;
  label: string;
  url: string;
  key: string;
  scenario: Scenario;
  /** Only the max-throughput run (the 1M store is compared on throughput). */
  maxOnly?: boolean;
  server?: Running;
}

async function post(url: string, headers: Record<string, string>, body: string) {
  const res = await request(url, { method: 'POST', headers, body });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** One refund through a target must come back as Stripe's refund, or the numbers would measure an error path. */
async function sanityCheck(t: Target): Promise<void> {
  if (t.scenario === 'decision') {
    const r = await post(
      `${t.url}/api/decisions`,
      { authorization: `Bearer ${t.key.split(',')[0]}`, 'content-type': 'application/json' },
      JSON.stringify({
        intent: { kind: 'refund.create', amount: 100, currency: 'usd' },
        idempotency_key: `sanity-${Date.now()}`,
      }),
    );
    if (r.status !== 200 || r.body['outcome'] !== 'allow')
      throw new Error(`${t.label}: a $1 decision was not allowed: ${r.status} ${JSON.stringify(r.body)}`);
    return;
  }
  const r = await post(
    `${t.url}/v1/refunds`,
    {
      authorization: `Bearer ${t.key.split(',')[0]}`,
      'content-type': 'application/x-www-form-urlencoded',
      'idempotency-key': `sanity-${t.name}-${Date.now()}`,
    },
    `charge=ch_sanity${Date.now()}&amount=100`,
  );
  if (r.status !== 200 || r.body['object'] !== 'refund')
    throw new Error(
      `${t.label}: a $1 refund did not go through: ${r.status} ${JSON.stringify(r.body)}\n${t.server ? outputOf(t.server.child) : ''}`,
    );
}

function spec(t: Target, mode: string, seconds: number): LoadSpec {
  return {
    url: t.url,
    scenario: t.scenario,
    key: t.key,
    connections: CONNECTIONS,
    seconds,
    ...(mode.startsWith('rate:') ? { rate: Number(mode.slice(5)) } : {}),
    tag: `${t.name}-${mode.replace(':', '')}`,
  };
}

/** Rounds of every mode over every target, alternating targets within a round, so drift hits all alike. */
async function measure(targets: Target[], modes: string[]): Promise<TargetReport[]> {
  const results = new Map<string, LoadResult[]>();
  for (const t of targets) {
    log(`warming up ${t.label}`);
    await runLoad(spec(t, 'max', 2));
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of modes) {
      for (const t of targets) {
        if (t.maxOnly && mode !== 'max') continue;
        const r = await runLoad(spec(t, mode, SECONDS));
        const key = `${t.name}|${mode}`;
        results.set(key, [...(results.get(key) ?? []), r]);
        log(
          `round ${round}/${ROUNDS} ${mode.padEnd(9)} ${t.label.padEnd(26)} ${Math.round(r.rps).toString().padStart(6)} req/s  p50 ${r.p50.toFixed(2)}  p99 ${r.p99.toFixed(2)}  p99.9 ${r.p999.toFixed(2)} ms${r.errors ? `  ${r.errors} errors ${JSON.stringify(r.statuses)}` : ''}${r.sustained === false ? '  (rate not sustained)' : ''}`,
        );
      }
    }
  }
  return targets.map((t) => ({
    name: t.name,
    label: t.label,
    modes: Object.fromEntries(
      modes
        .filter((m) => results.has(`${t.name}|${m}`))
        .map((m) => [m, summarize(results.get(`${t.name}|${m}`)!)]),
    ),
  }));
}

/** (f): refunds held for review, approved one at a time; the upstream stamps each refund's arrival. */
async function approvals(
  airlock: Running,
  upstream: Running,
  opts: AirlockOptions,
  agentKey: string,
): Promise<ApprovalReport> {
  const token = await createReviewerToken(opts, 'bench-reviewer@example.com');
  const held: string[] = [];
  for (let i = 0; i < APPROVALS; i++) {
    const r = await post(
      `${airlock.url}/v1/refunds`,
      {
        authorization: `Bearer ${agentKey}`,
        'content-type': 'application/x-www-form-urlencoded',
        'idempotency-key': `held-${Date.now()}-${i}`,
      },
      // $600: over the policy's $500 line, so large_refund holds it.
      `charge=ch_held${Date.now().toString(36)}x${i}&amount=60000`,
    );
    const id = (r.body['error'] as { airlock_action?: string } | undefined)?.airlock_action;
    if (r.status !== 403 || !id)
      throw new Error(`a $600 refund was not held: ${r.status} ${JSON.stringify(r.body)}`);
    held.push(id);
  }
  const arrivals = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  const onMessage = (m: { arrived?: string; at?: number }) => {
    if (!m.arrived || m.at === undefined) return;
    arrivals.set(m.arrived, m.at);
    waiters.get(m.arrived)?.(m.at);
  };
  upstream.child.on('message', onMessage);
  upstream.child.send({ record: true });
  const now = () => performance.timeOrigin + performance.now();
  const toUpstream: number[] = [];
  const call: number[] = [];
  try {
    for (const [i, id] of held.entries()) {
      const arrived = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${id} never reached the upstream`)), 10_000);
        waiters.set(id, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });
      const t0 = now();
      const r = await post(
        `${airlock.url}/api/actions/${id}/approve`,
        { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        JSON.stringify({ note: 'bench' }),
      );
      call.push(now() - t0);
      if (r.status !== 200) throw new Error(`approving ${id} answered ${r.status} ${JSON.stringify(r.body)}`);
      const at = arrivals.get(id) ?? (await arrived);
      waiters.delete(id);
      // The first approvals warm the path up; they are not counted.
      if (i >= 20) toUpstream.push(at - t0);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    upstream.child.send({ record: false });
    upstream.child.off('message', onMessage);
  }
  const q = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  };
  return {
    approvals: toUpstream.length,
    p50: q(toUpstream, 0.5),
    p99: q(toUpstream, 0.99),
    max: Math.max(...toUpstream),
    approveCallP50: q(call.slice(20), 0.5),
    approveCallP99: q(call.slice(20), 0.99),
  };
}

function nginxVersion(bin: string): string {
  try {
    return (
      execFileSync(bin, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || 'nginx'
    );
  } catch (err) {
    // nginx -v prints on stderr.
    return String((err as { stderr?: string }).stderr ?? '').trim() || 'nginx';
  }
}

/** Prints the table and writes the JSON, the table and the chart; with --publish, into docs/ too. */
function writeReport(report: SuiteReport, opts: { json?: boolean } = {}): void {
  const ci = report.form === 'ci';
  const table = markdown(report);
  process.stdout.write(`\n${table}`);
  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const stamp = report.at.replace(/[:.]/g, '-');
  if (opts.json ?? true)
    writeFileSync(
      join(resultsDir, `${stamp}${ci ? '-ci' : ''}.json`),
      `${JSON.stringify(report, null, 2)}\n`,
    );
  writeFileSync(join(resultsDir, ci ? 'latest-ci.md' : 'latest.md'), table);
  writeFileSync(join(resultsDir, ci ? 'latest-ci.svg' : 'latest.svg'), svg(report));
  log(
    `wrote bench/results/${stamp}${ci ? '-ci' : ''}.json and bench/results/${ci ? 'latest-ci' : 'latest'}.{md,svg}`,
  );
  if (values.publish) {
    writeFileSync(join(ROOT, 'docs', 'bench.svg'), svg(report));
    const docPath = join(ROOT, 'docs', 'PERFORMANCE.md');
    writeFileSync(docPath, replaceBetweenMarkers(readFileSync(docPath, 'utf8'), table));
    log('published docs/bench.svg and the table in docs/PERFORMANCE.md');
  }
}

async function main(): Promise<void> {
  if (values.from) {
    const saved = JSON.parse(readFileSync(values.from, 'utf8')) as SuiteReport;
    writeReport({ ...saved, checks: checks(saved) }, { json: false });
    return;
  }
  // (g)'s store first: building it is the heaviest work, and nothing else should be running meanwhile.
  const withMillion = !CI && !values['no-million'];
  const million = withMillion ? await millionStore(Number(values['million-actions'])) : null;

  const upstream = await startInstantUpstream();
  servers.push(upstream);
  const bare = await startBareProxy(upstream.url);
  servers.push(bare);
  const nginxBin = CI || values['no-nginx'] ? null : nginxPath();
  let nginxNote =
    CI || values['no-nginx']
      ? 'not run (--no-nginx / CI form)'
      : 'not installed (apt-get install nginx-light)';
  let nginx: Running | null = null;
  if (nginxBin) {
    nginx = await startNginx(nginxBin, upstream.url, dir);
    servers.push(nginx);
    nginxNote = `${nginxVersion(nginxBin).replace(/^nginx version: /, '')}, 1 worker process`;
  } else log(`nginx: ${nginxNote}`);

  const opts: AirlockOptions = {
    data: join(dir, 'airlock.db'),
    upstream: upstream.url,
    policy: POLICY,
    profileDir: process.env['AIRLOCK_PROFILE_DIR'],
  };
  const agentKeys: string[] = [];
  for (let i = 0; i < AGENTS; i++) agentKeys.push(await createAgentKey(opts, `bench-${i}`));
  const agentKey = agentKeys.join(',');
  const airlock = await startAirlock(opts);
  servers.push(airlock);

  const targets: Target[] = [
    { name: 'direct', label: '(a) direct', url: upstream.url, key: STRIPE_KEY, scenario: 'refund' },
    { name: 'bare', label: '(b) bare Node proxy', url: bare.url, key: STRIPE_KEY, scenario: 'refund' },
    ...(nginx
      ? [
          {
            name: 'nginx',
            label: '(c) nginx proxy_pass',
            url: nginx.url,
            key: STRIPE_KEY,
            scenario: 'refund' as const,
          },
        ]
      : []),
    {
      name: 'airlock',
      label: '(d) Airlock allow path',
      url: airlock.url,
      key: agentKey,
      scenario: 'refund',
      server: airlock,
    },
  ];
  let airlock1m: Running | null = null;
  if (million) {
    const m1 = { ...opts, data: copyStore(million, join(dir, 'million.db')), profileDir: undefined };
    const keys1m: string[] = [];
    for (let i = 0; i < AGENTS; i++) keys1m.push(await createAgentKey(m1, `bench-${i}`));
    const key1m = keys1m.join(',');
    airlock1m = await startAirlock(m1);
    servers.push(airlock1m);
    targets.push({
      name: 'airlock-1m',
      label: '(g) Airlock, 1M actions stored',
      url: airlock1m.url,
      key: key1m,
      scenario: 'refund',
      maxOnly: true,
      server: airlock1m,
    });
  }
  const decisionsTarget: Target = {
    name: 'decisions',
    label: '(e) decisions API',
    url: airlock.url,
    key: agentKey,
    scenario: 'decision',
  };
  for (const t of [...targets, ...(CI ? [] : [decisionsTarget])]) await sanityCheck(t);

  const modes = ['max', ...RATES.map((r) => `rate:${r}`)];
  const measured = await measure(targets, modes);
  const decisions = CI
    ? null
    : (await measure([decisionsTarget], ['max', ...RATES.slice(0, 1).map((r) => `rate:${r}`)]))[0]!;
  if (airlock1m) await airlock1m.stop();

  let approval: ApprovalReport | null = null;
  if (!CI && APPROVALS > 20) {
    log(`(f) approving ${APPROVALS} held refunds one at a time`);
    approval = await approvals(airlock, upstream, opts, agentKeys[0]!);
  }
  for (const s of servers) await s.stop();

  let millionReport: SuiteReport['million'] = null;
  if (million) {
    log('(g) timing queries and audit verify on the 1,000,000-action store');
    const r = await measureMillionApart(million.actions);
    const rps = (name: string) => measured.find((t) => t.name === name)?.modes['max']?.rps ?? null;
    millionReport = { ...r, allowRpsEmpty: rps('airlock'), allowRps1m: rps('airlock-1m') };
  }

  const rps = (name: string) => measured.find((t) => t.name === name)?.modes['max']?.rps ?? null;
  const ratio = (a: string, b: string) => {
    const x = rps(a);
    const y = rps(b);
    return x !== null && y ? x / y : null;
  };
  const ratios: Record<string, number | null> = {
    airlock_vs_bare_rps: ratio('airlock', 'bare'),
    airlock_vs_direct_rps: ratio('airlock', 'direct'),
  };
  if (nginx) {
    ratios['airlock_vs_nginx_rps'] = ratio('airlock', 'nginx');
    ratios['bare_vs_nginx_rps'] = ratio('bare', 'nginx');
  }
  for (const x of RATES) {
    const a = measured.find((t) => t.name === 'airlock')?.modes[`rate:${x}`];
    const b = measured.find((t) => t.name === 'bare')?.modes[`rate:${x}`];
    if (a && b) ratios[`airlock_added_p99_ms_at_${x}`] = a.p99 - b.p99;
  }
  const partial: Omit<SuiteReport, 'checks'> = {
    at: new Date().toISOString(),
    form: CI ? 'ci' : 'full',
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model.trim() ?? 'unknown',
      node: process.version,
      loadavgStart,
      loadavgEnd: loadavg(),
    },
    config: {
      rounds: ROUNDS,
      seconds: SECONDS,
      connections: CONNECTIONS,
      rates: RATES,
      agents: AGENTS,
      policy: 'bench/policy.yaml',
    },
    nginx: nginxNote,
    targets: measured,
    decisions,
    approval,
    million: millionReport,
    ratios,
    durationSeconds: (performance.now() - started) / 1000,
  };
  const report: SuiteReport = { ...partial, checks: checks(partial) };
  writeReport(report);

  // Errors mean a number measured something other than the path it names.
  const errors = [...measured, ...(decisions ? [decisions] : [])].flatMap((t) =>
    Object.entries(t.modes)
      .filter(([m, s]) => s.errors > 0 && m === 'max')
      .map(([m, s]) => `${t.label} ${m}: ${s.errors} errors`),
  );
  if (errors.length) {
    log(`errors under load: ${errors.join('; ')}`);
    process.exitCode = 1;
  }
  if (CI) {
    const r = ratios['airlock_vs_bare_rps'] ?? null;
    const perRound = (name: string) =>
      measured.find((t) => t.name === name)!.modes['max']!.rounds.map((x) => x.rps);
    const roundRatios = perRound('airlock').map((a, i) => a / perRound('bare')[i]!);
    process.stdout.write(
      `\nCI: Airlock's allow path serves ${r === null ? '–' : (r * 100).toFixed(1)}% of the bare Node proxy's throughput (rounds: ${roundRatios.map((x) => (x * 100).toFixed(1)).join('%, ')}%; median ratio of medians); floor ${(FLOOR * 100).toFixed(1)}%\n`,
    );
    if (r === null || r < FLOOR) {
      process.stdout.write(`CI: FAIL - below the floor: a large regression of the allow path\n`);
      process.exitCode = 1;
    } else process.stdout.write('CI: ok\n');
  }
}

try {
  await main();
} finally {
  for (const s of servers) await s.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
