import type { ExpressionBuilder, Kysely, Selectable } from 'kysely';
import type { Connection } from './connection.ts';
import type { CallbacksTable, NotificationsTable, OutboxColumns, StripeAlertsTable } from './schema.ts';

export type { OutboxColumns } from './schema.ts';

// Outboxes: rows written in the same transaction as the change they report, then delivered with retries. Callbacks
// and reviewers' notifications share OutboxColumns (schema.ts), so one queue and one delivery loop serve both.

/** The outbox columns of a row just queued: due at `due`, not tried yet. */
export function queuedColumns(id: string, due: string, at: string): OutboxColumns {
  return {
    id,
    attempts: 0,
    next_attempt_at: due,
    delivered_at: null,
    gave_up_at: null,
    last_status: null,
    last_error: null,
    lease_until: null,
    created_at: at,
  };
}

interface OutboxTables {
  callbacks: CallbacksTable;
  notifications: NotificationsTable;
  stripe_alerts: StripeAlertsTable;
}

export type OutboxName = keyof OutboxTables;
export type OutboxRow<T extends OutboxName> = Selectable<OutboxTables[T]> & OutboxColumns;
export type CallbackRow = OutboxRow<'callbacks'>;
export type NotificationRow = OutboxRow<'notifications'>;
export type StripeAlertRow = OutboxRow<'stripe_alerts'>;

/** Narrows a queue to the rows this instance can deliver: `column` in `values`. */
export interface OutboxFilter<T extends OutboxName> {
  column: keyof OutboxTables[T] & string;
  values: readonly string[];
}

// The queue's queries name the table at run time; typed as one table with the shared columns, they are the same
// for both.
type QueueDb = Kysely<{ outbox: OutboxColumns }>;
type QueueRow = ExpressionBuilder<{ outbox: OutboxColumns }, 'outbox'>;

/** Neither delivered nor given up on. */
function unsettled(eb: QueueRow) {
  return eb.and([eb('delivered_at', 'is', null), eb('gave_up_at', 'is', null)]);
}

/** Unsettled, its next try reached, and no live lease on it: what a sweep may take at `now`. */
function takeable(now: string) {
  return (eb: QueueRow) =>
    eb.and([
      unsettled(eb),
      eb('next_attempt_at', '<=', now),
      eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]),
    ]);
}

/** The outbox tables: queueing, claiming and settling deliveries, and what a receipt shows of them. */
export class OutboxRepository {
  constructor(readonly c: Connection) {}

