// The processes a benchmark runs against, each in its own process: the instant upstream, the bare Node proxy,
// nginx, Airlock, and the load generator.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnServe } from '../harness/serve-process.ts';
import type { LoadResult, LoadSpec } from './loadgen.ts';

export const ROOT = join(import.meta.dirname, '..');

export interface Running {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/** The last lines each child printed, to explain a failure. */
const tails = new WeakMap<ChildProcess, () => string>();
export const outputOf = (child: ChildProcess): string => tails.get(child)?.() ?? '';

const live = new Set<ChildProcess>();
// A benchmark stopped halfway (Ctrl-C, an error) must not leave servers behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const c of live) c.kill('SIGTERM');
    process.exit(130);
  });
}
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        live.delete(child);
        resolve();
      });
      child.kill('SIGTERM');
    });
}

/** Starts `node args`, resolving once a line of its stdout matches `ready`. */
export function startNode(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  opts: { ipc?: boolean } = {},
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: opts.ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
  });
  live.add(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d;
      const m = out.match(ready);
      if (m) {
        child.stdout!.off('data', onData);
        // Keep draining so a chatty child never blocks on a full pipe; keep the tail for error reports.
        let tail = out.slice(-8000);
        tails.set(child, () => tail);
        child.stdout!.on('data', (more: Buffer) => {
          tail = (tail + more.toString()).slice(-8000);
        });
        resolve({ child, match: m });
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      live.delete(child);
      reject(new Error(`${args.join(' ')} exited ${code}: ${out.slice(-2000)}`));
    });
  });
}

const URL_LINE = /"url":"(http[^"]+)"/;

export async function startInstantUpstream(): Promise<Running> {
  const { child, match } = await startNode(['--import', 'tsx', 'bench/instant-upstream.ts'], {}, URL_LINE, {
    ipc: true,
  });
  return { child, url: match[1]!, stop: stopper(child) };
}

export async function startBareProxy(upstream: string): Promise<Running> {
  const { child, match } = await startNode(
    ['--import', 'tsx', 'bench/bare-proxy.ts'],
    { UPSTREAM: upstream },
    URL_LINE,
  );
  return { child, url: match[1]!, stop: stopper(child) };
}

export function nginxPath(): string | null {
  for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {}
  }
  return null;
}

/**
 * nginx with proxy_pass to the upstream over kept-alive connections, one worker process: the same single core
 * a Node process gets, so it compares like with like.
 */
export async function startNginx(binary: string, upstream: string, dir: string): Promise<Running> {
  const prefix = join(dir, 'nginx');
  mkdirSync(prefix, { recursive: true });
  // Workers run as nobody when started by root; they must reach the temp paths.
  chmodSync(dir, 0o755);
  chmodSync(prefix, 0o777);
  const port = await freePort();
  const up = new URL(upstream);
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 1000000;
  upstream stripe { server ${up.hostname}:${up.port}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://stripe;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn(binary, ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  live.add(child);
  const url = `http://127.0.0.1:${port}`;
  // Ready when it answers.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/v1/customers/cus_ping`);
      await res.text();
      if (res.ok) return { child, url, stop: stopper(child) };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('nginx did not answer within 10 s');
}

export interface AirlockOptions {
  data: string;
  upstream: string;
  policy: string;
  /** Writes a V8 CPU profile of the Airlock process into this directory. */
  profileDir?: string | undefined;
  /** PostgreSQL instead of the SQLite file at `data`. */
  databaseUrl?: string;
  /** `serve --workers N` (PostgreSQL only); absent runs one process. */
  workers?: number;
  /** More of Airlock's environment (AIRLOCK_SQLITE_WRITER=worker, …). */
  env?: Record<string, string>;
}

function airlockEnv(o: AirlockOptions): Record<string, string> {
  return {
    AIRLOCK_DATA: o.data,
    STRIPE_API_BASE: o.upstream,
    STRIPE_SECRET_KEY: 'sk_test_bench',
    AIRLOCK_POLICY: o.policy,
    AIRLOCK_LOG_LEVEL: 'warn',
    AIRLOCK_LOG_FORMAT: 'json',
    AIRLOCK_METRICS_ENABLED: 'true',
    // One key at full speed: the per-key limit (default 100/min) would measure the limiter, not the proxy.
    AIRLOCK_RATE_LIMIT_PER_MINUTE: '100000000',
    ...(o.databaseUrl ? { DATABASE_URL: o.databaseUrl } : {}),
    ...o.env,
  };
}

async function cli(o: AirlockOptions, args: string[], pick: RegExp): Promise<string> {
  const { child, match } = await startNode(['bin/airlock.mjs', ...args], airlockEnv(o), pick);
  await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  return match[1]!;
}

export const createAgentKey = (o: AirlockOptions, agent: string) =>
  cli(o, ['keys', 'create', '--agent', agent, '--json'], /"key": "(ak_[^"]+)"/);

export const createReviewerToken = (o: AirlockOptions, email: string) =>
  cli(o, ['reviewers', 'create', '--email', email, '--json'], /"token": "([^"]+)"/);

export async function startAirlock(o: AirlockOptions): Promise<Running> {
  const airlock = await spawnServe({
    nodeArgs: o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : [],
    args: o.workers ? ['--workers', String(o.workers)] : [],
    env: { ...airlockEnv(o), AIRLOCK_LOG_LEVEL: 'info' },
    stderr: 'inherit',
    timeoutMs: Number.POSITIVE_INFINITY,
    outputLimit: 8000,
    onSpawn(child) {
      live.add(child);
      child.once('exit', () => live.delete(child));
    },
  });
  tails.set(airlock.child, airlock.output);
  return { child: airlock.child, url: airlock.url, stop: stopper(airlock.child) };
}

/** Runs one load in a fresh generator process and returns what it measured. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/loadgen.ts', JSON.stringify(spec)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  live.add(child);
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  live.delete(child);
  if (code !== 0) throw new Error(`load generator exited ${code}`);
  return JSON.parse(out.trim().split('\n').pop()!) as LoadResult;
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, from /proc (Linux): to divide by the requests it served. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces; the fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
