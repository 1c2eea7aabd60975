// Allow-path throughput and latency through Airlock against the sandbox directly, measured in one run.
// Usage: npm run bench [-- --seconds 10 --concurrency 16]
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '16' } },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ROOT = join(import.meta.dirname, '..');

function startChild(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(ready);
      if (m) resolve({ child, match: m });
    });
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
}

interface Result {
  label: string;
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

async function load(label: string, url: string, key: string, chargeId: string): Promise<Result> {
  const dispatcher = new Agent({ connections: CONCURRENCY });
  const latencies: number[] = [];
  let errors = 0;
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  async function worker(w: number) {
    while (performance.now() < end) {
      const t0 = performance.now();
      const res = await request(`${url}/v1/refunds`, {
        method: 'POST',
        dispatcher,
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/x-www-form-urlencoded',
          'idempotency-key': `bench-${label}-${w}-${n++}`,
        },
        body: `charge=${chargeId}&amount=100&metadata[order]=${n}`,
      });
      await res.body.text();
      latencies.push(performance.now() - t0);
      if (res.statusCode !== 200) errors++;
    }
  }
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  const elapsed = (performance.now() - start) / 1000;
  await dispatcher.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return {
    label,
    requests: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50: q(0.5),
    p99: q(0.99),
  };
}

async function createCharge(sandboxUrl: string): Promise<string> {
  const res = await request(`${sandboxUrl}/v1/charges`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk_test_bench', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'amount=99999999&currency=usd&source=tok_visa',
  });
  return ((await res.body.json()) as { id: string }).id;
}

const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-'));
const children: ChildProcess[] = [];
try {
  const sb = await startChild(['--import', 'tsx', 'bench/sandbox-process.ts'], {}, /"url":"(http[^"]+)"/);
  children.push(sb.child);
  const sandboxUrl = sb.match[1]!;
  const env = {
    AIRLOCK_DATA: join(dir, 'airlock.db'),
    STRIPE_API_BASE: sandboxUrl,
    AIRLOCK_LOG_LEVEL: 'warn',
    // One key at full speed: the per-key limit (default 100/min) would measure the limiter, not the proxy.
    AIRLOCK_RATE_LIMIT_PER_MINUTE: '100000000',
  };
  const keyOut = await startChild(
    ['bin/airlock.mjs', 'keys', 'create', '--agent', 'bench', '--json'],
    env,
    /"key": "(ak_[^"]+)"/,
  );
  const agentKey = keyOut.match[1]!;
  const al = await startChild(
    // AIRLOCK_PROFILE_DIR=dir writes a V8 CPU profile of the Airlock process there (open it in Chrome DevTools).
    [
      ...(process.env['AIRLOCK_PROFILE_DIR']
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env['AIRLOCK_PROFILE_DIR']}`]
        : []),
      'bin/airlock.mjs',
      'serve',
    ],
    { ...env, PORT: '0', AIRLOCK_LOG_LEVEL: 'info' },
    /"url":"(http[^"]+)"/,
  );
  children.push(al.child);
  const airlockUrl = al.match[1]!;

  const bp = await startChild(
    ['--import', 'tsx', 'bench/bare-proxy.ts'],
    { UPSTREAM: sandboxUrl },
    /"url":"(http[^"]+)"/,
  );
  children.push(bp.child);
  const bareUrl = bp.match[1]!;

  const warm = await createCharge(sandboxUrl);
  await load('warmup-direct', sandboxUrl, 'sk_test_bench', warm);
  const direct = await load('direct', sandboxUrl, 'sk_test_bench', await createCharge(sandboxUrl));
  const bare = await load('bare', bareUrl, 'sk_test_bench', await createCharge(sandboxUrl));
  const through = await load('airlock', airlockUrl, agentKey, await createCharge(sandboxUrl));

  const report = {
    at: new Date().toISOString(),
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    direct,
    bare_proxy: bare,
    airlock: through,
    ratio_rps: through.rps / direct.rps,
    ratio_rps_vs_bare_proxy: through.rps / bare.rps,
    added_p50_ms: through.p50 - direct.p50,
    added_p99_ms: through.p99 - direct.p99,
  };
  const fmt = (r: Result) =>
    `${r.label.padEnd(8)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(2).padStart(7)} ms  p99 ${r.p99.toFixed(2).padStart(7)} ms  (${r.requests} requests, ${r.errors} non-200)`;
  process.stdout.write(
    `\nAllow path: POST /v1/refunds ($1), ${CONCURRENCY} concurrent clients, ${SECONDS}s each\n${fmt(direct)}\n${fmt(bare)}\n${fmt(through)}\n` +
      `through Airlock: ${(report.ratio_rps_vs_bare_proxy * 100).toFixed(1)}% of the bare Node proxy's throughput, ${(report.ratio_rps * 100).toFixed(1)}% of direct; +${report.added_p50_ms.toFixed(2)} ms p50, +${report.added_p99_ms.toFixed(2)} ms p99\n`,
  );
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'proxy.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (through.errors > 0 || direct.errors > 0) process.exitCode = 1;
} finally {
  for (const c of children) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
