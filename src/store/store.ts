import { type Kysely, sql, type Transaction } from 'kysely';
import { AirlockError, StoreUnavailable } from '../errors.ts';
import { type ActionPatch, type ActionRow, ActionsRepository, type ListActionsQuery } from './actions.ts';
import { type ApprovalRow, ApprovalsRepository } from './approvals.ts';
import type { Connection } from './connection.ts';
import { type Agent, CredentialsRepository, type StoredReviewer } from './credentials.ts';
import { DashboardReads } from './dashboard.ts';
import { DigestsRepository } from './digests.ts';
import { FreezesRepository } from './freezes.ts';
import { type LedgerEntry, type LedgerEventInput, LedgerRepository, type LedgerRow } from './ledger.ts';
import { MetricsReads } from './metrics.ts';
import { type Dialect, migrateToLatest, pendingMigrations } from './migrations.ts';
import { OutboxRepository } from './outbox.ts';
import { PolicyVersionsRepository } from './policy-versions.ts';
import { RemindersRepository } from './reminders.ts';
import { ReviewRepository } from './review.ts';
import type { Database } from './schema.ts';
import { SettingsRepository } from './settings.ts';
import { SlackRepository } from './slack.ts';
import { GroupCommit, type WalSync } from './sqlite/group-commit.ts';
import type { Status } from './status.ts';
import { StripeEventsRepository } from './stripe-events.ts';
import { VelocityReads } from './velocity.ts';
import { Journal, VelocityMemory, VOTES_RETAINED_MS } from './velocity-memory.ts';

