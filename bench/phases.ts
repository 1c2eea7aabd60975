// The CPU cost of each phase of the allow path (POST /v1/refunds through the proxy), per request, measured in
// process and repeatably, against a budget per phase, next to the whole request's CPU measured end to end.
//
// In process, on a real SQLite file (migrated, synchronous=FULL as `airlock serve` opens it), with the instant
// upstream as a child process, each phase runs --requests times after a warm-up, --repeats times, and the median
// of process.cpuUsage() (user + system, every thread of this process) ÷ requests is its cost. The phases are the
// calls the real path makes, in its order (http/proxy.ts, engine/gateway.ts, systems/submission.ts,
// systems/evaluation.ts, engine/dispatcher.ts):
//   auth        authenticateAgent with the proxy's AgentKeyCache, warm (it still asks SQLite's data_version)
//   classify    bindRequest + classify, as the gateway does before anything else
//   lookup      StripeLookups.complete: the refund's charge fetched from the upstream (a new charge each)
//   resolve     Engine.evaluate (base attributes, velocity windows and the risk score against the store, the
//               freeze check) minus the policy phase below, which it contains
//   policy      decide() with every attribute already resolved
//   write       the action inserted decided and claimed with its three ledger events, in one store.transaction
//               (group commit, durable), --concurrency at a time as concurrent requests share commits
//   ledger hash ledgerHash for the write's three events and the completion's one (inside write and complete:
//               shown, not added to the sum)
//   upstream    StripeUpstream.send of the refund (undici to the instant upstream; this process's side only)
//   complete    Engine.complete: the row completed with Stripe's answer and its ledger event
//   response    what the proxy does with the completed row to answer (the decision's reason read; the stored
//               body is sent as it is)
// Fastify's part (parse the request, write the answer) is not an in-process phase: it is taken from the bare
// Node proxy, whose whole CPU per request, less its own undici call (the upstream phase), is Fastify in and out.
// End to end: `airlock serve` and the bare proxy under --seconds of 32-connection load, each process's CPU
// (from /proc) ÷ the requests it answered.
//
// Usage: npm run bench:phases [-- --requests 5000 --repeats 3 --concurrency 8 --agents 8 --seconds 5]
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AgentKeyCache, authenticateAgent } from '../src/auth/agent-keys.ts';
import { createAgentKey } from '../src/auth/credentials.ts';
import {
  type Agent,
  type AttributeResolver,
  Engine,
  type Submission,
  scopeOf,
} from '../src/engine/engine.ts';
import { policyResolvers } from '../src/engine/resolvers/index.ts';
import { newId } from '../src/ids.ts';
import { type AttrValue, decide, loadPolicyFile } from '../src/policy/index.ts';
import { openSqliteStore } from '../src/store/sqlite/open.ts';
import { type ActionRow, type LedgerEventInput, ledgerHash } from '../src/store/store.ts';
import { classify } from '../src/stripe/classify.ts';
import { bindRequest } from '../src/stripe/encoding.ts';
import { StripeLookups } from '../src/stripe/lookups.ts';
import type { Params } from '../src/stripe/params.ts';
import { StripeUpstream } from '../src/stripe/upstream.ts';
import { median, saveRun, whole } from './report.ts';
import {
  cpuSecondsOf,
  createAgentKey as createAgentKeyCli,
  ROOT,
  type Running,
  runLoad,
  startAirlock,
  startBareProxy,
  startInstantUpstream,
} from './servers.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '5000' },
    repeats: { type: 'string', default: '3' },
    // In-flight requests for the phases that wait on I/O (lookup, write, upstream, complete): under load several
    // requests share a commit and the upstream connections, and a phase's CPU per request depends on it.
    concurrency: { type: 'string', default: '8' },
    agents: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    'no-end-to-end': { type: 'boolean', default: false },
  },
});
const N = Number(values.requests);
const REPEATS = Number(values.repeats);
const CONCURRENCY = Math.max(1, Number(values.concurrency));
const AGENTS = Math.max(1, Number(values.agents));
const SECONDS = Number(values.seconds);
const POLICY_FILE = join(ROOT, 'bench', 'policy.yaml');

