import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
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

export async function openSqliteStore(file: string, opts: { migrate?: boolean } = {}): Promise<Store> {
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
  return new Store(db, 'sqlite', null, fullSync, wal ? walSyncer(`${raw.name}-wal`) : null);
}

/**
 * fdatasync of the WAL on libuv's thread pool. The descriptor is opened on first use (the -wal file exists once
 * the first write has happened) and kept: SQLite removes the file only when the last connection closes, and this
 * process holds one for as long as the store is open.
 */
function walSyncer(path: string): WalSync {
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
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
