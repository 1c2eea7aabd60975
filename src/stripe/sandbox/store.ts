import Database from 'better-sqlite3';
import { resourceMissing } from './errors.ts';

export type StripeObject = Record<string, unknown> & { id: string; object: string };

export interface ListQuery {
  /** Exact matches on top-level fields; `not` excludes a value instead. */
  filters?: { field: string; value: string | number | boolean; not?: boolean }[];
  limit: number;
  startingAfter?: string | undefined;
  endingBefore?: string | undefined;
}

export interface IdempotencyRecord {
  method: string;
  path: string;
  params: string;
  status: number;
  body: string;
  createdMs: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS objects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  json TEXT NOT NULL,
  created INTEGER NOT NULL,
  account TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS objects_type_seq ON objects (type, seq);
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT PRIMARY KEY,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  params TEXT NOT NULL,
  status INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
`;

/** Files written before objects were scoped to accounts get the column; their objects belong to the platform. */
function migrate(db: Database.Database): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('objects')").all() as { name: string }[];
  if (!columns.some((c) => c.name === 'account')) {
    db.exec("ALTER TABLE objects ADD COLUMN account TEXT NOT NULL DEFAULT ''");
  }
  db.exec('CREATE INDEX IF NOT EXISTS objects_account_type_seq ON objects (account, type, seq)');
}

interface Connection {
  db: Database.Database;
  statements: Map<string, Database.Statement>;
}

const FIELD_NAME = /^[a-z_]+$/;

/**
 * Stripe objects and idempotency records in SQLite; every object lives in one table keyed by its id. A store acts
 * for one account (`''` is the platform): it reads and writes only that account's objects, as Stripe scopes them.
 */
export class SandboxStore {
  private readonly conn: Connection;
  readonly account: string;

  constructor(dbPath: string | Connection = ':memory:', account = '') {
    this.account = account;
    if (typeof dbPath !== 'string') {
      this.conn = dbPath;
      return;
    }
    const db = new Database(dbPath);
    if (dbPath !== ':memory:') {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    db.exec(SCHEMA);
    migrate(db);
    this.conn = { db, statements: new Map() };
  }

  /** The same database, acting for another account (null: the platform). */
  forAccount(account: string | null): SandboxStore {
    return new SandboxStore(this.conn, account ?? '');
  }

  private stmt(sql: string): Database.Statement {
    let s = this.conn.statements.get(sql);
    if (!s) {
      s = this.conn.db.prepare(sql);
      this.conn.statements.set(sql, s);
    }
    return s;
  }

  transaction<T>(fn: () => T): T {
    return this.conn.db.transaction(fn)();
  }

  insert<T extends StripeObject>(obj: T): T {
    const created = typeof obj['created'] === 'number' ? obj['created'] : Math.floor(Date.now() / 1000);
    this.stmt('INSERT INTO objects (id, type, json, created, account) VALUES (?, ?, ?, ?, ?)').run(
      obj.id,
      obj.object,
      JSON.stringify(obj),
      created,
      this.account,
    );
    return obj;
  }

  save<T extends StripeObject>(obj: T): T {
    this.stmt('UPDATE objects SET json = ? WHERE id = ? AND account = ?').run(
      JSON.stringify(obj),
      obj.id,
      this.account,
    );
    return obj;
  }

  find(id: string): StripeObject | undefined {
    const row = this.stmt('SELECT json FROM objects WHERE id = ? AND account = ?').get(id, this.account) as
      | { json: string }
      | undefined;
    return row ? (JSON.parse(row.json) as StripeObject) : undefined;
  }

  /** The object of that type, or Stripe's resource_missing error naming `param`. */
  get(type: string, id: string, param = 'id'): StripeObject {
    const obj = this.find(id);
    if (!obj || obj.object !== type) throw resourceMissing(type, id, param);
    return obj;
  }

  /** One page, newest first, excluding deleted objects, as Stripe's list endpoints do. */
  page(type: string, q: ListQuery): { data: StripeObject[]; hasMore: boolean } {
    const where = ['account = ?', 'type = ?', "json_extract(json, '$.deleted') IS NULL"];
    const args: unknown[] = [this.account, type];
    for (const f of q.filters ?? []) {
      if (!FIELD_NAME.test(f.field)) throw new Error(`bad filter field ${f.field}`);
      const value = typeof f.value === 'boolean' ? (f.value ? 1 : 0) : f.value;
      where.push(`json_extract(json, '$.${f.field}') ${f.not ? 'IS NOT' : 'IS'} ?`);
      args.push(value);
    }
    let order = 'DESC';
    const cursorId = q.startingAfter ?? q.endingBefore;
    if (cursorId !== undefined) {
      const cursor = this.stmt('SELECT seq, type FROM objects WHERE id = ? AND account = ?').get(
        cursorId,
        this.account,
      ) as { seq: number; type: string } | undefined;
      const param = q.startingAfter !== undefined ? 'starting_after' : 'ending_before';
      if (!cursor || cursor.type !== type) throw resourceMissing(type, cursorId, param);
      where.push(q.startingAfter !== undefined ? 'seq < ?' : 'seq > ?');
      args.push(cursor.seq);
      if (q.startingAfter === undefined) order = 'ASC';
    }
    args.push(q.limit + 1);
    const rows = this.stmt(
      `SELECT json FROM objects WHERE ${where.join(' AND ')} ORDER BY seq ${order} LIMIT ?`,
    ).all(...args) as { json: string }[];
    const hasMore = rows.length > q.limit;
    const data = rows.slice(0, q.limit).map((r) => JSON.parse(r.json) as StripeObject);
    if (order === 'ASC') data.reverse();
    return { data, hasMore };
  }

  /**
   * Every object of a type, oldest first (deleted ones included), for tests and inspection: of every account, or of
   * one (`''` is the platform).
   */
  all(type: string, account?: string): StripeObject[] {
    const rows = (
      account === undefined
        ? this.stmt('SELECT json FROM objects WHERE type = ? ORDER BY seq ASC').all(type)
        : this.stmt('SELECT json FROM objects WHERE type = ? AND account = ? ORDER BY seq ASC').all(
            type,
            account,
          )
    ) as { json: string }[];
    return rows.map((r) => JSON.parse(r.json) as StripeObject);
  }

  /** Net balance per currency of this store's account, summed from its balance transactions. */
  balances(): { currency: string; amount: number }[] {
    return this.stmt(
      `SELECT json_extract(json, '$.currency') AS currency, SUM(json_extract(json, '$.net')) AS amount
       FROM objects WHERE account = ? AND type = 'balance_transaction' GROUP BY currency ORDER BY currency`,
    ).all(this.account) as { currency: string; amount: number }[];
  }

  getIdempotency(scope: string): IdempotencyRecord | undefined {
    const row = this.stmt(
      'SELECT method, path, params, status, body, created_ms AS createdMs FROM idempotency WHERE scope = ?',
    ).get(scope) as IdempotencyRecord | undefined;
    return row;
  }

  putIdempotency(scope: string, rec: IdempotencyRecord): void {
    this.stmt(
      `INSERT OR REPLACE INTO idempotency (scope, method, path, params, status, body, created_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(scope, rec.method, rec.path, rec.params, rec.status, rec.body, rec.createdMs);
  }

  /**
   * Test-only: rewrites an object's timestamps (`created`, `canceled_at`, …) so a test can seed past history. Finds
   * the object whatever its account.
   */
  backdate(id: string, times: Record<string, number>): void {
    const row = this.stmt('SELECT json FROM objects WHERE id = ?').get(id) as { json: string } | undefined;
    if (!row) throw resourceMissing('object', id, 'id');
    const obj = { ...(JSON.parse(row.json) as StripeObject), ...times };
    this.stmt('UPDATE objects SET json = ? WHERE id = ?').run(JSON.stringify(obj), id);
    if (times['created'] !== undefined) {
      this.stmt('UPDATE objects SET created = ? WHERE id = ?').run(times['created'], id);
    }
  }

  reset(): void {
    this.conn.db.exec('DELETE FROM objects; DELETE FROM idempotency;');
  }

  close(): void {
    this.conn.db.close();
  }
}
