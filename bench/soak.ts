// npm run soak [-- --seconds 600 --agents 16 --sample 5 --warmup 60 --heap-snapshots DIR]
// Mixed traffic against a real `airlock serve` for a long time, sampling the child's memory: is it flat?
// Prints one line per sample and a JSON report: memory at start (after warm-up) and end, the slope over the second
// half (least squares, MB per minute), requests, errors and p99 latency by kind of call.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { spawnServe } from '../harness/serve-process.ts';
import { createAgentKey, createReviewer } from '../src/auth/credentials.ts';
import { verifyLedger } from '../src/engine/ledger.ts';
import { openSqliteStore } from '../src/store/sqlite/open.ts';
import { startSandbox } from '../src/stripe/sandbox/index.ts';
import { actions as allActions } from '../test/helpers/store-reads.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '600' },
    agents: { type: 'string', default: '16' },
    sample: { type: 'string', default: '5' },
    warmup: { type: 'string' },
    'heap-snapshots': { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const agents = Number(values.agents);
const sampleMs = Number(values.sample) * 1000;
// Caches, JIT and the SQLite page cache fill first; the start figure is taken after that.
const warmupMs = Number(values.warmup ?? Math.min(60, Math.round(seconds / 5))) * 1000;
const snapshotDir = values['heap-snapshots'] ? resolve(values['heap-snapshots']) : null;

type Kind = 'read_charge' | 'read_customer' | 'refund_small' | 'refund_large' | 'decision' | 'review';
const latency: Record<Kind, number[]> = {
  read_charge: [],
  read_customer: [],
  refund_small: [],
  refund_large: [],
  decision: [],
  review: [],
};
const errors: string[] = [];
let requests = 0;

const dir = mkdtempSync(join(tmpdir(), 'airlock-soak-'));
const sandbox = await startSandbox();
const data = join(dir, 'airlock.db');
const setup = await openSqliteStore(data);
const keys: string[] = [];
for (let i = 0; i < agents; i++) keys.push((await createAgentKey(setup, `soak-agent-${i}`)).key);
const reviewerTokens = [
  (await createReviewer(setup, 'soak-a@example.com')).token,
  (await createReviewer(setup, 'soak-b@example.com')).token,
];
await setup.close();

const nodeArgs = snapshotDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`] : [];
if (snapshotDir) mkdirSync(snapshotDir, { recursive: true });
const server = await spawnServe({
  ready: 'readyz',
  nodeArgs,
  env: { AIRLOCK_DATA: data, STRIPE_API_BASE: sandbox.url, AIRLOCK_LOG_LEVEL: 'warn' },
  outputLimit: 20_000,
});
const url = server.url;

const dispatcher = new Agent({ connections: agents + 8 });
const direct = { authorization: 'Bearer sk_test_soak', 'content-type': 'application/x-www-form-urlencoded' };
async function seed(path: string, body: string): Promise<string> {
  const res = await request(`${sandbox.url}${path}`, { method: 'POST', headers: direct, body });
  return ((await res.body.json()) as { id: string }).id;
}
const charges: string[] = [];
const customers: string[] = [];
for (let i = 0; i < 20; i++)
  charges.push(await seed('/v1/charges', 'amount=999999999&currency=usd&source=tok_visa'));
for (let i = 0; i < 20; i++) customers.push(await seed('/v1/customers', `email=soak-${i}%40example.com`));

interface Sample {
  t: number;
  rssMb: number;
  heapMb: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers and the like). */
  externalMb: number;
  series: number;
}
const samples: Sample[] = [];
const started = Date.now();
const end = started + seconds * 1000;

function metric(text: string, name: string): number {
  const m = text.match(new RegExp(`^${name} ([0-9.e+]+)`, 'm'));
  return m ? Number(m[1]) / 1e6 : Number.NaN;
}

/** Memory as the child reports it, and how many metric series it exposes (labels growing per id would show here). */
async function sampleMemory(): Promise<Sample> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let rssMb = metric(text, 'process_resident_memory_bytes');
  try {
    // /proc is the kernel's own figure when there is one.
    const status = readFileSync(`/proc/${server.pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    if (status) rssMb = (Number(status[1]) * 1024) / 1e6;
  } catch {}
  const series = text.split('\n').filter((l) => l && !l.startsWith('#')).length;
  return {
    t: (Date.now() - started) / 1000,
    rssMb,
    heapMb: metric(text, 'nodejs_heap_size_used_bytes'),
    externalMb: metric(text, 'nodejs_external_memory_bytes'),
    series,
  };
}

