// Real store outages for tests and bench/outage.ts: a private PostgreSQL cluster that can be stopped and started
// again, and a small tmpfs that can be filled until SQLite gets SQLITE_FULL. Both need root (we run as root here).
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import Stripe from 'stripe';
import { freePort } from '../../harness/serve-process.ts';

const run = promisify(execFile);
const PG_BIN = process.env['AIRLOCK_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

/** Why a private PostgreSQL cluster cannot run here, or null when it can. */
export function privatePostgresProblem(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root, so initdb cannot run as the postgres user';
  for (const bin of ['initdb', 'pg_ctl']) {
    if (!existsSync(join(PG_BIN, bin))) return `${join(PG_BIN, bin)} is missing (set AIRLOCK_PG_BIN)`;
  }
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    return 'there is no postgres user to run the cluster as';
  }
  return null;
}

export interface PrivatePostgres {
  port: number;
  /** A URL for one database of this cluster (created by `createDatabase`), or the `postgres` database. */
  url(database?: string): string;
  createDatabase(name: string): Promise<void>;
  /** `pg_ctl stop -m immediate`: every connection dies at once, as in a crash of the database server. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A PostgreSQL cluster of our own in a temporary directory, on a free port: stopping it never touches the shared
 * server the other tests use. Runs as the postgres user; the socket stays in the temporary directory.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pg-'));
  chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), 0);
  const data = join(dir, 'data');
  const asPostgres = (bin: string, args: string[]) =>
    run('runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...args], { cwd: dir });
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  // fsync=off: after a crash PostgreSQL first syncs its whole data directory (about 3 s here); a crash of the server
  // process, which is what `stop -m immediate` is, loses nothing the kernel holds either way.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=60 -c fsync=off`;
  const start = () =>
    asPostgres('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', 'start']);
  await start();
  let running = true;
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    async createDatabase(name) {
      await run(join(PG_BIN, 'psql'), [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-c',
        `create database ${name}`,
      ]);
    },
    async stop() {
      await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async close() {
      if (running) await asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Why a tmpfs cannot be mounted here, or null when it can (tried for real, then unmounted). */
export function smallDiskProblem(): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-disk-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount -t tmpfs failed: ${((err as { stderr?: Buffer }).stderr ?? '').toString().trim() || (err as Error).message}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface SmallDisk {
  dir: string;
  /**
   * Fills the disk with a ballast file until writes fail with ENOSPC. The SQLite file's write-ahead log is
   * checkpointed and truncated first, so the store's next commit needs new space rather than reusing the log.
   */
  fill(sqliteFile: string): number;
  /** Removes the ballast: the disk has room again. */
  drain(): void;
  close(): void;
}

export function mountSmallDisk(sizeMb: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir]);
  const ballast = join(dir, 'ballast');
  return {
    dir,
    fill(sqliteFile) {
      const db = new Database(sqliteFile);
      try {
        // No waiting: this runs on the event loop the store's own transactions need to finish.
        db.pragma('busy_timeout = 0');
        db.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        db.close();
      }
      const fd = openSync(ballast, 'a');
      let bytes = 0;
      try {
        for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
          const chunk = Buffer.alloc(size);
          try {
            for (;;) bytes += writeSync(fd, chunk);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          }
        }
      } finally {
        closeSync(fd);
      }
      return bytes;
    },
    drain() {
      rmSync(ballast, { force: true });
    },
    close() {
      try {
        execFileSync('umount', ['-l', dir]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** One HTTP answer to one try of a logical refund. */
export interface Attempt {
  start: number;
  end: number;
  status: number;
  code: string | null;
  type: string | null;
  shouldRetry: string | null;
  action: string | null;
}

/** One refund an agent means to make, tried under one Idempotency-Key until Airlock gives a definitive answer. */
export interface LogicalRefund {
  key: string;
  amount: number;
  attempts: Attempt[];
  outcome: 'refunded' | 'held' | 'unfinished';
  refund: string | null;
  action: string | null;
}

export interface TrafficOptions {
  airlockPort: number;
  agentKey: string;
  /** The official client straight to the sandbox, for seeding charges. */
  direct: Stripe;
  agents: number;
  /** Share of refunds above the starter policy's $500 limit, held for review. */
  heldShare?: number;
  /** Pause between tries of one refund while Airlock answers "try again". */
  retryMs?: number;
}

/**
 * Agents with the official `stripe` client, each refunding charges in a loop. A 503 (store unavailable) or a 409
 * (in progress) is retried with the same Idempotency-Key, as an agent should; anything else is definitive.
 */
export class RefundTraffic {
  readonly refunds: LogicalRefund[] = [];
  #running = false;
  #loops: Promise<void>[] = [];
  readonly #client: Stripe;

  constructor(readonly options: TrafficOptions) {
    this.#client = new Stripe(options.agentKey, {
      host: '127.0.0.1',
      port: options.airlockPort,
      protocol: 'http',
      maxNetworkRetries: 0,
    });
  }

  start(): void {
    this.#running = true;
    for (let n = 0; n < this.options.agents; n++) this.#loops.push(this.#loop(n));
  }

  /** Stops starting new refunds and waits for those under way to get a definitive answer. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  async #loop(agent: number): Promise<void> {
    let n = 0;
    while (this.#running) {
      const held = Math.random() < (this.options.heldShare ?? 0.1);
      const amount = held ? 60_000 : 100;
      const charge = await this.options.direct.charges.create({
        amount: 100_000,
        currency: 'usd',
        source: 'tok_visa',
      });
      await this.refund(charge.id, amount, `outage-${process.pid}-${agent}-${n++}-${Date.now()}`);
    }
  }

  /** One logical refund, tried until definitive (or until `giveUpAt`). */
  async refund(
    charge: string,
    amount: number,
    key: string,
    giveUpAt = Number.POSITIVE_INFINITY,
  ): Promise<LogicalRefund> {
    const r: LogicalRefund = { key, amount, attempts: [], outcome: 'unfinished', refund: null, action: null };
    this.refunds.push(r);
    while (Date.now() < giveUpAt) {
      const start = Date.now();
      try {
        const refund = await this.#client.refunds.create({ charge, amount }, { idempotencyKey: key });
        r.attempts.push({
          start,
          end: Date.now(),
          status: 200,
          code: null,
          type: null,
          shouldRetry: null,
          action: null,
        });
        r.outcome = 'refunded';
        r.refund = refund.id;
        r.action = refund.metadata?.['airlock_action'] ?? null;
        return r;
      } catch (err) {
        const e = err as {
          statusCode?: number;
          raw?: { code?: string; type?: string; airlock_action?: string };
          headers?: Record<string, string>;
        };
        const attempt: Attempt = {
          start,
          end: Date.now(),
          status: e.statusCode ?? 0,
          code: e.raw?.code ?? null,
          type: e.raw?.type ?? null,
          shouldRetry: e.headers?.['stripe-should-retry'] ?? null,
          action: e.raw?.airlock_action ?? null,
        };
        r.attempts.push(attempt);
        if (attempt.action) r.action = attempt.action;
        if (attempt.code === 'approval_required') {
          r.outcome = 'held';
          return r;
        }
        if (attempt.status !== 503 && attempt.status !== 409) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.retryMs ?? 50));
    }
    return r;
  }
}

