import type { Selectable } from 'kysely';
import { type Connection, shaped, shapeText, written } from './connection.ts';
import type { ActionsTable } from './schema.ts';
import type { Status } from './status.ts';
import {
  BUCKET_COLUMNS,
  BucketChanges,
  type BucketFacts,
  isBucketed,
  patched,
  touchesBuckets,
} from './velocity-buckets.ts';

export type ActionRow = Selectable<ActionsTable>;

/**
 * The columns a guarded update may change. The status is not one of them: it is set on insert and by
 * `transition`, which names the state it leaves and the one it enters.
 */
export type ActionPatch = Partial<Omit<ActionRow, 'id' | 'status'>>;

/** What an audit export carries of an action: never the request, the response or the caller's headers. */
export type ActionExportRow = Pick<
  ActionRow,
  | 'id'
  | 'status'
  | 'kind'
  | 'mode'
  | 'method'
  | 'path'
  | 'url'
  | 'amount'
  | 'currency'
  | 'amount_usd'
  | 'agent_id'
  | 'requested_by'
  | 'customer'
  | 'on_account'
  | 'decision'
  | 'policy_version'
  | 'request_hash'
  | 'last_error'
  | 'created_at'
  | 'decided_at'
  | 'completed_at'
  | 'updated_at'
>;

/** One of a customer's earlier actions, as the receipt's history counts them. */
export type CustomerActionRow = Pick<
  ActionRow,
  'id' | 'kind' | 'status' | 'amount' | 'currency' | 'created_at'
>;

export interface ListActionsQuery {
  status?: Status | undefined;
  agentId?: string | undefined;
  limit: number;
  startingAfter?: string | undefined;
}

/** Patches are typed without a status, but a value typed wider (a spread row) could still carry one. */
function patchOnly<P extends object>(patch: P): P {
  if ('status' in patch) throw new Error('an action patch cannot change the status: that is a transition');
  return patch;
}

/** The actions table: the engine's lifecycle rows, with their leases for dispatch. */
export class ActionsRepository {
  constructor(readonly c: Connection) {}

