import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BIN, ROOT, type ServeProcess, spawnServe } from '../../harness/serve-process.ts';

export { ROOT };

const run = promisify(execFile);

export type ServerProcess = ServeProcess;

/** Starts `airlock serve` as a real child process and resolves once it logs where it listens. */
export function spawnAirlock(env: Record<string, string>, timeoutMs = 30_000): Promise<ServerProcess> {
  return spawnServe({ env, timeoutMs });
}

export function stopProcess(p: ServerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return p.stop(signal);
}

/** Runs the CLI and returns its exit code and output; never throws on a non-zero exit. */
export async function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, AIRLOCK_LOG_LEVEL: 'silent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