  get #queue(): QueueDb {
    return this.c.db as unknown as QueueDb;
  }

  /** Rows due for a try: not settled, their next try reached, and no live lease on them. */
  async due<T extends OutboxName>(
    table: T,
    only: OutboxFilter<T> | null,
    now: string,
    limit: number,
  ): Promise<OutboxRow<T>[]> {
    const db = this.#queue;
    let query = db
      .selectFrom(table as unknown as 'outbox')
      .selectAll()
      .where(takeable(now));
    if (only) {
      if (only.values.length === 0) return [];
      query = query.where(db.dynamic.ref(only.column), 'in', [...only.values]);
    }
    const rows = await query.orderBy('next_attempt_at').limit(limit).execute();
    return rows as unknown as OutboxRow<T>[];
  }

  /**
   * Takes the row for one try unless it is settled, someone else holds a live lease on it, or it was tried since it
   * was read as due (`attempts` moved on): a sweep working from a stale read never tries twice or early.
   */
  async claim(
    table: OutboxName,
    id: string,
    attempts: number,
    now: string,
    leaseUntil: string,
  ): Promise<boolean> {
    const res = await this.#queue
      .updateTable(table as unknown as 'outbox')
      .set({ lease_until: leaseUntil })
      .where('id', '=', id)
      .where('attempts', '=', attempts)
      .where(takeable(now))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Records a try's outcome, only while this try's lease is still the row's: a lapsed one was taken over. */
  async settle(
    table: OutboxName,
    id: string,
    lease: string,
    patch: Partial<OutboxColumns>,
  ): Promise<boolean> {
    const res = await this.#queue
      .updateTable(table as unknown as 'outbox')
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
  async releaseLeases(table: OutboxName): Promise<number> {
    if (this.c.dialect === 'postgres') return 0;
    const res = await this.#queue
      .updateTable(table as unknown as 'outbox')
      .set({ lease_until: null })
      .where('lease_until', 'is not', null)
      .where(unsettled)
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  // --- callbacks -----------------------------------------------------------------------------------------------

  async hasCallback(actionId: string, type: string): Promise<boolean> {
    const row = await this.c.db
      .selectFrom('callbacks')
      .select('id')
      .where('action_id', '=', actionId)
      .where('type', '=', type)
      .executeTakeFirst();
    return row !== undefined;
  }

  async insertCallback(row: CallbackRow): Promise<void> {
    await this.c.db.insertInto('callbacks').values(row).execute();
  }

  async listCallbacks(actionId: string) {
    return this.c.db
      .selectFrom('callbacks')
      .select(['id', 'type', 'url', 'attempts', 'delivered_at', 'gave_up_at', 'last_status', 'last_error'])
      .where('action_id', '=', actionId)
      .orderBy('created_at')
      .execute();
  }

  // --- notifications -------------------------------------------------------------------------------------------

  /** Queues messages; one already queued for the same action, hold, channel and recipient is left as it is. */
  async insertNotifications(rows: NotificationRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.c.db
      .insertInto('notifications')
      .values(rows)
      .onConflict((oc) => oc.columns(['action_id', 'event', 'version', 'channel', 'recipient']).doNothing())
      .execute();
  }

  /** Keeps the message composed on the first try, so every retry sends the same one. */
  async setNotificationPayload(id: string, payload: string): Promise<void> {
    await this.c.db.updateTable('notifications').set({ payload }).where('id', '=', id).execute();
  }

  async setNotificationStatus(id: string, status: string): Promise<void> {
    await this.c.db.updateTable('notifications').set({ status }).where('id', '=', id).execute();
  }

  /** An action's notifications as the receipt shows them: never the payload, which holds the reviewers' links. */
  async listNotifications(actionId: string) {
    return this.c.db
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

  /** Every notification of an action, payload included, by recipient: what the delivery tests inspect. */
  async notificationsFor(actionId: string): Promise<NotificationRow[]> {
    return this.c.db
      .selectFrom('notifications')
      .selectAll()
      .where('action_id', '=', actionId)
      .orderBy('recipient')
      .execute();
  }
}

/** Anything that carries the outbox repository of its connection: a Store, or one bound to a transaction. */
export interface WithOutbox {
  readonly outbox: OutboxRepository;
}

/**
 * The queue operations of one outbox table, on `store` (a Store: the delivery loop settles in its transactions).
 * `only` narrows it to the rows this instance can deliver.
 */
export class OutboxQueue<T extends OutboxName, S extends WithOutbox = WithOutbox> {
  constructor(
    readonly store: S,
    readonly table: T,
    readonly only: OutboxFilter<T> | null = null,
  ) {}

  due(now: string, limit: number): Promise<OutboxRow<T>[]> {
    return this.store.outbox.due(this.table, this.only, now, limit);
  }

  claim(id: string, attempts: number, now: string, leaseUntil: string): Promise<boolean> {
    return this.store.outbox.claim(this.table, id, attempts, now, leaseUntil);
  }

  /** Settles inside `tx`, the transaction that records the outcome's other effects. */
  settle(tx: S, id: string, lease: string, patch: Partial<OutboxColumns>): Promise<boolean> {
    return tx.outbox.settle(this.table, id, lease, patch);
  }

  releaseLeases(): Promise<number> {
    return this.store.outbox.releaseLeases(this.table);
  }
}

// The engine's and the notifier's calls, on whichever store (or transaction) they are given.

export function hasCallback(tx: WithOutbox, actionId: string, type: string): Promise<boolean> {
  return tx.outbox.hasCallback(actionId, type);
}

export function insertCallback(tx: WithOutbox, row: CallbackRow): Promise<void> {
  return tx.outbox.insertCallback(row);
}

export function listCallbacks(store: WithOutbox, actionId: string) {
  return store.outbox.listCallbacks(actionId);
}

export function insertNotifications(tx: WithOutbox, rows: NotificationRow[]): Promise<void> {
  return tx.outbox.insertNotifications(rows);
}

export function setNotificationPayload(store: WithOutbox, id: string, payload: string): Promise<void> {
  return store.outbox.setNotificationPayload(id, payload);
}

export function setNotificationStatus(tx: WithOutbox, id: string, status: string): Promise<void> {
  return tx.outbox.setNotificationStatus(id, status);
}

export function listNotifications(store: WithOutbox, actionId: string) {
  return store.outbox.listNotifications(actionId);
}