async function call(
  kind: Kind,
  path: string,
  init: { method?: string; headers: Record<string, string>; body?: string },
  expect: (status: number) => boolean,
): Promise<string | null> {
  const t0 = performance.now();
  try {
    const res = await request(`${url}${path}`, {
      ...init,
      method: (init.method ?? 'GET') as 'GET',
      dispatcher,
    });
    const text = await res.body.text();
    latency[kind].push(performance.now() - t0);
    requests++;
    if (!expect(res.statusCode)) {
      errors.push(`${kind} ${res.statusCode} ${text.slice(0, 160)}`);
      return null;
    }
    return text;
  } catch (err) {
    errors.push(`${kind} ${(err as Error).message}`);
    return null;
  }
}

async function agentLoop(i: number): Promise<void> {
  const auth = `Bearer ${keys[i]}`;
  const form = { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' };
  for (let n = 0; Date.now() < end; n++) {
    const roll = Math.random();
    const charge = charges[(i + n) % charges.length]!;
    if (roll < 0.3) {
      await call(
        'read_charge',
        `/v1/charges/${charge}`,
        { headers: { authorization: auth } },
        (s) => s === 200,
      );
    } else if (roll < 0.45) {
      const customer = customers[(i + n) % customers.length]!;
      await call(
        'read_customer',
        `/v1/customers/${customer}`,
        { headers: { authorization: auth } },
        (s) => s === 200,
      );
    } else if (roll < 0.75) {
      await call(
        'refund_small',
        '/v1/refunds',
        {
          method: 'POST',
          headers: { ...form, 'idempotency-key': `soak-${i}-${n}` },
          body: `charge=${charge}&amount=100`,
        },
        (s) => s === 200,
      );
    } else if (roll < 0.85) {
      // Held for review: 403 approval_required, then a reviewer decides.
      await call(
        'refund_large',
        '/v1/refunds',
        {
          method: 'POST',
          headers: { ...form, 'idempotency-key': `soak-${i}-${n}` },
          body: `charge=${charge}&amount=60000`,
        },
        (s) => s === 403,
      );
    } else {
      const amount = roll < 0.95 ? 100 : 60000;
      await call(
        'decision',
        '/api/decisions',
        {
          method: 'POST',
          headers: { authorization: auth, 'content-type': 'application/json' },
          body: JSON.stringify({
            intent: { kind: 'refund.create', amount, currency: 'usd', metadata: { order: `o-${i}-${n}` } },
            summary: 'soak',
          }),
        },
        (s) => s === 200,
      );
    }
  }
}

let approved = 0;
let rejected = 0;
/** Approves about 70 % of holds and rejects the rest, reading the queue as it comes. */
async function reviewerLoop(r: number): Promise<void> {
  const headers = { authorization: `Bearer ${reviewerTokens[r]}`, 'content-type': 'application/json' };
  while (Date.now() < end) {
    const text = await call(
      'review',
      '/api/actions?status=awaiting_approval&limit=20',
      { headers },
      (s) => s === 200,
    );
    const list = text ? ((JSON.parse(text) as { data: { id: string }[] }).data ?? []) : [];
    // Two reviewers take alternate ends of the queue so they rarely race for one action.
    const mine = r === 0 ? list : [...list].reverse();
    for (const { id } of mine.slice(0, 10)) {
      const approve = Math.random() < 0.7;
      const body = await call(
        'review',
        `/api/actions/${id}/${approve ? 'approve' : 'reject'}`,
        { method: 'POST', headers, body: '{"note":"soak"}' },
        // 409: the other reviewer decided first.
        (s) => s === 200 || s === 409,
      );
      if (body && !body.includes('"error"')) approve ? approved++ : rejected++;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function snapshot(label: string): Promise<void> {
  if (!snapshotDir) return;
  server.child.kill('SIGUSR2');
  // Writing a snapshot stops the child's event loop; wait for it to answer again.
  await new Promise((r) => setTimeout(r, 2000));
  await fetch(`${url}/readyz`).catch(() => null);
  console.log(`heap snapshot (${label}) written to ${snapshotDir}`);
}

const sampler = (async () => {
  let snappedStart = false;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, sampleMs));
    const s = await sampleMemory().catch(() => null);
    if (!s) continue;
    samples.push(s);
    console.log(
      `t=${s.t.toFixed(0)}s rss=${s.rssMb.toFixed(1)}MB heap=${s.heapMb.toFixed(1)}MB external=${s.externalMb.toFixed(1)}MB series=${s.series} requests=${requests} errors=${errors.length}`,
    );
    if (!snappedStart && s.t * 1000 >= warmupMs) {
      snappedStart = true;
      await snapshot('after warm-up');
    }
  }
})();

console.log(
  `soak: ${seconds}s, ${agents} agents, sampling every ${sampleMs / 1000}s, warm-up ${warmupMs / 1000}s`,
);
await Promise.all([
  ...Array.from({ length: agents }, (_, i) => agentLoop(i)),
  reviewerLoop(0),
  reviewerLoop(1),
  sampler,
]);
await snapshot('end');
const last = await sampleMemory();

/** Least-squares slope in MB per minute. */
function slope(points: { t: number; y: number }[]): number {
  if (points.length < 2) return Number.NaN;
  const n = points.length;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return (num / den) * 60;
}
const afterWarmup = samples.filter((s) => s.t * 1000 >= warmupMs);
const first = afterWarmup[0] ?? samples[0] ?? last;
const secondHalf = samples.filter((s) => s.t >= seconds / 2);
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? +sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1) : 0;
}

