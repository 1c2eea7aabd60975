// `airlock serve --workers N`: a node:cluster primary forks N workers that share the listening port. Each worker is
// an ordinary Airlock instance on the one PostgreSQL database, so what already holds across instances (dispatch
// leases, the agent advisory locks, the ledger head row, LISTEN/NOTIFY) holds across workers. The primary serves no
// request: it migrates once before forking, restarts a worker that dies, gathers metrics and passes signals on.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { serveClusterMetrics } from './metrics/cluster.ts';

/** The environment variable that tells a worker its slot, 1..N; a restarted worker takes over its slot. */
const SLOT_ENV = 'AIRLOCK_WORKER';

export interface SupervisorOptions {
  workers: number;
  log: Logger;
  /** The first restart waits this long; each further crash of the same slot in the window doubles it. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A slot dying more than this many times within crashWindowMs stops the group with exit code 1. */
  maxCrashes?: number;
  crashWindowMs?: number;
  /** After SIGTERM, how long workers get to finish before they are killed. */
  stopTimeoutMs?: number;
}

/** This process's slot when it is a worker of `serve --workers N`; null in a single process. */
export function workerSlot(): number | null {
  if (!cluster.isWorker) return null;
  const slot = Number(process.env[SLOT_ENV]);
  return Number.isInteger(slot) && slot > 0 ? slot : null;
}

/**
 * Runs the primary until it is stopped (SIGTERM, SIGINT) or a worker keeps crashing; resolves with the exit code.
 * Workers run the same command line, and `serve` starts Airlock in them.
 */
export function superviseWorkers(o: SupervisorOptions): Promise<number> {
  const backoffMs = o.backoffMs ?? 250;
  const maxBackoffMs = o.maxBackoffMs ?? 10_000;
  const maxCrashes = o.maxCrashes ?? 5;
  const crashWindowMs = o.crashWindowMs ?? 60_000;
  const stopTimeoutMs = o.stopTimeoutMs ?? 30_000;
  const { log } = o;

  const slotOf = new Map<Worker, number>();
  const crashes = new Map<number, number[]>();
  const restarts = new Set<NodeJS.Timeout>();
  let listening = 0;
  let stopping = false;
  let exitCode = 0;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  serveClusterMetrics();

  const fork = (slot: number) => {
    const worker = cluster.fork({ [SLOT_ENV]: String(slot) });
    slotOf.set(worker, slot);
    worker.once('listening', (address) => {
      // The first listener of a worker is its main port; log once every worker has come up the first time.
      if (++listening === o.workers) {
        log.info({ workers: o.workers, port: address.port }, 'every worker is listening');
      }
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    const slot = slotOf.get(worker);
    slotOf.delete(worker);
    if (slot === undefined) return;
    const pid = worker.process.pid;
    if (stopping) {
      if (slotOf.size === 0) finish(exitCode);
      return;
    }
    const now = Date.now();
    const recent = (crashes.get(slot) ?? []).filter((t) => now - t < crashWindowMs);
    recent.push(now);
    crashes.set(slot, recent);
    if (recent.length > maxCrashes) {
      log.error(
        { worker: slot, worker_pid: pid, code, signal, crashes: recent.length, window_ms: crashWindowMs },
        'a worker keeps dying; stopping every worker',
      );
      exitCode = 1;
      stop('crashes');
      return;
    }
    const delay = Math.min(backoffMs * 2 ** (recent.length - 1), maxBackoffMs);
    log.warn(
      { worker: slot, worker_pid: pid, code, signal, restart_in_ms: delay },
      'worker exited; restarting it',
    );
    const timer = setTimeout(() => {
      restarts.delete(timer);
      if (!stopping) fork(slot);
    }, delay);
    restarts.add(timer);
  });

  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    for (const timer of restarts) clearTimeout(timer);
    restarts.clear();
    log.info({ reason, workers: slotOf.size }, 'stopping workers');
    if (slotOf.size === 0) {
      finish(exitCode);
      return;
    }
    // Each worker closes as a single instance does on SIGTERM: stops taking requests, finishes what it holds.
    for (const worker of slotOf.keys()) worker.process.kill('SIGTERM');
    setTimeout(() => {
      for (const worker of slotOf.keys()) {
        log.warn(
          { worker: slotOf.get(worker), worker_pid: worker.process.pid },
          'worker did not stop; killing it',
        );
        worker.process.kill('SIGKILL');
      }
    }, stopTimeoutMs).unref();
  };

  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A policy reload reaches every worker, as it reaches a single process.
  process.on('SIGHUP', () => {
    for (const worker of slotOf.keys()) worker.process.kill('SIGHUP');
  });

  log.info({ workers: o.workers }, 'starting workers');
  for (let slot = 1; slot <= o.workers; slot++) fork(slot);
  return done;
}
