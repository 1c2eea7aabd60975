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
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  created INTEGER NOT NULL,
  account TEXT NOT NULL DEFAULT '',
  pending_webhooks INTEGER NOT NULL DEFAULT 0,
  json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_account_seq ON events (account, seq);
`;

/** Files written before objects were scoped to accounts get the column; their objects belong to the platform. */
function migrate(db: Database.Database): void {
  const columns = db.prepare("SELECT name FROM pragma_table_info('objects')").all() as { name: string }[];
  if (!columns.some((c) => c.name === 'account')) {
    db.exec("ALTER TABLE objects ADD COLUMN account TEXT NOT NULL DEFAULT ''");
  }
  db.exec('CREATE INDEX IF NOT EXISTS objects_account_type_seq ON objects (account, type, seq)');
}

/** One write to an object, as JSON text before (null for an insert) and after. */
export interface Change {
  account: string;
  id: string;
  before: string | null;
  after: string;
}

export interface StoredEvent {
  id: string;
  type: string;
  created: number;
  /** The connected account the event belongs to; '' for the platform. */
  account: string;
  pendingWebhooks: number;
  /** The event without `pending_webhooks`, which is kept in its own column and put back when read. */
  json: string;
}

export interface EventQuery {
  limit: number;
  startingAfter?: string | undefined;
  endingBefore?: string | undefined;
  /** Exact types, or patterns with `*` (`charge.*`), any of which matches. */
  types?: string[];
  created?: { gt?: number; gte?: number; lt?: number; lte?: number };
  /** true: delivered to every endpoint (none pending); false: some delivery still pending. */
  deliverySuccess?: boolean;
}

interface Connection {
  db: Database.Database;
  statements: Map<string, Database.Statement>;
  /** While a request runs, every insert and save is written here, so its events can be derived. */
  journal: Change[] | null;
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
    this.conn = { db, statements: new Map(), journal: null };
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
    const json = JSON.stringify(obj);
    this.stmt('INSERT INTO objects (id, type, json, created, account) VALUES (?, ?, ?, ?, ?)').run(
      obj.id,
      obj.object,
      json,
      created,
      this.account,
    );
    this.conn.journal?.push({ account: this.account, id: obj.id, before: null, after: json });
    return obj;
  }

  save<T extends StripeObject>(obj: T): T {
    const json = JSON.stringify(obj);
    const journal = this.conn.journal;
    const before = journal
      ? (this.stmt('SELECT json FROM objects WHERE id = ? AND account = ?').get(obj.id, this.account) as
          | { json: string }
          | undefined)
      : undefined;
    this.stmt('UPDATE objects SET json = ? WHERE id = ? AND account = ?').run(json, obj.id, this.account);
    if (journal && before)
      journal.push({ account: this.account, id: obj.id, before: before.json, after: json });
    return obj;
  }

  /** Runs `fn` with every object write appended to `changes`, in order (kept when `fn` throws). */
  journaled<T>(changes: Change[], fn: () => T): T {
    const outer = this.conn.journal;
    this.conn.journal = changes;
    try {
      return fn();
    } finally {
      this.conn.journal = outer;
    }
  }

  /** The account an object belongs to ('' for the platform), whatever this store's account. */
  accountOf(id: string): string | undefined {
    const row = this.stmt('SELECT account FROM objects WHERE id = ?').get(id) as
      | { account: string }
      | undefined;
    return row?.account;
  }

  /** Every object of a type with its account, oldest first. */
  allWithAccount(type: string): { account: string; object: StripeObject }[] {
    const rows = this.stmt('SELECT json, account FROM objects WHERE type = ? ORDER BY seq ASC').all(type) as {
      json: string;
      account: string;
    }[];
    return rows.map((r) => ({ account: r.account, object: JSON.parse(r.json) as StripeObject }));
  }

  insertEvent(e: StoredEvent): void {
    this.stmt(
      'INSERT INTO events (id, type, created, account, pending_webhooks, json) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(e.id, e.type, e.created, e.account, e.pendingWebhooks, e.json);
  }

  /** The event with its current `pending_webhooks`, if it belongs to this store's account. */
  findEvent(id: string): StripeObject | undefined {
    const row = this.stmt('SELECT json, pending_webhooks FROM events WHERE id = ? AND account = ?').get(
      id,
      this.account,
    ) as { json: string; pending_webhooks: number } | undefined;
    return row ? eventOf(row) : undefined;
  }

  /** One page of this account's events, newest first, as Stripe lists them. */
  eventsPage(q: EventQuery): { data: StripeObject[]; hasMore: boolean } {
    const where = ['account = ?'];
    const args: unknown[] = [this.account];
    if (q.types && q.types.length > 0) {
      where.push(`(${q.types.map(() => "type LIKE ? ESCAPE '\\'").join(' OR ')})`);
      for (const t of q.types) args.push(t.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%'));
    }
    if (q.deliverySuccess !== undefined) where.push(`pending_webhooks ${q.deliverySuccess ? '=' : '>'} 0`);
    const ops = { gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;
    for (const [key, op] of Object.entries(ops)) {
      const value = q.created?.[key as keyof typeof ops];
      if (value !== undefined) {
        where.push(`created ${op} ?`);
        args.push(value);
      }
    }
    let order = 'DESC';
    const cursorId = q.startingAfter ?? q.endingBefore;
    if (cursorId !== undefined) {
      const cursor = this.stmt('SELECT seq FROM events WHERE id = ? AND account = ?').get(
        cursorId,
        this.account,
      ) as { seq: number } | undefined;
      const param = q.startingAfter !== undefined ? 'starting_after' : 'ending_before';
      if (!cursor) throw resourceMissing('event', cursorId, param);
      where.push(q.startingAfter !== undefined ? 'seq < ?' : 'seq > ?');
      args.push(cursor.seq);
      if (q.startingAfter === undefined) order = 'ASC';
    }
    args.push(q.limit + 1);
    const rows = this.conn.db
      .prepare(
        `SELECT json, pending_webhooks FROM events WHERE ${where.join(' AND ')} ORDER BY seq ${order} LIMIT ?`,
      )
      .all(...args) as { json: string; pending_webhooks: number }[];
    const hasMore = rows.length > q.limit;
    const data = rows.slice(0, q.limit).map(eventOf);
    if (order === 'ASC') data.reverse();
    return { data, hasMore };
  }

  /** Every event of every account, oldest first, for tests and inspection. */
  allEvents(): StripeObject[] {
    const rows = this.stmt('SELECT json, pending_webhooks FROM events ORDER BY seq ASC').all() as {
      json: string;
      pending_webhooks: number;
    }[];
    return rows.map(eventOf);
  }

  setPendingWebhooks(id: string, pending: number): void {
    this.stmt('UPDATE events SET pending_webhooks = ? WHERE id = ?').run(pending, id);
  }

  /** Deliveries live in memory: after a restart none is pending any more. */
  clearPendingWebhooks(): void {
    this.stmt('UPDATE events SET pending_webhooks = 0 WHERE pending_webhooks <> 0').run();
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
    this.conn.db.exec('DELETE FROM objects; DELETE FROM idempotency; DELETE FROM events;');
  }

  close(): void {
    this.conn.db.close();
  }
}

function eventOf(row: { json: string; pending_webhooks: number }): StripeObject {
  const event = JSON.parse(row.json) as StripeObject;
  event['pending_webhooks'] = row.pending_webhooks;
  return event;
}
