import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  type SqliteDatabase,
  SqliteDialect,
  SqliteDriver,
  type SqliteStatement,
} from 'kysely';
import type { WalSync } from './group-commit.ts';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';
import { Store } from './store.ts';

// BEGIN IMMEDIATE takes the write lock up front, so a second process (the CLI approving while the server runs)
// waits on busy_timeout instead of failing a read-to-write upgrade with SQLITE_BUSY.
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  // After SQLITE_FULL or an I/O error SQLite has already rolled back; a second ROLLBACK would fail and its
  // "no transaction is active" would hide the error that says why (and that the store is unavailable).
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await super.rollbackTransaction(connection);
    } catch (err) {
      if (!/no transaction is active/.test((err as Error).message)) throw err;
    }
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

/** Kysely prepares every query anew; caching statements by SQL text saves most of that work on the hot path. */
function cachingDatabase(db: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = db.prepare(sql) as unknown as SqliteStatement;
        if (cache.size > 500) cache.clear();
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

export interface SqliteOptions {
  migrate?: boolean;
  /**
   * Checkpoint the WAL from a worker thread's own connection, so the server's event loop never copies pages into
   * the database file (and fsyncs it) inside some request's commit. For `airlock serve`; short-lived CLI commands
   * leave it to SQLite.
   */
  backgroundCheckpoints?: boolean;
}

export async function openSqliteStore(file: string, opts: SqliteOptions = {}): Promise<Store> {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const raw = new BetterSqlite3(file);
  const wal = raw.pragma('journal_mode = WAL', { simple: true }) === 'wal';
  // FULL: a decision must survive power loss before its upstream call is made.
  // AIRLOCK_SQLITE_SYNCHRONOUS=normal trades that power-loss guarantee for speed; process crashes stay safe.
  const fullSync = process.env['AIRLOCK_SQLITE_SYNCHRONOUS'] !== 'normal';
  raw.pragma(`synchronous = ${fullSync ? 'FULL' : 'NORMAL'}`);
  raw.pragma('busy_timeout = 5000');
  raw.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({ database: cachingDatabase(raw) }),
  });
  if (opts.migrate ?? true) await migrateToLatest(db as Kysely<unknown>, 'sqlite');
  let checkpointer: Checkpointer | null = null;
  if (wal && opts.backgroundCheckpoints) {
    // Left as a backstop should the worker stall: at 40 MB of WAL this connection checkpoints itself.
    raw.pragma('wal_autocheckpoint = 10000');
    checkpointer = startCheckpointer(raw.name);
  }
  return new Store(db, 'sqlite', null, fullSync, wal ? walFile(`${raw.name}-wal`, checkpointer) : null);
}

const CHECKPOINT_EVERY_MS = 500;

// CommonJS, evaluated in the worker: its own connection runs a PASSIVE checkpoint (which never blocks writers)
// every CHECKPOINT_EVERY_MS until told to stop.
const CHECKPOINTER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
}, workerData.everyMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

interface Checkpointer {
  close(): Promise<void>;
}

function startCheckpointer(file: string): Checkpointer {
  const worker = new Worker(CHECKPOINTER, {
    eval: true,
    workerData: {
      file,
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      everyMs: CHECKPOINT_EVERY_MS,
    },
  });
  // If the worker cannot run, the serving connection's own checkpoints (the backstop above) take over.
  worker.on('error', () => {});
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.unref();
  return {
    async close() {
      worker.ref();
      worker.postMessage('close');
      await exited;
    },
  };
}

/**
 * The WAL file's side of the store: fdatasync of the WAL on libuv's thread pool and, on close, the checkpoint
 * worker that copies it into the database file. The descriptor is opened on first use (the -wal file exists once
 * the first write has happened) and kept: SQLite removes the file only when the last connection closes, and this
 * process holds one for as long as the store is open.
 */
function walFile(path: string, checkpointer: Checkpointer | null): WalSync {
  let fd: number | null = null;
  return {
    sync: () =>
      new Promise<void>((resolve, reject) => {
        try {
          fd ??= openSync(path, 'r');
        } catch (err) {
          reject(err);
          return;
        }
        fdatasync(fd, (err) => (err ? reject(err) : resolve()));
      }),
    async close() {
      if (fd !== null) closeSync(fd);
      fd = null;
      await checkpointer?.close();
    },
  };
}
