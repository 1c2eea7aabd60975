import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely } from 'kysely';
import { migrateToLatest } from '../migrations.ts';
import type { Database } from '../schema.ts';
import { Store } from '../store.ts';
import { cachingDatabase, ImmediateSqliteDialect } from './driver.ts';
import { type Checkpointer, startCheckpointer, walFile } from './wal.ts';
import { SqliteWriter, WriterDialect } from './worker.ts';

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
  if (process.env['AIRLOCK_SQLITE_WRITER'] === 'worker') return openInWorker(file, opts);
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
  const store = new Store(
    db,
    'sqlite',
    null,
    fullSync,
    wal ? walFile(`${raw.name}-wal`, checkpointer) : null,
  );
  store.readDataVersionWith(() => raw.pragma('data_version', { simple: true }) as number);
  return store;
}

/** The same store with its connection in a worker thread (AIRLOCK_SQLITE_WRITER=worker; see worker.ts). */
async function openInWorker(file: string, opts: SqliteOptions): Promise<Store> {
  const fullSync = process.env['AIRLOCK_SQLITE_SYNCHRONOUS'] !== 'normal';
  const writer = await SqliteWriter.open(file, {
    fullSync,
    ...(opts.backgroundCheckpoints ? { autocheckpoint: 10000 } : {}),
  });
  const db = new Kysely<Database>({ dialect: new WriterDialect(writer) });
  if (opts.migrate ?? true) await migrateToLatest(db as Kysely<unknown>, 'sqlite');
  const checkpointer = writer.wal && opts.backgroundCheckpoints ? startCheckpointer(writer.name) : null;
  return new Store(
    db,
    'sqlite',
    null,
    fullSync,
    writer.wal ? walFile(`${writer.name}-wal`, checkpointer) : null,
  );
}
