import { CompiledQuery, type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

/** What a batch needs of the transaction-bound store its jobs share: the ledger head carried from job to job. */
export interface BatchStore {
  ledgerMark(): unknown;
  ledgerRestore(mark: unknown): void;
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
 * Batches are durable (synchronous=FULL) whenever any waiting transaction asks for it; a batch of relaxed ones only
 * (Stripe completions, which Stripe can replay) commits at synchronous=NORMAL and takes no durable transaction in.
 */
export class GroupCommit<S extends BatchStore> {
  readonly #queue: Job<S>[] = [];
  #draining = false;

  constructor(
    readonly db: Kysely<Database>,
    /** The file was opened with synchronous=FULL; relaxed batches then lower it around their commit. */
    readonly fullSync: boolean,
    readonly onError: (err: unknown) => unknown,
    /** Binds a store to the batch's transaction; its jobs share it, so the ledger head is read once per batch. */
    readonly bind: (trx: Transaction<Database>) => S,
  ) {}

  run<T>(fn: (tx: S) => Promise<T>, durable: boolean): Promise<T> {
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
    const i = durable ? 0 : this.#queue.findIndex((j) => !j.durable);
    return i < 0 ? undefined : this.#queue.splice(i, 1)[0];
  }

  async #batch(durable: boolean): Promise<void> {
    const done: Done<S>[] = [];
    let current: Job<S> | undefined;
    let begun = false;
    const relax = !durable && this.fullSync;
    try {
      await this.db.connection().execute(async (conn) => {
        // The safety level cannot change inside a transaction, so a relaxed batch sets it around one.
        if (relax) await sql`pragma synchronous = normal`.execute(conn);
        try {
          await conn.transaction().execute(async (trx) => {
            begun = true;
            const tx = this.bind(trx);
            for (let job = this.#take(durable); job; job = this.#take(durable)) {
              current = job;
              const mark = tx.ledgerMark();
              await trx.executeQuery(SAVEPOINT);
              try {
                const value = await job.run(tx);
                await trx.executeQuery(RELEASE);
                done.push({ job, value });
              } catch (err) {
                // Undo this job alone. If SQLite already abandoned the whole transaction (SQLITE_FULL, an I/O
                // error) there is no savepoint left, and the batch fails as a whole below with the job's own
                // error, which says why, rather than with "no such savepoint".
                tx.ledgerRestore(mark);
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
      const failure = this.onError(err);
      for (const d of done) d.job.reject(failure);
      current?.reject(failure);
      // BEGIN itself failed (busy, unwritable): everything waiting would meet the same; fail it closed now.
      if (!begun) for (const job of this.#queue.splice(0)) job.reject(failure);
      return;
    }
    for (const d of done) d.job.resolve(d.value);
  }
}
