// The two stores every storage and engine test runs over, as Kysely's tests loop over DIALECTS. PostgreSQL tests get a
// database of their own per run, dropped afterwards.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import pg from 'pg';
import type { Dialect } from '../../src/store/migrations.ts';
import { openPostgresStore } from '../../src/store/postgres/open.ts';
import type { Database } from '../../src/store/schema.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/stack.ts';

/** Where the test databases are made; trust auth on the development machines and in CI. */
export const PG_ADMIN_URL = process.env['AIRLOCK_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const REQUIRED = process.env['AIRLOCK_REQUIRE_POSTGRES'] === '1';

async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (err) {
    return (err as Error).message || String(err);
  } finally {
    await client.end().catch(() => {});
  }
}

const problem = await probe();

/**
 * True when the PostgreSQL half can run. When the server is unreachable it says so loudly, and with
 * AIRLOCK_REQUIRE_POSTGRES=1 (as in CI) it fails instead of skipping.
 */
export const POSTGRES_AVAILABLE = problem === null;
if (!POSTGRES_AVAILABLE) {
  const message = `PostgreSQL at ${redact(PG_ADMIN_URL)} is unreachable (${problem})`;
  if (REQUIRED) throw new Error(`${message}, and AIRLOCK_REQUIRE_POSTGRES=1 requires it`);
  console.warn(
    `\n${'!'.repeat(100)}\n!! SKIPPING THE POSTGRESQL HALF: ${message}.\n!! Set AIRLOCK_REQUIRE_POSTGRES=1 to make this a failure.\n${'!'.repeat(100)}\n`,
  );
}

/**
 * White-box, for the store's own tests only: the Kysely connection a Store keeps private, to look at the state of
 * that very connection (SQLite pragmas, a transaction's foreign-key mode). Everything else goes through the
 * repositories, or through a connection of its own to the database (test/helpers/direct-sql.ts).
 */
export function connectionOf(store: Store): Kysely<Database> {
  return store['db'];
}

export const DIALECTS: readonly Dialect[] = ['sqlite', 'postgres'];

/** For describe.skipIf: skips the PostgreSQL half when (and only when) the server is unreachable and not required. */
export function unavailable(dialect: Dialect): boolean {
  return dialect === 'postgres' && !POSTGRES_AVAILABLE;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty PostgreSQL database for one test file; drop() removes it and ends every session on it. */
export async function createPostgresDatabase(): Promise<TestDatabase> {
  const name = `airlock_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

export interface TestStore {
  store: Store;
  /** DATABASE_URL for PostgreSQL, or the SQLite file path. */
  location: string;
  /** Another instance's Store on the same data (its own pool and LISTEN connection on PostgreSQL). */
  openAnother(): Promise<Store>;
  cleanup(): Promise<void>;
}

export async function openTestStore(dialect: Dialect): Promise<TestStore> {
  if (dialect === 'sqlite') {
    const dir = tempDir();
    const file = join(dir, 'airlock.db');
    const store = await openSqliteStore(file);
    return {
      store,
      location: file,
      // One process owns a SQLite file (several instances need PostgreSQL), so "another instance" is this one.
      openAnother: async () => store,
      async cleanup() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const db = await createPostgresDatabase();
  const store = await openPostgresStore(db.url);
  const others: Store[] = [];
  return {
    store,
    location: db.url,
    async openAnother() {
      const s = await openPostgresStore(db.url);
      others.push(s);
      return s;
    },
    async cleanup() {
      for (const s of others) await s.close();
      await store.close();
      await db.drop();
    },
  };
}
