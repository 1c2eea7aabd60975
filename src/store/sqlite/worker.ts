// AIRLOCK_SQLITE_WRITER=worker: the SQLite connection in a worker thread, so statements run off the event loop.
// The main thread keeps Kysely, the group commit and the engine; each compiled query crosses to the worker as its
// SQL text and parameters, and its rows come back. One connection, one queue: statements run in the order sent.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';

// CommonJS, evaluated in the worker: opens the file as open.ts would on the main thread, then runs each message's
// statement on its one connection with statements cached by SQL text, and answers with the rows or the error's
// message and code (a structured clone of an Error drops `code`, which asStoreError reads).
const WRITER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
const wal = db.pragma('journal_mode = WAL', { simple: true }) === 'wal';
db.pragma('synchronous = ' + (workerData.fullSync ? 'FULL' : 'NORMAL'));
db.pragma('busy_timeout = 5000');
db.pragma('foreign_keys = ON');
if (wal && workerData.autocheckpoint) db.pragma('wal_autocheckpoint = ' + workerData.autocheckpoint);
const cache = new Map();
function run(sql, parameters) {
  let stmt = cache.get(sql);
  if (!stmt) {
    stmt = db.prepare(sql);
    if (cache.size > 500) cache.clear();
    cache.set(sql, stmt);
  }
  if (stmt.reader) return { rows: stmt.all(parameters) };
  const { changes, lastInsertRowid } = stmt.run(parameters);
  return { rows: [], changes, lastInsertRowid };
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    if (m.before) for (const sql of m.before) run(sql, []);
    parentPort.postMessage({ id: m.id, result: m.sql === null ? { rows: [] } : run(m.sql, m.parameters) });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: { message: String(err && err.message), code: err && err.code } });
  }
});
parentPort.postMessage({ ready: true, wal, name: db.name });
`;

const DEFERRABLE = /^(savepoint|release) airlock_job$|^pragma synchronous = (normal|full)$/i;

/** What the worker answers to a statement. */
type Reply =
  | {
      id: number;
      result: { rows: unknown[]; changes?: number; lastInsertRowid?: number | bigint };
      error?: undefined;
    }
  | { id: number; error: { message: string; code?: string }; result?: undefined };

export interface WriterOptions {
  fullSync: boolean;
  /** wal_autocheckpoint for the connection, when checkpoints run elsewhere. */
  autocheckpoint?: number;
}

/** The worker thread that owns the connection, and the statements waiting for its answers. */
export class SqliteWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { resolve: (r: QueryResult<unknown>) => void; reject: (e: Error) => void }
  >();
  #next = 0;
  #exited: Error | null = null;
  readonly #gone: Promise<void>;

  private constructor(
    worker: Worker,
    /** Whether the file is in WAL mode, and its absolute path, as the worker's connection reports them. */
    readonly wal: boolean,
    readonly name: string,
  ) {
    this.#worker = worker;
    this.#gone = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: Reply) => this.#answer(m));
    // A thread that dies exits: what waited fails below as the store unavailable, rather than the process crashing.
    worker.on('error', () => {});
    worker.once('exit', () => {
      this.#exited = new Error('the SQLite writer thread has exited: database connection is not open');
      for (const p of this.#pending.values()) p.reject(this.#exited);
      this.#pending.clear();
    });
  }

  static async open(file: string, opts: WriterOptions): Promise<SqliteWriter> {
    const worker = new Worker(WRITER, {
      eval: true,
      workerData: {
        file,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        fullSync: opts.fullSync,
        autocheckpoint: opts.autocheckpoint ?? 0,
      },
    });
    const ready = await new Promise<{ wal: boolean; name: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    return new SqliteWriter(worker, ready.wal, ready.name);
  }

  #answer(m: Reply): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.error) {
      p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      return;
    }
    const { rows, changes, lastInsertRowid } = m.result;
    p.resolve(
      changes === undefined
        ? { rows }
        : { rows, numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid ?? 0) },
    );
  }

  /** Statements whose answer nobody reads, held back to travel with the next one (see `execute`). */
  #before: string[] = [];

  /**
   * Runs the query on the worker's connection. The group commit's SAVEPOINT and RELEASE around every job, and its
   * `pragma synchronous` around a batch, return nothing: they are answered at once and sent with the next
   * statement, which the worker runs after them. Each message costs the event loop about as much as SQLite takes
   * to run a hot-path statement, and these are about half of an allowed request's statements. An error of one of
   * them is the error of the statement it travelled with, as it would be the next statement's on one connection.
   */
  execute<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.#exited) return Promise.reject(this.#exited);
    if (query.parameters.length === 0 && DEFERRABLE.test(query.sql)) {
      this.#before.push(query.sql);
      return Promise.resolve({ rows: [] });
    }
    return this.#send(query.sql, query.parameters);
  }

  /** Sends what was held back, on its own, when the connection is let go with nothing after it. */
  flush(): Promise<unknown> {
    return this.#before.length > 0 && !this.#exited ? this.#send(null, []) : Promise.resolve();
  }

  #send<R>(sql: string | null, parameters: readonly unknown[]): Promise<QueryResult<R>> {
    const id = this.#next++;
    const before = this.#before.length > 0 ? this.#before : undefined;
    if (before) this.#before = [];
    return new Promise<QueryResult<R>>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (r: QueryResult<unknown>) => void, reject });
      this.#worker.postMessage({ id, before, sql, parameters });
    });
  }

  async close(): Promise<void> {
    if (!this.#exited) this.#worker.postMessage('close');
    await this.#gone;
  }
}

class WriterConnection implements DatabaseConnection {
  constructor(readonly writer: SqliteWriter) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.writer.execute<R>(query);
  }

  // Nothing in Airlock streams; a select's rows arrive in one message anyway.
  async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    for (const row of (await this.writer.execute<R>(query)).rows) yield { rows: [row] };
  }
}

/** Kysely's SqliteDriver over the worker: one connection behind a mutex, BEGIN IMMEDIATE, a forgiving rollback. */
class WriterDriver implements Driver {
  readonly #connection: WriterConnection;
  #held: Promise<void> | null = null;
  #release: (() => void) | null = null;

  constructor(writer: SqliteWriter) {
    this.#connection = new WriterConnection(writer);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    while (this.#held) await this.#held;
    this.#held = new Promise((resolve) => {
      this.#release = resolve;
    });
    return this.#connection;
  }

  async releaseConnection(): Promise<void> {
    // A connection let go after a held-back statement (the pragma after a batch) runs it before the next user,
    // and its error is the error of what held the connection, as it was before it was held back.
    try {
      await this.#connection.writer.flush();
    } finally {
      const release = this.#release;
      this.#held = null;
      this.#release = null;
      release?.();
    }
  }

  // As ImmediateSqliteDriver (driver.ts): the write lock up front, and a rollback after SQLite already rolled
  // back keeps the error that says why.
  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } catch (err) {
      if (!/no transaction is active/.test((err as Error).message)) throw err;
    }
  }

  async destroy(): Promise<void> {
    await this.#connection.writer.close();
  }
}

export class WriterDialect implements Dialect {
  constructor(readonly writer: SqliteWriter) {}

  createDriver(): Driver {
    return new WriterDriver(this.writer);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}
