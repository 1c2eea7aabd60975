import { CompiledQuery, type Kysely, sql, type Transaction } from 'kysely';
import { AirlockError } from '../../errors.ts';
import type { Database } from '../schema.ts';

/** Makes every committed WAL frame durable: an fdatasync of the -wal file, off the event loop. */
export interface WalSync {
  sync(): Promise<void>;
  close(): void | Promise<void>;
}

/**
 * What a batch needs of the transaction-bound store its jobs share: the in-memory state carried from job to job
 * (the ledger head, the velocity aggregates), which a job or batch that rolls back must take back with it.
 */
export interface BatchStore {
  mark(): unknown;
  restore(mark: unknown): void;
  flushLedgerHead(): Promise<void>;
}

interface Job<S> {
  run: (tx: S) => Promise<unknown>;
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Done<S> {
  job: Job<S>;
  value: unknown;
}

/** Acknowledged once an fdatasync that began after their commit has returned. */
interface Waiting<S> {
  commit: number;
  done: Done<S>[];
}

const SAVEPOINT = CompiledQuery.raw('savepoint airlock_job');
const RELEASE = CompiledQuery.raw('release airlock_job');
const ROLLBACK_TO = CompiledQuery.raw('rollback to airlock_job');

/** A batch closes after this many transactions so reads waiting for the connection are not starved. */
const MAX_BATCH = 64;

/**
 * Group commit for SQLite: transactions that arrive while one commit is in progress share the next one. Each runs
 * inside a SAVEPOINT of a single physical transaction, so one failing rolls back only its own writes, and none is
 * acknowledged until the physical COMMIT (and its fsync) has returned. One fsync then makes a whole batch durable,
 * instead of one per request.
 *
 * With syncWal (a file store at synchronous=FULL), every batch commits at synchronous=NORMAL, which writes the WAL
 * without an fsync, and its durable transactions are acknowledged only after an fdatasync of the WAL that began
 * after their COMMIT: the same guarantee as FULL, but the fsync runs on libuv's thread pool instead of blocking the
 * event loop, the next batch is built while it runs, and one fsync covers every batch committed before it began.
 * Relaxed transactions (Stripe completions, which Stripe can replay) are acknowledged at COMMIT.
 *
 * Without syncWal, batches are durable (synchronous=FULL) whenever any waiting transaction asks for it; a batch of
 * relaxed ones only commits at synchronous=NORMAL and takes no durable transaction in.
 */
export class GroupCommit<S extends BatchStore> {
  readonly #queue: Job<S>[] = [];
  #draining = false;
  #commits = 0;
  readonly #waiting: Waiting<S>[] = [];
  #syncing = false;
  /** Set when an fdatasync failed: what was committed may not be durable, so nothing more is acknowledged. */
  #broken: AirlockError | null = null;

  constructor(
    readonly db: Kysely<Database>,
    /** The file was opened with synchronous=FULL; relaxed batches then lower it around their commit. */
    readonly fullSync: boolean,
    readonly onError: (err: unknown) => unknown,
    /** Binds a store to the batch's transaction; its jobs share it, so the ledger head is read once per batch. */
    readonly bind: (trx: Transaction<Database>) => S,
    /** Makes every committed WAL frame durable (fdatasync of the -wal file); see the class comment. */
    readonly syncWal: WalSync | null = null,
  ) {}

  run<T>(fn: (tx: S) => Promise<T>, durable: boolean): Promise<T> {
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        run: fn,
        durable,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.#draining) {
        this.#draining = true;
        // Starting on the next turn lets the requests already read off the sockets queue up for the same commit.
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        await this.#batch(this.#queue.some((j) => j.durable));
        if (this.#queue.length > 0) await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.#draining = false;
    }
  }

  /** Takes the next job this batch may hold: any in a durable batch, relaxed ones only in a relaxed batch. */
  #take(durable: boolean): Job<S> | undefined {
    const i = durable || this.#asyncSync ? 0 : this.#queue.findIndex((j) => !j.durable);
    return i < 0 ? undefined : this.#queue.splice(i, 1)[0];
  }