  /** PostgreSQL keeps velocity windows in per-minute buckets (velocity-buckets.ts), updated with the rows. */
  get #buckets(): boolean {
    return this.c.dialect === 'postgres';
  }

  async insert(row: ActionRow): Promise<void> {
    // Kysely leaves undefined values out of the statement; so does the shape.
    const columns = (Object.keys(row) as (keyof ActionRow)[]).filter((c) => row[c] !== undefined);
    const shape = `insert actions ${columns.join(',')}`;
    const build = () => this.c.db.insertInto('actions').values(row);
    const parameters = columns.map((c) => row[c]);
    if (this.#buckets && isBucketed(row.status)) {
      const changes = new BucketChanges();
      changes.add(row, 1);
      await this.#applyBuckets(changes, {
        shape,
        text: shapeText(this.c, shape, build, parameters),
        parameters,
      });
    } else {
      await shaped(this.c, shape, build, parameters);
    }
    this.c.velocity?.inserted(row, this.c.journal ?? null);
  }

  /** Whether an update that changes buckets (`rebuckets`) is about to run in more than one transaction. */
  #outsideTransaction(rebuckets: boolean): boolean {
    return this.#buckets && rebuckets && !this.c.db.isTransaction;
  }

  /** Runs fn in a transaction of its own, so that an action's row and its buckets change together or not at all. */
  #inTransaction<T>(fn: (actions: ActionsRepository) => Promise<T>): Promise<T> {
    return this.c.db.transaction().execute((trx) => fn(new ActionsRepository({ ...this.c, db: trx })));
  }

  /**
   * Before an update that changes what a counted action adds to its buckets (its amount, time or keys): those facts,
   * with the row locked until commit. null when the update leaves its buckets as they are, or it is not counted.
   */
  async #factsBefore(id: string, status: Status, patch: ActionPatch): Promise<BucketFacts | null> {
    if (!isBucketed(status) || !touchesBuckets(patch)) return null;
    const rows = await written<BucketFacts>(
      this.c,
      'action bucket facts for update',
      () => `select ${BUCKET_COLUMNS.join(', ')} from actions where id = $1 and status = $2 for update`,
      [id, status],
    );
    return rows[0] ?? null;
  }

  /**
   * Keeps the buckets exact after a guarded update moved an action from `from` to `to`: takes away what it added
   * before (`before`, or `after` when the update left its facts alone) and adds what it adds now.
   */
  async #rebucket(before: BucketFacts | null, from: Status, to: Status, after: BucketFacts): Promise<void> {
    const changes = new BucketChanges();
    if (isBucketed(from)) changes.add(before ?? after, -1);
    if (isBucketed(to)) changes.add(after, 1);
    await this.#applyBuckets(changes);
  }

  /**
   * Applies bucket changes in one statement; with `before` (an insert of the action), chained to it in the same
   * statement, so an action and its buckets cost one round trip.
   */
  async #applyBuckets(
    changes: BucketChanges,
    before?: { shape: string; text: string; parameters: unknown[] },
  ): Promise<void> {
    const parameters = before ? [...before.parameters] : [];
    if (changes.size === 0) {
      if (before) await written(this.c, before.shape, () => before.text, parameters);
      return;
    }
    const offset = parameters.length;
    parameters.push(...changes.parameters());
    await written(
      this.c,
      `${before?.shape ?? 'update'} and ${changes.size} buckets`,
      () => (before ? `with a as (${before.text}) ` : '') + changes.sql(offset),
      parameters,
    );
  }

  async get(id: string): Promise<ActionRow | undefined> {
    return this.c.db.selectFrom('actions').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * Inside a transaction: reads the action and locks its row until commit, so two reviewers voting at once on
   * different instances are counted one after the other (SQLite's write lock already does this).
   */
  async getForUpdate(id: string): Promise<ActionRow | undefined> {
    let query = this.c.db.selectFrom('actions').selectAll().where('id', '=', id);
    if (this.c.dialect === 'postgres') query = query.forUpdate();
    return query.executeTakeFirst();
  }

  async findByScope(scope: string): Promise<ActionRow | undefined> {
    const rows = await shaped(
      this.c,
      'select action by scope',
      () => this.c.db.selectFrom('actions').selectAll().where('idempotency_scope', '=', scope),
      [scope],
    );
    return rows[0];
  }

  /** Whether an action holds this idempotency scope: read from the unique index alone. */
  async hasScope(scope: string): Promise<boolean> {
    const rows = await shaped(
      this.c,
      'action id by scope',
      () => this.c.db.selectFrom('actions').select('id').where('idempotency_scope', '=', scope),
      [scope],
    );
    return rows.length > 0;
  }

  /** A guarded update that keeps the status: it changes nothing unless the row is still in `status`. */
  async updateIn(id: string, status: Status, patch: ActionPatch): Promise<boolean> {
    if (this.#outsideTransaction(isBucketed(status) && touchesBuckets(patch))) {
      return this.#inTransaction((actions) => actions.updateIn(id, status, patch));
    }
    const before = this.#buckets ? await this.#factsBefore(id, status, patch) : null;
    const res = await this.c.db
      .updateTable('actions')
      .set(patchOnly(patch))
      .where('id', '=', id)
      .where('status', '=', status)
      .executeTakeFirst();
    const updated = Number(res.numUpdatedRows) === 1;
    if (updated && before) await this.#rebucket(before, status, status, patched(before, patch));
    if (updated && patch.amount_usd !== undefined) {
      this.c.velocity?.revalued(id, patch.amount_usd, this.c.journal ?? null);
    }
    return updated;
  }

  /**
   * The guarded update behind every transition: moves the row from `from` to `to` with the patch, unless it has
   * moved on. Returns the changed row instead of a second read; undefined if it had moved.
   */
  async transition(id: string, from: Status, to: Status, patch: ActionPatch): Promise<ActionRow | undefined> {
    const counted = isBucketed(from) || isBucketed(to);
    const rebuckets = isBucketed(from) !== isBucketed(to) || (counted && touchesBuckets(patch));
    if (this.#outsideTransaction(rebuckets)) {
      return this.#inTransaction((actions) => actions.transition(id, from, to, patch));
    }
    const set = { ...patchOnly(patch), status: to };
    const columns = (Object.keys(set) as (keyof typeof set)[]).filter((c) => set[c] !== undefined);
    const before = this.#buckets ? await this.#factsBefore(id, from, patch) : null;
    const rows = await shaped(
      this.c,
      `transition action ${columns.join(',')}`,
      () =>
        this.c.db
          .updateTable('actions')
          .set(set)
          .where('id', '=', id)
          .where('status', '=', from)
          .returningAll(),
      [...columns.map((c) => set[c]), id, from],
    );
    if (rows[0] && this.#buckets) await this.#rebucket(before, from, to, rows[0]);
    if (rows[0] && this.c.velocity) {
      const journal = this.c.journal ?? null;
      if (patch.amount_usd !== undefined) this.c.velocity.revalued(id, patch.amount_usd, journal);
      this.c.velocity.moved(id, from, to, journal);
    }
    return rows[0];
  }

  /** Claims a pending action for dispatch unless another dispatcher holds a live lease on it. */
  async claim(id: string, owner: string, now: string, leaseUntil: string): Promise<boolean> {
    const res = await this.c.db
      .updateTable('actions')
      .set((eb) => ({
        lease_owner: owner,
        lease_until: leaseUntil,
        attempts: eb('attempts', '+', 1),
        updated_at: now,
      }))
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async releaseLease(id: string, owner: string, patch: ActionPatch): Promise<boolean> {
    // Neither the velocity buckets nor the in-memory aggregates follow a change made here.
    if (touchesBuckets(patch))
      throw new Error('a lease release cannot change what an action counts in its windows');
    const res = await this.c.db
      .updateTable('actions')
      .set({ ...patchOnly(patch), lease_owner: null, lease_until: null })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /**
   * A single SQLite process owns its file, so leases left by a crashed run can be released at start-up. On
   * PostgreSQL other live instances hold leases too: a dead instance's leases expire and are taken over instead.
   */
  async releaseAllLeases(): Promise<number> {
    if (this.c.dialect === 'postgres') return 0;
    const res = await this.c.db
      .updateTable('actions')
      .set({ lease_owner: null, lease_until: null })
      .where('status', '=', 'pending')
      .where('lease_owner', 'is not', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  /** Pending actions whose lease this dispatcher holds (after a store outage, some may have no run behind them). */
  async listLeasedBy(owner: string): Promise<string[]> {
    const rows = await this.c.db
      .selectFrom('actions')
      .select('id')
      .where('status', '=', 'pending')
      .where('lease_owner', '=', owner)
      .execute();
    return rows.map((r) => r.id);
  }

  /**
   * Pending actions due for a dispatcher's sweep. On PostgreSQL an action's first seconds in `pending` belong to
   * the instance that put it there (it answers the waiting agent) and to those woken by NOTIFY; another
   * instance's sweep taking it first would leave that agent without Stripe's answer. The sweep is the fallback
   * for missed wake-ups, retries and dead instances.
   */
  async listDispatchable(now: string, limit: number, handoffMs = 2_000): Promise<string[]> {
    let query = this.c.db
      .selectFrom('actions')
      .select('id')
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]));
    if (this.c.dialect === 'postgres') {
      query = query.where('updated_at', '<=', new Date(Date.parse(now) - handoffMs).toISOString());
    }
    const rows = await query.orderBy('created_at').limit(limit).execute();
    return rows.map((r) => r.id);
  }

  async listExpiredHolds(now: string, limit: number): Promise<string[]> {
    const rows = await this.c.db
      .selectFrom('actions')
      .select('id')
      .where('status', '=', 'awaiting_approval')
      .where('expires_at', '<=', now)
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Newest first with keyset pagination on (created_at, id), as Stripe lists are. */
  async list(q: ListActionsQuery): Promise<{ rows: ActionRow[]; hasMore: boolean }> {
    let query = this.c.db.selectFrom('actions').selectAll();
    if (q.status) query = query.where('status', '=', q.status);
    if (q.agentId) query = query.where('agent_id', '=', q.agentId);
    if (q.startingAfter) {
      const cursor = await this.get(q.startingAfter);
      if (cursor) {
        const { created_at: c, id } = cursor;
        query = query.where((eb) =>
          eb.or([eb('created_at', '<', c), eb.and([eb('created_at', '=', c), eb('id', '<', id)])]),
        );
      }
    }
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(q.limit + 1)
      .execute();
    return { rows: rows.slice(0, q.limit), hasMore: rows.length > q.limit };
  }

  /**
   * Writes (not reads) created in [since, until), oldest first, a page after `after`: what a policy simulation
   * decides again.
   */
  async writesCreatedBetween(
    since: string,
    until: string,
    after: { created_at: string; id: string } | null,
    limit: number,
  ): Promise<ActionRow[]> {
    let query = this.c.db
      .selectFrom('actions')
      .selectAll()
      .where('created_at', '>=', since)
      .where('created_at', '<', until)
      .where('read', '=', 0);
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('created_at', '>', after.created_at),
          eb.and([eb('created_at', '=', after.created_at), eb('id', '>', after.id)]),
        ]),
      );
    }
    return query.orderBy('created_at').orderBy('id').limit(limit).execute();
  }

  /** Actions changed at or after `since`, in (updated_at, id) order, a page after `after`: an audit export's. */
  async changedSince(
    since: string,
    after: { updated_at: string; id: string } | null,
    limit: number,
  ): Promise<ActionExportRow[]> {
    let query = this.c.db
      .selectFrom('actions')
      .select([
        'id',
        'status',
        'kind',
        'mode',
        'method',
        'path',
        'url',
        'amount',
        'currency',
        'amount_usd',
        'agent_id',
        'requested_by',
        'customer',
        'on_account',
        'decision',
        'policy_version',
        'request_hash',
        'last_error',
        'created_at',
        'decided_at',
        'completed_at',
        'updated_at',
      ])
      .where('updated_at', '>=', since);
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('updated_at', '>', after.updated_at),
          eb.and([eb('updated_at', '=', after.updated_at), eb('id', '>', after.id)]),
        ]),
      );
    }
    return query.orderBy('updated_at').orderBy('id').limit(limit).execute();
  }

  /**
   * A customer's earlier actions on one account (null: the platform's), newest first, without `excludeId`: what a
   * reviewer reads as "what happened to this customer through Airlock". Bounded by `limit`.
   */
  async forCustomer(
    customer: string,
    account: string | null,
    excludeId: string,
    limit: number,
  ): Promise<CustomerActionRow[]> {
    let query = this.c.db
      .selectFrom('actions')
      .select(['id', 'kind', 'status', 'amount', 'currency', 'created_at'])
      .where('customer', '=', customer)
      .where('id', '!=', excludeId);
    query =
      account === null ? query.where('on_account', 'is', null) : query.where('on_account', '=', account);
    return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  }
}