/**
 * µs of CPU per request each phase may cost for the allow path to reach 60% of the bare Node proxy's throughput:
 * the bare proxy costs about 0.15 ms a request, so Airlock has 0.25 ms in all, Fastify in and out included.
 */
const BUDGET_US: Record<string, number> = {
  http: 75,
  auth: 5,
  classify: 10,
  lookup: 20,
  resolve: 20,
  policy: 10,
  write: 45,
  ledger: 10,
  upstream: 45,
  complete: 15,
  response: 5,
};
/** Rows that are part of another row's cost: shown, not summed. */
const NESTED = new Set(['ledger']);

const log = (s: string) => process.stderr.write(`${s}\n`);
const dir = mkdtempSync(join(tmpdir(), 'airlock-phases-'));
const servers: Running[] = [];
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

interface Timing {
  cpuUs: number;
  /** The kernel's part of cpuUs (the fdatasync of a durable commit shows here). */
  sysUs: number;
  wallUs: number;
}

/** Runs fn(i) for i in [0, n), `concurrency` at a time, and returns CPU and wall time per call in µs. */
async function time(
  n: number,
  concurrency: number,
  fn: (i: number) => unknown,
  offset: number,
): Promise<Timing> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  if (concurrency === 1) {
    for (let i = 0; i < n; i++) {
      const r = fn(offset + i);
      if (r instanceof Promise) await r;
    }
  } else {
    for (let i = 0; i < n; i += concurrency) {
      const batch: unknown[] = [];
      for (let j = i; j < Math.min(n, i + concurrency); j++) batch.push(fn(offset + j));
      await Promise.all(batch);
    }
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  return { cpuUs: (cpu.user + cpu.system) / n, sysUs: cpu.system / n, wallUs: (wall * 1000) / n };
}

/** A phase measured --repeats times after a warm-up; each call gets an index no other call of the phase had. */
async function phase(
  name: string,
  concurrency: number,
  fn: (i: number) => unknown,
): Promise<Timing & { runs: Timing[] }> {
  let offset = 0;
  const warm = Math.min(2000, Math.ceil(N / 2));
  await time(warm, concurrency, fn, offset);
  offset += warm;
  const runs: Timing[] = [];
  for (let r = 0; r < REPEATS; r++) {
    runs.push(await time(N, concurrency, fn, offset));
    offset += N;
  }
  const t = {
    cpuUs: median(runs.map((x) => x.cpuUs)),
    sysUs: median(runs.map((x) => x.sysUs)),
    wallUs: median(runs.map((x) => x.wallUs)),
    runs,
  };
  log(
    `${name.padEnd(12)} ${t.cpuUs.toFixed(1).padStart(8)} µs CPU  ${t.wallUs.toFixed(1).padStart(8)} µs wall per request  (runs: ${runs.map((x) => x.cpuUs.toFixed(1)).join(', ')})`,
  );
  return t;
}

