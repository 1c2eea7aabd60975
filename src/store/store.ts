import { isDeepStrictEqual } from 'node:util';
import { type Compilable, CompiledQuery, type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import { AirlockError, StoreUnavailable } from '../errors.ts';
import { sha256Hex } from '../ids.ts';
import { canonicalJson } from '../stripe/params.ts';
import { GroupCommit, type WalSync } from './group-commit.ts';
import { type Dialect, GENESIS_HASH } from './migrations.ts';
import type { ActionsTable, ApprovalsTable, Database, LedgerTable } from './schema.ts';

export type ActionRow = Selectable<ActionsTable>;
export type ApprovalRow = Selectable<ApprovalsTable>;
export type LedgerRow = Selectable<LedgerTable>;

export interface LedgerEventInput {
  actionId: string | null;
  type: string;
  from: string | null;
  to: string | null;
  actor: string;
  data: Record<string, unknown>;
  at: string;
}

/** The hash covers every field of the event and the previous hash, so editing, reordering or deleting one breaks the chain. */
export function ledgerHash(prevHash: string, e: Omit<LedgerRow, 'hash' | 'prev_hash'>): string {
  return sha256Hex(
    `${prevHash}\n${canonicalJson({
      seq: e.seq,
      action_id: e.action_id,
      type: e.type,
      from: e.from_status,
      to: e.to_status,
      actor: e.actor,
      data: e.data,
      at: e.at,
    })}`,
  );
}

// Kysely builds and compiles every query anew: about 130 µs of CPU for the 40-column action insert, more than
// SQLite takes to store it. The SQL of one query shape never changes, so the hot path's statements are compiled
// once per shape and dialect and then run with new parameters. The first compile checks the parameter order.
const shapes = new Map<string, string>();
const LEDGER_COLUMNS = [
  'seq',
  'action_id',
  'type',
  'from_status',
  'to_status',
  'actor',
  'data',
  'at',
  'prev_hash',
  'hash',
] as const satisfies readonly (keyof LedgerRow)[];

export interface ListActionsQuery {
  status?: string | undefined;
  agentId?: string | undefined;
  limit: number;
  startingAfter?: string | undefined;
}

/** The NOTIFY channel that carries the id of an action made dispatchable, to every instance. */
export const ACTIONS_READY_CHANNEL = 'airlock_actions_ready';

/** The NOTIFY channel that tells every instance a credential was revoked, so key caches drop what they hold. */
export const CREDENTIALS_CHANNEL = 'airlock_credentials';

/** Signals between instances sharing one database. PostgreSQL carries them with LISTEN/NOTIFY. */
export interface StoreSignals {
  onActionsReady(cb: (id: string) => void): () => void;
  /** cb runs on every revocation, and after any gap in listening, during which one may have been missed. */
  onCredentialsChanged(cb: () => void): () => void;
  /** True while notifications arrive: only then may a cache rely on them. */
  readonly live: boolean;
  /** Resolves once this instance is listening. */
  listening(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The one persistence interface the engine uses. Kysely keeps the SQL dialect-neutral, so SQLite and PostgreSQL
 * share this class; only opening a connection, row locks and cross-instance signals differ.
 */
export class Store {
  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
    readonly signals: StoreSignals | null = null,
    /** SQLite opened with synchronous=FULL, the default; relaxed commits then drop to NORMAL one at a time. */
    readonly fullSync = true,
    /** SQLite file stores: fdatasync of the WAL, so durable commits wait for it off the event loop. */
    syncWal: WalSync | null = null,
  ) {
    // One SQLite connection serialises every write anyway; sharing commits between them saves the fsyncs.
    this.#group =
      dialect === 'sqlite' && !db.isTransaction
        ? new GroupCommit<Store>(
            db,
            fullSync,
            asStoreError,
            (trx) => new Store(trx, dialect, signals, fullSync),
            syncWal,
          )
        : null;
  }

  readonly #group: GroupCommit<Store> | null;
  #ledgerHead: { seq: number; hash: string } | null = null;
  #headDirty = false;

  /** Runs fn on a Store bound to the transaction and writes the ledger head before the commit. */
  async #inTransaction<T>(trx: Transaction<Database>, fn: (tx: Store) => Promise<T>): Promise<T> {
    const tx = new Store(trx, this.dialect, this.signals, this.fullSync);
    const result = await fn(tx);
    await tx.flushLedgerHead();
    return result;
  }

  /**
   * Runs fn in one transaction; any driver failure surfaces as StoreUnavailable so callers fail closed. Inside a
   * transaction it joins the one already open.
   */
  async transaction<T>(fn: (tx: Store) => Promise<T>, opts: { durable?: boolean } = {}): Promise<T> {
    if (this.db.isTransaction) return fn(this);
    try {
      const result = await this.#transaction(fn, opts.durable !== false);
      this.#answeredAt = performance.now();
      return result;
    } catch (err) {
      if (err instanceof AirlockError && err.code === 'store_unavailable') this.#answeredAt = 0;
      throw err;
    }
  }

  async #transaction<T>(fn: (tx: Store) => Promise<T>, durable: boolean): Promise<T> {
    if (this.#group) return this.#group.run(fn, durable);
    if (!durable) return this.#relaxedTransaction(fn);
    try {
      return await this.db
        .transaction()
        .execute((trx: Transaction<Database>) => this.#inTransaction(trx, fn));
    } catch (err) {
      throw asStoreError(err);
    }
  }

  /**
   * A commit that may be lost on power failure or a database server crash (not on a crash of Airlock), for
   * records that can be rebuilt: a
   * completion lost this way leaves the action pending, and its re-dispatch with the same Idempotency-Key gets
   * Stripe's stored answer. It saves an fsync on the hot path; nothing that precedes an upstream call uses it.
   * PostgreSQL's form; SQLite's is a relaxed batch of the group commit.
   */
  async #relaxedTransaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        await sql`set local synchronous_commit = off`.execute(trx);
        return this.#inTransaction(trx, fn);
      });
    } catch (err) {
      throw asStoreError(err);
    }
  }

  async close(): Promise<void> {
    await this.signals?.close();
    await this.db.destroy();
    await this.#group?.close();
  }

  // --- coordination between instances ---------------------------------------------------------------------------

  /**
   * Calls cb with the id of each action another instance (or this one) made dispatchable. A no-op on SQLite,
   * where one process owns the file and the engine's in-process events suffice; polling stays as the fallback.
   */
  onActionsReady(cb: (id: string) => void): () => void {
    return this.signals ? this.signals.onActionsReady(cb) : () => {};
  }

  async actionsReadyListening(): Promise<void> {
    await this.signals?.listening();
  }

  /** Calls cb when another instance (or this one) revoked a credential; a no-op on SQLite, which has no signals. */
  onCredentialsChanged(cb: () => void): () => void {
    return this.signals ? this.signals.onCredentialsChanged(cb) : () => {};
  }

  /** True when a revocation elsewhere would reach this instance at once: PostgreSQL, while LISTEN is up. */
  get credentialSignalsLive(): boolean {
    return this.signals?.live ?? false;
  }

  /** Tells every instance that a credential was revoked (on commit, inside a transaction). */
  async notifyCredentialsChanged(): Promise<void> {
    if (this.dialect !== 'postgres') return;
    await sql`select pg_notify(${CREDENTIALS_CHANNEL}, '')`.execute(this.db);
  }

  /**
   * Runs fn while no other decision for this agent runs, on any instance, inside one transaction whose writes
   * commit with it. On PostgreSQL the transaction holds the agent's advisory lock. On SQLite it is a job of the
   * group commit: one process owns the file, and the jobs run one at a time on its one connection, each seeing
   * what the jobs before it wrote. So an agent's next decision may join the same batch as its last one instead of
   * waiting for that batch's commit, which it would do behind a lock of its own.
   */
  async serializeAgent<T>(agentId: string, fn: (store: Store) => Promise<T>): Promise<T> {
    return this.transaction(async (tx) => {
      if (this.dialect === 'postgres') await tx.lockAgent(agentId);
      return fn(tx);
    });
  }

  /** Inside a transaction: tells every instance, on commit, that the action can be dispatched. */
  async notifyActionReady(id: string): Promise<void> {
    if (this.dialect !== 'postgres') return;
    await sql`select pg_notify(${ACTIONS_READY_CHANNEL}, ${id})`.execute(this.db);
  }

  /**
   * Inside a transaction: serialises decisions for one agent across instances until commit, so a velocity window
   * read by one decision already includes the action the previous one recorded. SQLite's BEGIN IMMEDIATE already
   * serialises every writing transaction, so there it is a no-op.
   */
  async lockAgent(agentId: string): Promise<void> {
    if (this.dialect !== 'postgres') return;
    await sql`select pg_advisory_xact_lock(hashtextextended(${`airlock.agent:${agentId}`}, 0))`.execute(
      this.db,
    );
  }

  async ping(): Promise<void> {
    try {
      await sql`select 1`.execute(this.db);
      this.#answeredAt = performance.now();
    } catch (err) {
      this.#answeredAt = 0;
      throw new StoreUnavailable(err);
    }
  }

  /** When the store last completed a ping or a transaction (performance.now()); 0 once one failed. */
  #answeredAt = 0;

  /**
   * Throws StoreUnavailable unless the store can be reached: known from a ping or transaction that succeeded in
   * the last `maxAgeMs` and none failing since, or else by a ping. Under traffic this costs no round trip.
   */
  async ensureReachable(maxAgeMs = 250): Promise<void> {
    if (this.#answeredAt > 0 && performance.now() - this.#answeredAt < maxAgeMs) return;
    await this.ping();
  }

  // --- agents and reviewers (credential look-ups, which check expiry and revocation, are in auth/) --------------

  async findOrCreateAgent(id: string, name: string, at: string): Promise<{ id: string; name: string }> {
    const existing = await this.db
      .selectFrom('agents')
      .select(['id', 'name'])
      .where('name', '=', name)
      .executeTakeFirst();
    if (existing) return existing;
    await this.db.insertInto('agents').values({ id, name, created_at: at }).execute();
    return { id, name };
  }

  async insertAgentKey(row: {
    id: string;
    agent_id: string;
    key_hash: string;
    prefix: string;
    created_at: string;
  }) {
    await this.db
      .insertInto('agent_keys')
      .values({ ...row, revoked_at: null })
      .execute();
  }

  async getAgent(id: string): Promise<{ id: string; name: string } | undefined> {
    return this.db.selectFrom('agents').select(['id', 'name']).where('id', '=', id).executeTakeFirst();
  }

  async upsertReviewer(row: {
    id: string;
    email: string;
    password_hash: string | null;
    groups: string[];
    created_at: string;
  }): Promise<{ id: string; email: string }> {
    const existing = await this.db
      .selectFrom('reviewers')
      .select(['id', 'email'])
      .where('email', '=', row.email)
      .executeTakeFirst();
    if (existing) {
      await this.db
        .updateTable('reviewers')
        .set({
          groups: JSON.stringify(row.groups),
          ...(row.password_hash ? { password_hash: row.password_hash } : {}),
        })
        .where('id', '=', existing.id)
        .execute();
      return existing;
    }
    await this.db
      .insertInto('reviewers')
      .values({ ...row, groups: JSON.stringify(row.groups) })
      .execute();
    return { id: row.id, email: row.email };
  }

  async insertReviewerToken(row: {
    id: string;
    reviewer_id: string;
    token_hash: string;
    created_at: string;
  }) {
    await this.db.insertInto('reviewer_tokens').values(row).execute();
  }

  async findReviewerByEmail(
    email: string,
  ): Promise<{ id: string; email: string; groups: string[] } | undefined> {
    const row = await this.db
      .selectFrom('reviewers')
      .select(['id', 'email', 'groups'])
      .where('email', '=', email)
      .executeTakeFirst();
    return row ? { id: row.id, email: row.email, groups: JSON.parse(row.groups) as string[] } : undefined;
  }

  // --- actions --------------------------------------------------------------------------------------------------

  /** Runs a query of a known shape with `parameters` in the order Kysely would bind them. */
  async shaped<R>(shape: string, build: () => Compilable<R>, parameters: unknown[]): Promise<R[]> {
    const key = `${this.dialect}:${shape}`;
    let text = shapes.get(key);
    if (text === undefined) {
      const compiled = build().compile();
      if (!isDeepStrictEqual([...compiled.parameters], parameters)) {
        throw new Error(`query shape ${shape} binds its parameters in another order`);
      }
      text = compiled.sql;
      shapes.set(key, text);
    }
    const result = await this.db.executeQuery<R>(CompiledQuery.raw(text, parameters));
    return result.rows;
  }

  async insertAction(row: ActionRow): Promise<void> {
    // Kysely leaves undefined values out of the statement; so does the shape.
    const columns = (Object.keys(row) as (keyof ActionRow)[]).filter((c) => row[c] !== undefined);
    await this.shaped(
      `insert actions ${columns.join(',')}`,
      () => this.db.insertInto('actions').values(row),
      columns.map((c) => row[c]),
    );
  }

  async getAction(id: string): Promise<ActionRow | undefined> {
    return this.db.selectFrom('actions').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * Inside a transaction: reads the action and locks its row until commit, so two reviewers voting at once on
   * different instances are counted one after the other (SQLite's write lock already does this).
   */
  async getActionForUpdate(id: string): Promise<ActionRow | undefined> {
    let query = this.db.selectFrom('actions').selectAll().where('id', '=', id);
    if (this.dialect === 'postgres') query = query.forUpdate();
    return query.executeTakeFirst();
  }

  async findActionByScope(scope: string): Promise<ActionRow | undefined> {
    const rows = await this.shaped(
      'select action by scope',
      () => this.db.selectFrom('actions').selectAll().where('idempotency_scope', '=', scope),
      [scope],
    );
    return rows[0];
  }

  /** Whether an action holds this idempotency scope: read from the unique index alone. */
  async hasActionWithScope(scope: string): Promise<boolean> {
    const rows = await this.shaped(
      'action id by scope',
      () => this.db.selectFrom('actions').select('id').where('idempotency_scope', '=', scope),
      [scope],
    );
    return rows.length > 0;
  }

  /** The guarded update behind every transition: it changes nothing unless the row is still in `from`. */
  async updateActionFrom(id: string, from: string, patch: Partial<ActionRow>): Promise<boolean> {
    const res = await this.db
      .updateTable('actions')
      .set(patch)
      .where('id', '=', id)
      .where('status', '=', from)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** As updateActionFrom, returning the changed row instead of a second read; undefined if it had moved. */
  async updateActionFromReturning(
    id: string,
    from: string,
    patch: Partial<ActionRow>,
  ): Promise<ActionRow | undefined> {
    const columns = (Object.keys(patch) as (keyof ActionRow)[]).filter((c) => patch[c] !== undefined);
    const rows = await this.shaped(
      `update action from ${columns.join(',')}`,
      () =>
        this.db
          .updateTable('actions')
          .set(patch)
          .where('id', '=', id)
          .where('status', '=', from)
          .returningAll(),
      [...columns.map((c) => patch[c]), id, from],
    );
    return rows[0];
  }

  /** Claims a pending action for dispatch unless another dispatcher holds a live lease on it. */
  async claimAction(id: string, owner: string, now: string, leaseUntil: string): Promise<boolean> {
    const res = await this.db
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

  async releaseLease(id: string, owner: string, patch: Partial<ActionRow>): Promise<boolean> {
    const res = await this.db
      .updateTable('actions')
      .set({ ...patch, lease_owner: null, lease_until: null })
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
    if (this.dialect === 'postgres') return 0;
    const res = await this.db
      .updateTable('actions')
      .set({ lease_owner: null, lease_until: null })
      .where('status', '=', 'pending')
      .where('lease_owner', 'is not', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  /** Pending actions whose lease this dispatcher holds (after a store outage, some may have no run behind them). */
  async listLeasedBy(owner: string): Promise<string[]> {
    const rows = await this.db
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
    let query = this.db
      .selectFrom('actions')
      .select('id')
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]));
    if (this.dialect === 'postgres') {
      query = query.where('updated_at', '<=', new Date(Date.parse(now) - handoffMs).toISOString());
    }
    const rows = await query.orderBy('created_at').limit(limit).execute();
    return rows.map((r) => r.id);
  }

  async listExpiredHolds(now: string, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('actions')
      .select('id')
      .where('status', '=', 'awaiting_approval')
      .where('expires_at', '<=', now)
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Newest first with keyset pagination on (created_at, id), as Stripe lists are. */
  async listActions(q: ListActionsQuery): Promise<{ rows: ActionRow[]; hasMore: boolean }> {
    let query = this.db.selectFrom('actions').selectAll();
    if (q.status) query = query.where('status', '=', q.status);
    if (q.agentId) query = query.where('agent_id', '=', q.agentId);
    if (q.startingAfter) {
      const cursor = await this.getAction(q.startingAfter);
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

  // --- approvals ------------------------------------------------------------------------------------------------

  async insertApproval(row: ApprovalRow): Promise<void> {
    await this.db.insertInto('approvals').values(row).execute();
  }

  /** Removes a vote given to an earlier version; the ledger keeps its record. */
  async deleteApproval(id: string): Promise<void> {
    await this.db.deleteFrom('approvals').where('id', '=', id).execute();
  }

  async listApprovals(actionId: string): Promise<ApprovalRow[]> {
    return this.db
      .selectFrom('approvals')
      .selectAll()
      .where('action_id', '=', actionId)
      .orderBy('at')
      .execute();
  }

  // --- ledger ---------------------------------------------------------------------------------------------------

  /** Appends one event to the chain. Must run inside a transaction, together with the change it records. */
  async appendLedger(e: LedgerEventInput): Promise<void> {
    await this.appendLedgerEvents([e]);
  }

  /** Appends events in order with one statement. */
  async appendLedgerEvents(events: LedgerEventInput[]): Promise<void> {
    // Within one transaction the head is read (and on PostgreSQL locked) once and written back once, at commit.
    let head = this.#ledgerHead;
    if (!head) {
      let headQuery = this.db.selectFrom('ledger_head').select(['seq', 'hash']).where('id', '=', 1);
      if (this.dialect === 'postgres') headQuery = headQuery.forUpdate();
      head = await headQuery.executeTakeFirstOrThrow();
    }
    const rows: LedgerRow[] = [];
    for (const e of events) {
      const row: Omit<LedgerRow, 'hash' | 'prev_hash'> = {
        seq: head.seq + 1,
        action_id: e.actionId,
        type: e.type,
        from_status: e.from,
        to_status: e.to,
        actor: e.actor,
        data: JSON.stringify(e.data),
        at: e.at,
      };
      const hash = ledgerHash(head.hash, row);
      rows.push({ ...row, prev_hash: head.hash, hash });
      head = { seq: row.seq, hash };
    }
    await this.shaped(
      `insert ledger x${rows.length}`,
      () => this.db.insertInto('ledger').values(rows),
      rows.flatMap((r) => LEDGER_COLUMNS.map((c) => r[c])),
    );
    const { seq, hash } = head;
    if (this.db.isTransaction) {
      this.#ledgerHead = { seq, hash };
      this.#headDirty = true;
    } else {
      await this.db.updateTable('ledger_head').set({ seq, hash }).where('id', '=', 1).execute();
    }
  }

  /** Where the chain ends in this transaction, so a batch can undo a failed job's events from it. */
  ledgerMark(): unknown {
    return { head: this.#ledgerHead, dirty: this.#headDirty };
  }

  ledgerRestore(mark: unknown): void {
    const m = mark as { head: { seq: number; hash: string } | null; dirty: boolean };
    this.#ledgerHead = m.head;
    this.#headDirty = m.dirty;
  }

  /** Writes the chain's new end; called by transaction() before it commits. */
  async flushLedgerHead(): Promise<void> {
    if (!this.#headDirty || !this.#ledgerHead) return;
    const { seq, hash } = this.#ledgerHead;
    await this.db.updateTable('ledger_head').set({ seq, hash }).where('id', '=', 1).execute();
    this.#headDirty = false;
  }

  async ledgerForAction(actionId: string): Promise<LedgerRow[]> {
    return this.db
      .selectFrom('ledger')
      .selectAll()
      .where('action_id', '=', actionId)
      .orderBy('seq')
      .execute();
  }

  async ledgerPage(afterSeq: number, limit: number): Promise<LedgerRow[]> {
    return this.db
      .selectFrom('ledger')
      .selectAll()
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute();
  }

  async ledgerHead(): Promise<{ seq: number; hash: string }> {
    const head = await this.db
      .selectFrom('ledger_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirst();
    return head ?? { seq: 0, hash: GENESIS_HASH };
  }
}

export function asStoreError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = 'code' in err ? String((err as { code: unknown }).code) : '';
  // Driver-level failures (locked, I/O, disk full, connection refused) mean the store cannot be trusted now.
  if (/^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOTADB)/.test(code))
    return new StoreUnavailable(err);
  // Connection failures, admin shutdown (57P), connection exceptions (08), insufficient resources (53), the
  // database gone (3D000) or refusing our credentials (28).
  if (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|57P0[1-3]|08...|53...|3D000|28...)$/.test(
      code,
    )
  )
    return new StoreUnavailable(err);
  // node-postgres reports a dropped or unobtainable connection with a message and no code; a store already
  // closed (Kysely's destroyed driver, better-sqlite3's closed handle) cannot answer either.
  if (
    !code &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|driver has already been destroyed|database connection is not open/.test(
      err.message,
    )
  )
    return new StoreUnavailable(err);
  return err;
}