  async #batch(durable: boolean): Promise<void> {
    const done: Done<S>[] = [];
    let current: Job<S> | undefined;
    let begun = false;
    let bound: { tx: S; start: unknown } | null = null;
    // With an asynchronous WAL sync every batch commits relaxed; its durable jobs then wait for #sync.
    const relax = this.fullSync && (!durable || this.#asyncSync);
    try {
      await this.db.connection().execute(async (conn) => {
        // The safety level cannot change inside a transaction, so a relaxed batch sets it around one.
        if (relax) await sql`pragma synchronous = normal`.execute(conn);
        try {
          await conn.transaction().execute(async (trx) => {
            begun = true;
            const tx = this.bind(trx);
            bound = { tx, start: tx.mark() };
            for (let job = this.#take(durable); job; job = this.#take(durable)) {
              current = job;
              const mark = tx.mark();
              await trx.executeQuery(SAVEPOINT);
              try {
                const value = await job.run(tx);
                await trx.executeQuery(RELEASE);
                done.push({ job, value });
              } catch (err) {
                // Undo this job alone. If SQLite already abandoned the whole transaction (SQLITE_FULL, an I/O
                // error) there is no savepoint left, and the batch fails as a whole below with the job's own
                // error, which says why, rather than with "no such savepoint".
                tx.restore(mark);
                try {
                  await trx.executeQuery(ROLLBACK_TO);
                  await trx.executeQuery(RELEASE);
                } catch {
                  throw err;
                }
                job.reject(this.onError(err));
              }
              current = undefined;
              if (done.length >= MAX_BATCH) break;
            }
            await tx.flushLedgerHead();
          });
        } finally {
          if (relax) await sql`pragma synchronous = full`.execute(conn);
        }
      });
    } catch (err) {
      // BEGIN, a savepoint or COMMIT failed: nothing of this batch is stored, so no job may report success.
      const failed = bound as { tx: S; start: unknown } | null;
      failed?.tx.restore(failed.start);
      const failure = this.onError(err);
      for (const d of done) d.job.reject(failure);
      current?.reject(failure);
      // BEGIN itself failed (busy, unwritable): everything waiting would meet the same; fail it closed now.
      if (!begun) for (const job of this.#queue.splice(0)) job.reject(failure);
      return;
    }
    if (!this.#asyncSync) {
      for (const d of done) d.job.resolve(d.value);
      return;
    }
    const durableDone: Done<S>[] = [];
    for (const d of done) {
      // A sync failed while this batch ran: its frames may never reach the disk either.
      if (d.job.durable && this.#broken) d.job.reject(this.#broken);
      else if (d.job.durable) durableDone.push(d);
      else d.job.resolve(d.value);
    }
    if (durableDone.length > 0) {
      this.#waiting.push({ commit: ++this.#commits, done: durableDone });
      if (!this.#syncing) void this.#sync();
    }
  }

  /** After the store's last batch: waits for a sync in flight, then closes the WAL's descriptor. */
  async close(): Promise<void> {
    while (this.#syncing) await new Promise<void>((r) => setImmediate(r));
    await this.syncWal?.close();
  }

  get #asyncSync(): boolean {
    return this.syncWal !== null && this.fullSync;
  }

  /** One fdatasync at a time; each acknowledges every batch committed before it began. */
  async #sync(): Promise<void> {
    this.#syncing = true;
    try {
      while (this.#waiting.length > 0) {
        const covered = this.#commits;
        await this.syncWal!.sync();
        while (this.#waiting.length > 0 && this.#waiting[0]!.commit <= covered) {
          for (const d of this.#waiting.shift()!.done) d.job.resolve(d.value);
        }
      }
    } catch (err) {
      // The writes are committed but perhaps not on disk. Their callers cannot be told either way, so no further
      // write is accepted: the store fails closed until Airlock restarts and recovery reads what survived.
      this.#broken = new AirlockError(
        'store_unavailable',
        'The action store could not make writes durable and accepts none until Airlock restarts; an action sent ' +
          'just before may still be carried out then: repeat it with the same Idempotency-Key to learn its outcome',
        { cause: err },
      );
      const failure = this.#broken;
      for (const w of this.#waiting.splice(0)) for (const d of w.done) d.job.reject(failure);
      for (const job of this.#queue.splice(0)) job.reject(failure);
    } finally {
      this.#syncing = false;
    }
  }
}
