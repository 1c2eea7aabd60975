// A connection of a test's own to Airlock's database, beside the store's: what an insider with write access (or an
// operator at a SQL prompt) has. Tests that edit the database behind Airlock's back use it; everything else reads
// and writes through the store's repositories.
import Database from 'better-sqlite3';
import pg from 'pg';

/** Plain SQL on either store, with SQLite-style `?` placeholders. */
export interface Sql {
  all<T>(text: string, params?: unknown[]): Promise<T[]>;
  run(text: string, params?: unknown[]): Promise<void>;
  close(): Promise<void>;
}

export function sqliteSql(file: string): Sql {
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  return {
    all: async <T>(text: string, params: unknown[] = []) => db.prepare(text).all(...params) as T[],
    run: async (text, params = []) => {
      db.prepare(text).run(...params);
    },
    close: async () => {
      db.close();
    },
  };
}

export async function postgresSql(url: string): Promise<Sql> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // The callers write SQLite-style placeholders; number them for PostgreSQL.
  const numbered = (text: string) => {
    let n = 0;
    return text.replace(/\?/g, () => `$${++n}`);
  };
  return {
    all: async <T>(text: string, params: unknown[] = []) =>
      (await client.query(numbered(text), params)).rows as T[],
    run: async (text, params = []) => {
      await client.query(numbered(text), params);
    },
    close: () => client.end(),
  };
}

/** A connection to the store at `location`: a PostgreSQL URL, or else a SQLite file. */
export async function directSql(location: string): Promise<Sql> {
  return /^postgres(ql)?:/.test(location) ? postgresSql(location) : sqliteSql(location);
}

/** Runs fn on a connection of its own to the store at `location`, closed afterwards. */
export async function withDirectSql<T>(location: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = await directSql(location);
  try {
    return await fn(sql);
  } finally {
    await sql.close();
  }
}
