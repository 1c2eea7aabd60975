// `airlock serve` as a real child process, for the runs that need one of its own: to SIGKILL and restart it, read
// its memory, profile it, or prove the real binary works. Used by the reliability runs, the benchmarks and tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..');
export const BIN = join(ROOT, 'bin', 'airlock.mjs');

const LISTENING = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"Airlock is listening"/;

export interface ServeOptions {
  /** On top of the parent's environment and the defaults (log level info, a rate limit of a million a minute). */
  env?: Record<string, string>;
  /** Node flags placed before the script, such as --cpu-prof. */
  nodeArgs?: string[];
  /** Options of `serve` itself, such as ['--workers', '2']. */
  args?: string[];
  /**
   * How to tell it is up. 'log' waits for the "Airlock is listening" line (so the log level must be info or lower)
   * and takes the URL from it; 'readyz' asks GET /readyz every 100 ms, for runs that log only warnings.
   */
  ready?: 'log' | 'readyz';
  /** Where to listen. By default the server picks a port ('log'), or a free one is picked beforehand ('readyz'). */
  port?: number;
  /** Gives up after this long and kills the child; Infinity waits as long as it takes. */
  timeoutMs?: number;
  /** Keeps only the last this many characters of output, for long runs; by default all of it. */
  outputLimit?: number;
  /** 'inherit' passes the child's stderr through rather than keeping it in output(). */
  stderr?: 'pipe' | 'inherit';
  /** Called as soon as the child exists, before it is ready: to clean it up if the parent is stopped meanwhile. */
  onSpawn?: (child: ChildProcess) => void;
}

export interface ServeProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  port: number;
  /** What the child has written so far, stdout and stderr together. */
  output(): string;
  /** Sends `signal` and waits until the child has exited; does nothing if it already has. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/** Starts `airlock serve` and resolves once it is ready; rejects, with its output, if it exits or times out first. */
export async function spawnServe(opts: ServeOptions = {}): Promise<ServeProcess> {
  const ready = opts.ready ?? 'log';
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const limit = opts.outputLimit ?? Number.POSITIVE_INFINITY;
  const port = opts.port ?? (ready === 'readyz' ? await freePort() : 0);
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), BIN, 'serve', ...(opts.args ?? [])], {
    cwd: ROOT,
    env: {
      ...process.env,
      AIRLOCK_LOG_LEVEL: 'info',
      // These runs drive a few keys far past the default of 100 a minute.
      AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000',
      ...opts.env,
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', opts.stderr ?? 'pipe'],
  });
  opts.onSpawn?.(child);
  let out = '';
  const keep = (d: Buffer) => {
    out += d;
    if (out.length > limit) out = out.slice(-limit);
  };
  // Registered before any readiness check, so a check sees the chunk that arrived.
  child.stdout!.on('data', keep);
  child.stderr?.on('data', keep);
  const output = () => out;

  let url: string;
  try {
    url =
      ready === 'log'
        ? await listeningUrl(child, output, timeoutMs)
        : await answersReadyz(child, `http://127.0.0.1:${port}`, output, timeoutMs);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    child,
    pid: child.pid!,
    url,
    port: Number(new URL(url).port),
    output,
    async stop(signal = 'SIGTERM') {
      if (exited(child)) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await gone;
    },
  };
}

function listeningUrl(child: ChildProcess, output: () => string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => settle(new Error(`airlock did not start:\n${output()}`)), timeoutMs)
      : undefined;
    const onData = () => {
      const m = output().match(LISTENING);
      if (m) settle(null, m[1]);
    };
    const onExit = (code: number | null) =>
      settle(new Error(`airlock exited with ${code} before listening:\n${output()}`));
    function settle(err: Error | null, url?: string) {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(url!);
    }
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

async function answersReadyz(
  child: ChildProcess,
  url: string,
  output: () => string,
  timeoutMs: number,
): Promise<string> {
  for (let i = 0; ; i++) {
    const ok = await fetch(`${url}/readyz`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return url;
    if (exited(child))
      throw new Error(`airlock exited with ${child.exitCode} before it was ready:\n${output()}`);
    if (i > timeoutMs / 100) throw new Error(`airlock did not start:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