await server.stop();
await dispatcher.close();
const check = await openSqliteStore(data);
const ledger = await verifyLedger(check);
const actionCount = (await allActions(check)).length;
await check.close();
await sandbox.close();
rmSync(dir, { recursive: true, force: true });

const round = (x: number) => +x.toFixed(2);
const report = {
  seconds,
  agents,
  requests,
  errors: errors.length,
  errorSamples: errors.slice(0, 5),
  actions: actionCount,
  reviews: { approved, rejected },
  latencyMs: Object.fromEntries(
    Object.entries(latency).map(([k, v]) => [
      k,
      { n: v.length, p50: quantile(v, 0.5), p99: quantile(v, 0.99) },
    ]),
  ),
  p99Ms: quantile(Object.values(latency).flat(), 0.99),
  memory: {
    start: {
      atSeconds: round(first.t),
      rssMb: round(first.rssMb),
      heapMb: round(first.heapMb),
      externalMb: round(first.externalMb),
      series: first.series,
    },
    end: {
      atSeconds: round(last.t),
      rssMb: round(last.rssMb),
      heapMb: round(last.heapMb),
      externalMb: round(last.externalMb),
      series: last.series,
    },
    secondHalfSlopeMbPerMin: {
      rss: round(slope(secondHalf.map((s) => ({ t: s.t, y: s.rssMb })))),
      heap: round(slope(secondHalf.map((s) => ({ t: s.t, y: s.heapMb })))),
      external: round(slope(secondHalf.map((s) => ({ t: s.t, y: s.externalMb })))),
    },
    peakRssMb: round(Math.max(...samples.map((s) => s.rssMb), last.rssMb)),
  },
  ledgerOk: ledger.ok,
};
console.log(JSON.stringify(report, null, 2));
const ok = report.errors === 0 && report.ledgerOk;
console.log(ok ? 'soak: no errors, ledger verifies' : 'soak: FAILED');
if (!ok) process.exitCode = 1;