async function inProcess(upstreamUrl: string) {
  const store = await openSqliteStore(join(dir, 'phases.db'));
  const upstream = new StripeUpstream(upstreamUrl, 'sk_test_bench');
  const lookups = new StripeLookups(upstream);
  const policy = loadPolicyFile(POLICY_FILE);
  const engine = new Engine({ store, policy, facts: lookups, resolvers: policyResolvers(lookups) });
  // As `airlock serve` does: velocity windows from the in-memory aggregates (SQLite).
  await engine.keepHistoryInMemory();
  const cache = new AgentKeyCache(engine);
  const agents: Agent[] = [];
  const keys: string[] = [];
  for (let a = 0; a < AGENTS; a++) {
    const k = await createAgentKey(store, `phases-${a}`);
    agents.push({ id: k.agent_id, name: `phases-${a}` });
    keys.push(k.key);
  }
  const agentOf = (i: number) => agents[i % AGENTS]!;
  const paramsOf = (i: number): Params => ({
    charge: `ch_phases${i.toString(36)}`,
    amount: '100',
    metadata: { order: String(i) },
  });
  const classified = (i: number) => {
    const params = bindRequest('POST', '/v1/refunds', paramsOf(i)).params;
    return { params, classification: classify({ method: 'POST', path: '/v1/refunds', params }) };
  };
  const submission = (i: number): Submission => {
    const { params, classification } = classified(i);
    return {
      agent: agentOf(i),
      method: 'POST',
      path: '/v1/refunds',
      params,
      stripeAccount: null,
      stripeContext: null,
      stripeVersion: null,
      idempotencyKey: `phases-${i}`,
      classification,
      requestId: `req-${i}`,
    };
  };

  // One refund through the engine, to copy its row and events from, and the facts its decision completed.
  const first = submission(0);
  const memo = new Map();
  const completed = await lookups.complete(first.classification, scopeOf(first), memo);
  const template = (
    await engine.submit({ ...first, memo, completed, claimFor: { owner: 'phases', leaseMs: 60_000 } })
  ).action;
  if (template.status !== 'pending')
    throw new Error(`the template refund was not allowed: ${template.decision}`);
  // Every decision's facts as the look-up left them (the charge in the memo), so evaluate makes no upstream call.
  const decided = (i: number): Submission => ({ ...submission(i), memo, completed });
  // The attributes decide() is given, as evaluation.ts accumulates them: read by a last resolver on an engine of
  // its own, so the timed engine runs exactly the resolvers `airlock serve` does.
  let attributes: Record<string, AttrValue> = {};
  const capture: AttributeResolver = {
    resolve: async (ctx) => {
      attributes = { ...ctx.base };
      return { attributes: {} };
    },
  };
  const capturing = new Engine({
    store,
    policy,
    facts: lookups,
    resolvers: [...policyResolvers(lookups), capture],
  });
  const evaluation = await capturing.evaluate(decided(1));
  if (evaluation.decision.outcome !== 'allow') throw new Error('a $1 refund was not allowed');
  const metadata = { order: '1' };

  const results: Record<string, Timing & { runs: Timing[] }> = {};
  results['auth'] = await phase('auth', 1, (i) => authenticateAgent(cache, `Bearer ${keys[i % AGENTS]}`));
  results['classify'] = await phase('classify', 1, (i) => classified(i));
  results['lookup'] = await phase('lookup', CONCURRENCY, (i) => {
    const s = submission(i);
    return lookups.complete(s.classification, scopeOf(s), new Map());
  });

  // The write first, so that the velocity windows the resolve phase reads hold the rows a run leaves behind.
  const rows: ActionRow[] = [];
  const eventsFor = (row: ActionRow): LedgerEventInput[] => [
    {
      actionId: row.id,
      type: 'action.received',
      from: null,
      to: 'received',
      actor: `agent:${row.agent_id}`,
      data: {
        kind: row.kind,
        method: row.method,
        path: row.path,
        params: JSON.parse(row.params) as unknown,
        amount: row.amount,
        currency: row.currency,
        stripe_account: null,
        idempotency_key: row.idempotency_key,
        request_hash: row.request_hash,
        request_id: 'req-phases',
      },
      at: row.created_at,
    },
    {
      actionId: row.id,
      type: 'action.decided',
      from: 'received',
      to: 'pending',
      actor: 'policy',
      data: JSON.parse(row.decision) as Record<string, unknown>,
      at: row.created_at,
    },
    {
      actionId: row.id,
      type: 'dispatch.attempt',
      from: 'pending',
      to: 'pending',
      actor: 'dispatcher:phases',
      data: { attempt: 1, idempotency_key: `airlock-${row.id}` },
      at: row.created_at,
    },
  ];
  results['write'] = await phase('write', CONCURRENCY, (i) => {
    const at = new Date().toISOString();
    const id = newId('act');
    const agent = agentOf(i);
    const row: ActionRow = {
      ...template,
      id,
      agent_id: agent.id,
      // A new customer each, as every refund of the load names a new charge.
      customer: `cus_phases${i.toString(36)}`,
      idempotency_key: `phases-write-${i}`,
      idempotency_scope: `${agent.id}||phases-write-${i}`,
      created_at: at,
      decided_at: at,
      updated_at: at,
    };
    rows.push(row);
    return store.transaction(async (tx) => {
      await tx.insertAction(row);
      await tx.appendLedgerEvents(eventsFor(row));
    });
  });
  const windowRows = Math.round(rows.length / AGENTS);

  const evaluate = await phase('evaluate', 1, (i) => engine.evaluate(decided(i)));
  const policyTiming = await phase('policy', 1, () => decide(policy, { attributes, metadata }));
  results['resolve'] = {
    cpuUs: evaluate.cpuUs - policyTiming.cpuUs,
    sysUs: evaluate.sysUs - policyTiming.sysUs,
    wallUs: evaluate.wallUs - policyTiming.wallUs,
    runs: evaluate.runs,
  };
  results['policy'] = policyTiming;

  const ledgerRow = {
    seq: 1,
    action_id: template.id,
    type: 'action.decided',
    from_status: 'received',
    to_status: 'pending',
    actor: 'policy',
    data: template.decision,
    at: template.created_at,
  };
  const ledger = await phase('ledger hash', 1, (i) => {
    let h = '0'.repeat(64);
    for (let e = 0; e < 4; e++) h = ledgerHash(h, { ...ledgerRow, seq: i * 4 + e });
    return h;
  });
  results['ledger'] = ledger;

  const refundBody = template.body ?? '';
  // A client of its own, with no connection left idle through the phases before (the server may have closed it).
  const sender = new StripeUpstream(upstreamUrl, 'sk_test_bench');
  let answer: unknown = null;
  results['upstream'] = await phase('upstream', CONCURRENCY, async (i) => {
    const res = await sender.send({
      method: 'POST',
      path: '/v1/refunds',
      body: refundBody,
      params: {},
      idempotencyKey: `airlock-phases-${i}`,
      stripeAccount: null,
      stripeContext: null,
      stripeVersion: null,
    });
    answer = res.body;
  });

  // Completes the rows the write phase left pending, in the order it wrote them.
  let next = 0;
  const completedRows: ActionRow[] = [];
  results['complete'] = await phase('complete', CONCURRENCY, async () => {
    const row = rows[next++];
    if (!row) throw new Error('more completions than written rows: raise the write phase');
    completedRows.push(await engine.complete(row.id, 'phases', 200, answer, false));
  });
  results['response'] = await phase('response', 1, (i) => {
    const row = completedRows[i % completedRows.length]!;
    const reason = (JSON.parse(row.decision) as { reason?: string }).reason ?? '';
    return { code: row.response_code ?? 200, body: row.response_body, reason, header: row.id };
  });
  cache.close();
  await store.close();
  return { results, windowRows, requests: N };
}