export type { ActionPatch, ActionRow, CustomerActionRow, ListActionsQuery } from './actions.ts';
export type { ApprovalRow } from './approvals.ts';
export { type LedgerEntry, type LedgerEventInput, type LedgerRow, ledgerHash } from './ledger.ts';
export type { ReminderKind, ReminderRow } from './reminders.ts';
export type { StripeEventRow } from './stripe-events.ts';

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
 * The one persistence interface: the connection, its transactions and the signals between instances, and the
 * repositories that hold every query, one per concept (`store.actions`, `store.credentials`, …; see "Where a new
 * store query goes" in docs/architecture.md). Kysely keeps the SQL dialect-neutral, so SQLite and PostgreSQL share
 * this class; only opening a connection, row locks and cross-instance signals differ. The connection itself is
 * private: nothing outside src/store/ writes SQL.
 *
 * A Store bound to a transaction (what `transaction()` hands its callback) gives repositories that run inside it.
 */
export class Store {
  private readonly db: Kysely<Database>;
  readonly #conn: { -readonly [K in keyof Connection]-?: Connection[K] };

  constructor(
    db: Kysely<Database>,
    readonly dialect: Dialect,
    readonly signals: StoreSignals | null = null,
    /** SQLite opened with synchronous=FULL, the default; relaxed commits then drop to NORMAL one at a time. */
    readonly fullSync = true,
    /** SQLite file stores: fdatasync of the WAL, so durable commits wait for it off the event loop. */
    syncWal: WalSync | null = null,
  ) {
    this.db = db;
    this.#conn = { db, dialect, velocity: null, journal: null };
    // One SQLite connection serialises every write anyway; sharing commits between them saves the fsyncs.
    this.#group =
      dialect === 'sqlite' && !db.isTransaction
        ? new GroupCommit<Store>(db, fullSync, asStoreError, (trx) => this.#bind(trx), syncWal)
        : null;
  }

  readonly #group: GroupCommit<Store> | null;

  // --- repositories: every query, by concept --------------------------------------------------------------------

  #actions?: ActionsRepository;
  #approvals?: ApprovalsRepository;
  #ledger?: LedgerRepository;
  #credentials?: CredentialsRepository;
  #review?: ReviewRepository;
  #slack?: SlackRepository;
  #reminders?: RemindersRepository;
  #stripeEvents?: StripeEventsRepository;
  #freezes?: FreezesRepository;
  #outbox?: OutboxRepository;
  #settings?: SettingsRepository;
  #digests?: DigestsRepository;
  #policyVersions?: PolicyVersionsRepository;
  #velocity?: VelocityReads;
  #dashboard?: DashboardReads;
  #metrics?: MetricsReads;

  /** The actions table: the lifecycle rows, their guarded transitions and dispatch leases. */
  get actions(): ActionsRepository {
    this.#actions ??= new ActionsRepository(this.#conn);
    return this.#actions;
  }

  /** Reviewers' votes. */
  get approvals(): ApprovalsRepository {
    this.#approvals ??= new ApprovalsRepository(this.#conn);
    return this.#approvals;
  }

  /** The hash-chained ledger: on SQLite a transaction carries the chain's head until commit; on PostgreSQL a sealer chains events after it. */
  get ledger(): LedgerRepository {
    this.#ledger ??= new LedgerRepository(this.#conn);
    return this.#ledger;
  }

  /** Agents and their keys, reviewers and their tokens, admin tokens. */
  get credentials(): CredentialsRepository {
    this.#credentials ??= new CredentialsRepository(this.#conn);
    return this.#credentials;
  }

  /** Dashboard sessions and signed email links. */
  get review(): ReviewRepository {
    this.#review ??= new ReviewRepository(this.#conn);
    return this.#review;
  }

  /** Slack users linked to reviewers. */
  get slack(): SlackRepository {
    this.#slack ??= new SlackRepository(this.#conn);
    return this.#slack;
  }

  /** Holds' reminders and escalations, each claimed once. */
  get reminders(): RemindersRepository {
    this.#reminders ??= new RemindersRepository(this.#conn);
    return this.#reminders;
  }

  /** Stripe Events received, and the alerts about outside ones. */
  get stripeEvents(): StripeEventsRepository {
    this.#stripeEvents ??= new StripeEventsRepository(this.#conn);
    return this.#stripeEvents;
  }

  /** The kill switch's freezes. */
  get freezes(): FreezesRepository {
    this.#freezes ??= new FreezesRepository(this.#conn);
    return this.#freezes;
  }

  /** Callbacks and reviewers' notifications waiting for delivery. */
  get outbox(): OutboxRepository {
    this.#outbox ??= new OutboxRepository(this.#conn);
    return this.#outbox;
  }

  /** Values generated once and shared by every instance (the callback secret). */
  get settings(): SettingsRepository {
    this.#settings ??= new SettingsRepository(this.#conn);
    return this.#settings;
  }

  /** Signed digests of the ledger head. */
  get digests(): DigestsRepository {
    this.#digests ??= new DigestsRepository(this.#conn);
    return this.#digests;
  }

  /** Every policy version loaded, with its text. */
  get policyVersions(): PolicyVersionsRepository {
    this.#policyVersions ??= new PolicyVersionsRepository(this.#conn);
    return this.#policyVersions;
  }

  /** Sliding-window totals for velocity attributes. */
  get velocity(): VelocityReads {
    this.#velocity ??= new VelocityReads(this.#conn);
    return this.#velocity;
  }

  /** The review dashboard's queue, search and overview. */
  get dashboard(): DashboardReads {
    this.#dashboard ??= new DashboardReads(this.#conn);
    return this.#dashboard;
  }

  /** What the Prometheus gauges read at scrape time. */
  get metrics(): MetricsReads {
    this.#metrics ??= new MetricsReads(this.#conn);
    return this.#metrics;
  }

  // --- transactions ---------------------------------------------------------------------------------------------

  /** A Store bound to a transaction: its writes keep this store's aggregates current, undoably. */
  #bind(trx: Transaction<Database>): Store {
    const tx = new Store(trx, this.dialect, this.signals, this.fullSync);
    tx.#conn.velocity = this.#conn.velocity;
    tx.#conn.journal = new Journal();
    return tx;
  }

  /**
   * Runs fn on a Store bound to the transaction and writes the ledger head before the commit. Sets `done.unsealed`
   * when it appended events for the sealer, which the caller tells the listeners about once the commit succeeded.
   */
  async #inTransaction<T>(
    trx: Transaction<Database>,
    fn: (tx: Store) => Promise<T>,
    done: { unsealed: boolean },
  ): Promise<T> {
    const tx = this.#bind(trx);
    try {
      const result = await fn(tx);
      await tx.flushLedgerHead();
      done.unsealed = tx.#ledger?.appendedUnsealed ?? false;
      return result;
    } catch (err) {
      tx.restore(0);
      throw err;
    }
  }

  readonly #unsealedListeners = new Set<() => void>();

  /**
   * Calls cb after each transaction of this Store commits unsealed ledger events (PostgreSQL), so the sealer runs
   * at once instead of at its next interval. Returns the function that stops it.
   */
  onUnsealedCommitted(cb: () => void): () => void {
    this.#unsealedListeners.add(cb);
    return () => this.#unsealedListeners.delete(cb);
  }

  #committed(done: { unsealed: boolean }): void {
    if (done.unsealed) for (const cb of this.#unsealedListeners) cb();
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
    const done = { unsealed: false };
    let result: T;
    try {
      result = await this.db
        .transaction()
        .execute((trx: Transaction<Database>) => this.#inTransaction(trx, fn, done));
    } catch (err) {
      throw asStoreError(err);
    }
    this.#committed(done);
    return result;
  }

  /**
   * A commit that may be lost on power failure or a database server crash (not on a crash of Airlock), for
   * records that can be rebuilt: a
   * completion lost this way leaves the action pending, and its re-dispatch with the same Idempotency-Key gets
   * Stripe's stored answer. It saves an fsync on the hot path; nothing that precedes an upstream call uses it.
   * PostgreSQL's form; SQLite's is a relaxed batch of the group commit.
   */
  async #relaxedTransaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    const done = { unsealed: false };
    let result: T;
    try {
      result = await this.db.transaction().execute(async (trx) => {
        await sql`set local synchronous_commit = off`.execute(trx);
        return this.#inTransaction(trx, fn, done);
      });
    } catch (err) {
      throw asStoreError(err);
    }
    this.#committed(done);
    return result;
  }

  /**
   * Keeps velocity windows and reviewer votes in memory from now on (SQLite, which one process owns): built from
   * the last `retainedMs` of actions and a week of votes now, kept current by this process's writes, and rebuilt
   * after another process's commit. `counted` are the statuses that count towards a window. A window reaching
   * further back than what is held reads the database. Called again with a longer `retainedMs` (a policy with a
   * longer window), it rebuilds to hold that much.
   */
  async keepVelocityInMemory(
    counted: readonly Status[],
    now: () => number,
    retainedMs: number,
  ): Promise<void> {
    if (this.dialect !== 'sqlite' || this.db.isTransaction) return;
    const held = this.#conn.velocity;
    if (held) {
      if (retainedMs > held.retainedMs) {
        held.retainedMs = retainedMs;
        held.version = null;
        held.rebuild();
      }
      return;
    }
    const memory = new VelocityMemory(new Set(counted));
    memory.retainedMs = retainedMs;
    memory.readVersion = this.#readDataVersion;
    let rebuilding = false;
    const rebuild = async () => {
      if (rebuilding) return;
      rebuilding = true;
      try {
        // A job of the group commit: it sees every commit and the jobs before it, and runs before the jobs after it.
        await this.transaction(async (tx) => {
          const at = now();
          const from = { actions: at - memory.retainedMs, votes: at - VOTES_RETAINED_MS };
          const version = await tx.dataVersion();
          memory.load(
            await tx.velocity.rows(new Date(from.actions).toISOString()),
            await tx.velocity.votes(new Date(from.votes).toISOString()),
            version,
            from,
            {
              events: await tx.velocity.outsideRows(new Date(from.actions).toISOString()),
              disputed: await tx.velocity.disputedCharges(),
            },
          );
          // Should this batch roll back, the rows read from its earlier jobs are gone: build again.
          tx.#conn.journal?.record(() => memory.stale());
        });
      } finally {
        rebuilding = false;
      }
    };
    memory.rebuild = () => {
      rebuild().catch(() => {
        // The database answers meanwhile; the next stale check tries again.
      });
    };
    this.#conn.velocity = memory;
    await rebuild();
  }

  #readDataVersion: (() => number) | null = null;

  /**
   * SQLite: reads data_version straight from the driver's handle. A pragma is per connection and needs no lock, so
   * a request checking its caches does not queue behind the group commit's open batch for the connection.
   */
  readDataVersionWith(read: () => number): void {
    this.#readDataVersion = read;
    if (this.#conn.velocity) this.#conn.velocity.readVersion = read;
  }

  /** Whether velocity windows are answered from memory now (false while a rebuild catches up, and on PostgreSQL). */
  get velocityInMemory(): boolean {
    return (this.#conn.velocity?.version ?? null) !== null;
  }

  /** Where this transaction's in-memory changes stand, so a failed job can be undone from there. */
  mark(): unknown {
    return { ledger: this.ledger.mark(), journal: this.#conn.journal?.mark() ?? 0 };
  }

  restore(mark: unknown): void {
    const m = mark as { ledger: unknown; journal: number } | 0;
    if (m === 0) {
      this.#conn.journal?.restore(0);
      return;
    }
    this.ledger.restore(m.ledger);
    this.#conn.journal?.restore(m.journal);
  }

  async close(): Promise<void> {
    await this.signals?.close();
    await this.db.destroy();
    await this.#group?.close();
  }

  // --- schema ---------------------------------------------------------------------------------------------------

  /** Names of the migrations not yet applied, in order. */
  async pendingMigrations(): Promise<string[]> {
    return pendingMigrations(this.db as Kysely<unknown>, this.dialect);
  }

  /** Applies the pending migrations; returns the names applied. */
  async migrate(): Promise<string[]> {
    return migrateToLatest(this.db as Kysely<unknown>, this.dialect);
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
   * SQLite's count of commits made to the file by other connections (another process: the CLI revoking a key), or
   * null on PostgreSQL. A cache that saw it unchanged has missed no change made elsewhere.
   */
  async dataVersion(): Promise<number | null> {
    if (this.dialect !== 'sqlite') return null;
    if (this.#readDataVersion) return this.#readDataVersion();
    const { rows } = await sql<{ data_version: number }>`pragma data_version`.execute(this.db);
    return rows[0]?.data_version ?? null;
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

  // --- the engine's calls ---------------------------------------------------------------------------------------
  // Shorthands for the repositories above, kept under the names engine/ calls them by. New code reaches the
  // repositories (`tx.actions.transition(...)`) directly.

  findOrCreateAgent(id: string, name: string, at: string): Promise<Agent> {
    return this.credentials.findOrCreateAgent(id, name, at);
  }

  insertAgentKey(row: Parameters<CredentialsRepository['insertAgentKey']>[0]): Promise<void> {
    return this.credentials.insertAgentKey(row);
  }

  getAgent(id: string): Promise<Agent | undefined> {
    return this.credentials.getAgent(id);
  }

  upsertReviewer(
    row: Parameters<CredentialsRepository['upsertReviewer']>[0],
  ): Promise<{ id: string; email: string }> {
    return this.credentials.upsertReviewer(row);
  }

  insertReviewerToken(row: Parameters<CredentialsRepository['insertReviewerToken']>[0]): Promise<void> {
    return this.credentials.insertReviewerToken(row);
  }

  findReviewerByEmail(email: string): Promise<StoredReviewer | undefined> {
    return this.credentials.findReviewerByEmail(email);
  }

  insertAction(row: ActionRow): Promise<void> {
    return this.actions.insert(row);
  }

  getAction(id: string): Promise<ActionRow | undefined> {
    return this.actions.get(id);
  }

  getActionForUpdate(id: string): Promise<ActionRow | undefined> {
    return this.actions.getForUpdate(id);
  }

  findActionByScope(scope: string): Promise<ActionRow | undefined> {
    return this.actions.findByScope(scope);
  }

  hasActionWithScope(scope: string): Promise<boolean> {
    return this.actions.hasScope(scope);
  }

  /** A guarded update that keeps the status (see ActionsRepository.updateIn). */
  updateActionFrom(id: string, from: Status, patch: ActionPatch): Promise<boolean> {
    return this.actions.updateIn(id, from, patch);
  }

  /** Moves the action from `from` to `to` (see ActionsRepository.transition). */
  transitionAction(id: string, from: Status, to: Status, patch: ActionPatch): Promise<ActionRow | undefined> {
    return this.actions.transition(id, from, to, patch);
  }

  claimAction(id: string, owner: string, now: string, leaseUntil: string): Promise<boolean> {
    return this.actions.claim(id, owner, now, leaseUntil);
  }

  releaseLease(id: string, owner: string, patch: ActionPatch): Promise<boolean> {
    return this.actions.releaseLease(id, owner, patch);
  }

  releaseAllLeases(): Promise<number> {
    return this.actions.releaseAllLeases();
  }

  listLeasedBy(owner: string): Promise<string[]> {
    return this.actions.listLeasedBy(owner);
  }

  listDispatchable(now: string, limit: number, handoffMs?: number): Promise<string[]> {
    return this.actions.listDispatchable(now, limit, handoffMs);
  }

  listExpiredHolds(now: string, limit: number): Promise<string[]> {
    return this.actions.listExpiredHolds(now, limit);
  }

  listActions(q: ListActionsQuery): Promise<{ rows: ActionRow[]; hasMore: boolean }> {
    return this.actions.list(q);
  }

  insertApproval(row: ApprovalRow): Promise<void> {
    return this.approvals.insert(row);
  }

  /** Removes a vote given to an earlier version; the ledger keeps its record. */
  deleteApproval(id: string): Promise<void> {
    return this.approvals.delete(id);
  }

  listApprovals(actionId: string): Promise<ApprovalRow[]> {
    return this.approvals.listForAction(actionId);
  }

  /** Appends one event to the chain. Must run inside a transaction, together with the change it records. */
  appendLedger(e: LedgerEventInput): Promise<void> {
    return this.ledger.append([e]);
  }

  appendLedgerEvents(events: LedgerEventInput[]): Promise<void> {
    return this.ledger.append(events);
  }

  /** Writes the chain's new end; called by transaction() before it commits. */
  flushLedgerHead(): Promise<void> {
    return this.ledger.flushHead();
  }

  ledgerForAction(actionId: string): Promise<LedgerEntry[]> {
    return this.ledger.forAction(actionId);
  }

  ledgerPage(afterSeq: number, limit: number): Promise<LedgerRow[]> {
    return this.ledger.page(afterSeq, limit);
  }

  ledgerHead(): Promise<{ seq: number; hash: string }> {
    return this.ledger.head();
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