export interface ExactlyOnceReport {
  /** Refunds in the sandbox made through Airlock, and those carrying no action id (must be 0). */
  upstreamRefunds: number;
  untagged: number;
  /** Actions with more than one refund upstream. */
  duplicates: number;
  /** Refunds an agent was given that the sandbox or the store does not hold as that action's one refund. */
  lost: number;
  /** Refund requests the sandbox received whose Idempotency-Key names no recorded action. */
  unledgered: number;
  /** Completed refund actions without their refund upstream. */
  missingUpstream: number;
}

/** Compares what agents were told, what the store holds and what the sandbox did. */
export function exactlyOnce(
  refunds: LogicalRefund[],
  actions: { id: string; status: string; kind: string; response_body: string | null }[],
  upstream: Record<string, unknown>[],
  requests: { method: string; path: string; idempotencyKey: string | null }[],
  seedingKeys: (key: string | null) => boolean = () => false,
): ExactlyOnceReport {
  const byAction = new Map<string, string[]>();
  let untagged = 0;
  for (const refund of upstream) {
    const action = (refund['metadata'] as Record<string, string> | undefined)?.['airlock_action'];
    if (!action) {
      untagged++;
      continue;
    }
    byAction.set(action, [...(byAction.get(action) ?? []), String(refund['id'])]);
  }
  const stored = new Map(actions.map((a) => [a.id, a]));
  let lost = 0;
  for (const r of refunds) {
    if (r.outcome !== 'refunded') continue;
    const ids = r.action ? byAction.get(r.action) : undefined;
    const row = r.action ? stored.get(r.action) : undefined;
    const recorded = row?.response_body ? (JSON.parse(row.response_body) as { id?: string }).id : undefined;
    if (ids?.length !== 1 || ids[0] !== r.refund || row?.status !== 'completed' || recorded !== r.refund)
      lost++;
  }
  let missingUpstream = 0;
  for (const a of actions) {
    if (a.kind === 'refund.create' && a.status === 'completed' && (byAction.get(a.id)?.length ?? 0) !== 1)
      missingUpstream++;
  }
  let unledgered = 0;
  for (const q of requests) {
    if (q.method !== 'POST' || q.path !== '/v1/refunds' || seedingKeys(q.idempotencyKey)) continue;
    const id = q.idempotencyKey?.startsWith('airlock-') ? q.idempotencyKey.slice('airlock-'.length) : null;
    if (!id || !stored.has(id)) unledgered++;
  }
  return {
    upstreamRefunds: upstream.length,
    untagged,
    duplicates: [...byAction.values()].filter((ids) => ids.length > 1).length,
    lost,
    unledgered,
    missingUpstream,
  };
}