async function endToEnd(upstreamUrl: string) {
  const bare = await startBareProxy(upstreamUrl);
  servers.push(bare);
  const opts = { data: join(dir, 'e2e.db'), upstream: upstreamUrl, policy: POLICY_FILE };
  const keys: string[] = [];
  for (let a = 0; a < AGENTS; a++) keys.push(await createAgentKeyCli(opts, `e2e-${a}`));
  const airlock = await startAirlock(opts);
  servers.push(airlock);
  const measure = async (url: string, pid: number, key: string, tag: string) => {
    await runLoad({ url, scenario: 'refund', key, connections: 32, seconds: 2, tag: `${tag}-warm` });
    const cpu0 = cpuSecondsOf(pid);
    const r = await runLoad({ url, scenario: 'refund', key, connections: 32, seconds: SECONDS, tag });
    const cpu = cpuSecondsOf(pid) - cpu0;
    if (r.errors) throw new Error(`${tag}: ${r.errors} errors ${JSON.stringify(r.statuses)}`);
    log(`${tag}: ${whole(r.rps)} req/s, ${((cpu * 1e6) / r.requests).toFixed(0)} µs CPU per request`);
    return { rps: r.rps, requests: r.requests, cpuUs: (cpu * 1e6) / r.requests };
  };
  const airlockRun = await measure(airlock.url, airlock.child.pid!, keys.join(','), 'airlock');
  const bareRun = await measure(bare.url, bare.child.pid!, 'sk_test_bench', 'bare');
  return { airlock: airlockRun, bare: bareRun };
}

const LABELS: Record<string, string> = {
  http: 'HTTP in and out (Fastify; the bare proxy end to end − its upstream call)',
  auth: 'agent key auth (AgentKeyCache, warm)',
  classify: 'classification (bindRequest + classify)',
  lookup: "the refund's charge looked up upstream (StripeLookups)",
  resolve: 'velocity and risk attributes against the store (evaluate − policy)',
  policy: 'policy evaluation (decide, attributes resolved)',
  write: 'store write: action + 3 ledger events, one transaction',
  ledger: 'ledger hash (ledgerHash × 4; inside write and complete)',
  upstream: 'upstream call (StripeUpstream.send, undici)',
  complete: 'completion (Engine.complete: row + ledger event)',
  response: 'response (the answer from the completed row)',
};

