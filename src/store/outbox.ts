import type { Kysely, Selectable } from 'kysely';
import type { CallbacksTable, NotificationsTable } from './schema.ts';
import type { Store } from './store.ts';

// Outboxes: rows written in the same transaction as the change they report, then delivered with retries. Callbacks
// and reviewers' notifications share the columns below, so one queue and one delivery loop serve both.

/** What every outbox table has: what the delivery loop claims, retries and settles by. */
export interface OutboxColumns {
  id: string;
  attempts: number;
  next_attempt_at: string;
  delivered_at: string | null;
  gave_up_at: string | null;
  last_status: number | null;
  last_error: string | null;
  lease_until: string | null;
  created_at: string;
}

interface OutboxTables {
  callbacks: CallbacksTable;
  notifications: NotificationsTable;
}

export type OutboxName = keyof OutboxTables;
export type OutboxRow<T extends OutboxName> = Selectable<OutboxTables[T]> & OutboxColumns;
export type CallbackRow = OutboxRow<'callbacks'>;
export type NotificationRow = OutboxRow<'notifications'>;

// The queries name the table at run time; typed as one table with the shared columns, they are the same for both.
type QueueDb = Kysely<{ outbox: OutboxColumns }>;

/** The queue operations of one outbox table. `only` narrows it to the rows this instance can deliver. */
export class OutboxQueue<T extends OutboxName> {
  constructor(
    readonly store: Store,
    readonly table: T,
    readonly only: { column: keyof OutboxTables[T] & string; values: readonly string[] } | null = null,
  ) {}

  #db(store: Store = this.store): QueueDb {
    return store.db as unknown as QueueDb;
  }

  get #name(): 'outbox' {
    return this.table as unknown as 'outbox';
  }

  /** Rows due for a try: not settled, their next try reached, and no live lease on them. */
  async due(now: string, limit: number): Promise<OutboxRow<T>[]> {
    const db = this.#db();
    let query = db
      .selectFrom(this.#name)
      .selectAll()
      .where('delivered_at', 'is', null)
      .where('gave_up_at', 'is', null)
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]));
    if (this.only) {
      if (this.only.values.length === 0) return [];
      query = query.where(db.dynamic.ref(this.only.column), 'in', [...this.only.values]);
    }
    const rows = await query.orderBy('next_attempt_at').limit(limit).execute();
    return rows as unknown as OutboxRow<T>[];
  }

  /**
   * Takes the row for one try unless it is settled, someone else holds a live lease on it, or it was tried since it
   * was read as due (`attempts` moved on): a sweep working from a stale read never tries twice or early.
   */
  async claim(id: string, attempts: number, now: string, leaseUntil: string): Promise<boolean> {
    const res = await this.#db()
      .updateTable(this.#name)
      .set({ lease_until: leaseUntil })
      .where('id', '=', id)
      .where('attempts', '=', attempts)
      .where('delivered_at', 'is', null)
      .where('gave_up_at', 'is', null)
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Records a try's outcome, only while this try's lease is still the row's: a lapsed one was taken over. */
  async settle(tx: Store, id: string, lease: string, patch: Partial<OutboxColumns>): Promise<boolean> {
    const res = await this.#db(tx)
      .updateTable(this.#name)
      .set(patch)
      .where('id', '=', id)
      .where('lease_until', '=', lease)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /**
   * A single SQLite process owns its file, so the leases a crashed run left are released at start-up instead of
   * waiting for them to lapse. On PostgreSQL other live instances hold leases too: there they lapse.
   */
  async releaseLeases(): Promise<number> {
    if (this.store.dialect === 'postgres') return 0;
    const res = await this.#db()
      .updateTable(this.#name)
      .set({ lease_until: null })
      .where('lease_until', 'is not', null)
      .where('delivered_at', 'is', null)
      .where('gave_up_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }
}

// --- callbacks -------------------------------------------------------------------------------------------------

export async function hasCallback(tx: Store, actionId: string, type: string): Promise<boolean> {
  const row = await tx.db
    .selectFrom('callbacks')
    .select('id')
    .where('action_id', '=', actionId)
    .where('type', '=', type)
    .executeTakeFirst();
  return row !== undefined;
}

export async function insertCallback(tx: Store, row: CallbackRow): Promise<void> {
  await tx.db.insertInto('callbacks').values(row).execute();
}

export async function listCallbacks(store: Store, actionId: string) {
  return store.db
    .selectFrom('callbacks')
    .select(['id', 'type', 'url', 'attempts', 'delivered_at', 'gave_up_at', 'last_status', 'last_error'])
    .where('action_id', '=', actionId)
    .orderBy('created_at')
    .execute();
}

// --- notifications ---------------------------------------------------------------------------------------------

/** Queues messages; one already queued for the same action, hold, channel and recipient is left as it is. */
export async function insertNotifications(tx: Store, rows: NotificationRow[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.db
    .insertInto('notifications')
    .values(rows)
    .onConflict((oc) => oc.columns(['action_id', 'event', 'version', 'channel', 'recipient']).doNothing())
    .execute();
}

/** Keeps the message composed on the first try, so every retry sends the same one. */
export async function setNotificationPayload(store: Store, id: string, payload: string): Promise<void> {
  await store.db.updateTable('notifications').set({ payload }).where('id', '=', id).execute();
}

export async function setNotificationStatus(tx: Store, id: string, status: string): Promise<void> {
  await tx.db.updateTable('notifications').set({ status }).where('id', '=', id).execute();
}

/** An action's notifications as the receipt shows them: never the payload, which holds the reviewers' links. */
export async function listNotifications(store: Store, actionId: string) {
  return store.db
    .selectFrom('notifications')
    .select([
      'id',
      'event',
      'channel',
      'recipient',
      'status',
      'attempts',
      'delivered_at',
      'gave_up_at',
      'last_status',
      'last_error',
      'created_at',
    ])
    .where('action_id', '=', actionId)
    .orderBy('created_at')
    .orderBy('channel')
    .orderBy('recipient')
    .execute();
}