async function main(): Promise<void> {
  const started = performance.now();
  const loadavgStart = loadavg();
  const upstream = await startInstantUpstream();
  servers.push(upstream);
  log(
    `in process: ${N} requests × ${REPEATS} per phase, ${CONCURRENCY} in flight for I/O phases, ${AGENTS} agents`,
  );
  const inproc = await inProcess(upstream.url);
  const e2e = values['no-end-to-end'] ? null : await endToEnd(upstream.url);
  const measured: Record<string, number | null> = Object.fromEntries(
    Object.entries(inproc.results).map(([k, v]) => [k, v.cpuUs]),
  );
  measured['http'] = e2e ? e2e.bare.cpuUs - inproc.results['upstream']!.cpuUs : null;
  const order = [
    'http',
    'auth',
    'classify',
    'lookup',
    'resolve',
    'policy',
    'write',
    'ledger',
    'upstream',
    'complete',
    'response',
  ];
  const us = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(1));
  const summed = order.filter((k) => !NESTED.has(k));
  const sum = summed.reduce((s, k) => s + (measured[k] ?? 0), 0);
  const budget = summed.reduce((s, k) => s + BUDGET_US[k]!, 0);
  const lines = [
    `Run ${new Date().toISOString()}: ${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}, load average ${loadavgStart.map((x) => x.toFixed(1)).join(' ')} at the start. ` +
      `Allow path of POST /v1/refunds ($1, bench/policy.yaml). In process: median of ${REPEATS} runs of ${N} requests per phase after a warm-up, ${CONCURRENCY} in flight for the I/O phases, ${AGENTS} agents (about ${inproc.windowRows.toLocaleString('en-US')} rows in each agent's hour when resolve ran). ` +
      (e2e
        ? `End to end: 32 connections for ${SECONDS} s, each server's CPU from /proc ÷ its requests.`
        : 'End to end: not run.'),
    '',
    '| phase | budget µs | CPU µs per request | of which kernel | over budget |',
    '|---|--:|--:|--:|--:|',
    ...order.map((k) => {
      const m = measured[k];
      const b = BUDGET_US[k]!;
      const nested = NESTED.has(k);
      const sys = inproc.results[k]?.sysUs;
      return `| ${nested ? '↳ ' : ''}${LABELS[k]} | ${nested ? `(${b})` : b} | ${nested ? `(${us(m)})` : us(m)} | ${us(sys)} | ${m === null || m === undefined ? '–' : m > b ? `×${(m / b).toFixed(1)}` : 'within'} |`;
    }),
    `| **sum of the phases** | **${budget}** | **${us(sum)}** | | ${sum > budget ? `×${(sum / budget).toFixed(1)}` : 'within'} |`,
    ...(e2e
      ? [
          `| **Airlock end to end** (${whole(e2e.airlock.rps)} req/s) | ${budget} | **${us(e2e.airlock.cpuUs)}** | | ×${(e2e.airlock.cpuUs / budget).toFixed(1)} |`,
          `| not in any phase (end to end − sum: GC, event loop, logging, metrics, the rest) | | ${us(e2e.airlock.cpuUs - sum)} | | |`,
          `| bare Node proxy end to end (${whole(e2e.bare.rps)} req/s), for reference | 150 | ${us(e2e.bare.cpuUs)} | | |`,
        ]
      : []),
    '',
  ];
  const table = lines.join('\n');
  process.stdout.write(`\n${table}`);
  const saved = saveRun(
    ROOT,
    'phases',
    {
      at: new Date().toISOString(),
      config: { requests: N, repeats: REPEATS, concurrency: CONCURRENCY, agents: AGENTS, seconds: SECONDS },
      machine: { cpus: cpus().length, model: cpus()[0]?.model.trim(), node: process.version, loadavgStart },
      budgetUs: BUDGET_US,
      inProcess: inproc,
      measuredUs: measured,
      sumUs: sum,
      endToEnd: e2e,
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
