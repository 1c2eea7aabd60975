import { CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.ts';
import type { Status } from './status.ts';
import { type IndexedAction, VelocityIndex, VoteIndex } from './velocity-index.ts';

/** Reviewer votes are asked for over a week (the risk score's rejection rate); older ones are not kept. */
export const VOTES_RETAINED_MS = 7 * 86_400_000;

/**
 * Undo steps for in-memory state changed inside one transaction, so a rolled-back job or batch takes its changes to
 * the aggregates back with it, as SQLite takes back its rows.
 */
export class Journal {
  readonly #undo: (() => void)[] = [];
  /** data_version matched the aggregates once in this transaction: it holds the write lock, so it still does. */
  versionChecked = false;

  record(undo: () => void): void {
    this.#undo.push(undo);
  }

  mark(): number {
    return this.#undo.length;
  }

  restore(mark: number): void {
    while (this.#undo.length > mark) this.#undo.pop()!();
  }
}

/**
 * Velocity windows and reviewer votes held in memory, so a decision costs the same however busy its agent has
 * been. Only for a store one process owns (SQLite): each write of that process updates them in its transaction
 * (undone with it), and a commit by another process (the CLI) shows in `data_version`, after which the aggregates
 * are rebuilt before they answer again. Until then the caller reads the database.
 */
export class VelocityMemory {
  /** Airlock's actions, and the money Stripe reported moving outside Airlock (no agent; customer and account). */
  actions = new VelocityIndex();
  votes = new VoteIndex();
  /** Charges Stripe reported a dispute on (charge.dispute.created): the risk score reads them without a query. */
  disputed = new Set<string>();
  /** data_version when the aggregates were last known to hold every commit; null: not built yet. */
  version: number | null = null;
  #pruned = 0;
  /**
   * How far back actions are kept: the longest window the policy names, not the longest it could name, since every
   * entry costs memory and the garbage collector's time. Set by the store; a wider policy rebuilds.
   */
  retainedMs = 3_600_000;
  /** The oldest time the aggregates hold every action (or vote) from: an older window start reads the database. */
  actionsFrom = Number.POSITIVE_INFINITY;
  votesFrom = Number.POSITIVE_INFINITY;

  constructor(readonly counted: ReadonlySet<Status>) {}

  /** Set by the store: reads data_version without queueing for the connection; null: ask through it. */
  readVersion: (() => number) | null = null;

  /** Set by the store: rebuilds the aggregates from the database, in the background. */
  rebuild: () => void = () => {};

  /** Another process committed since the build: answer from the database until a rebuild catches up. */
  stale(): void {
    if (this.version === null) return;
    this.version = null;
    this.rebuild();
  }

  /** Whether a query counting `statuses` is the one these aggregates keep. */
  answers(statuses: readonly Status[]): boolean {
    return statuses.length === this.counted.size && statuses.every((s) => this.counted.has(s));
  }

  /** Replaces the aggregates with the rows given: every action since `actionsFrom`, every vote since `votesFrom`. */
  load(
    actions: readonly VelocityRow[],
    votes: readonly VoteRow[],
    version: number | null,
    from: { actions: number; votes: number },
    outside: { events: readonly OutsideRow[]; disputed: readonly string[] } = { events: [], disputed: [] },
  ): void {
    const index = new VelocityIndex();
    for (const a of actions) index.add(indexed(a, this.counted));
    for (const e of outside.events) index.add(outsideEntry(e));
    this.disputed = new Set(outside.disputed);
    const voteIndex = new VoteIndex();
    for (const v of votes) voteIndex.add(vote(v));
    this.actions = index;
    this.votes = voteIndex;
    this.actionsFrom = from.actions;
    this.votesFrom = from.votes;
    this.version = version;
  }

  /** Drops entries older than any window, at most once a minute. */
  prune(now: number): void {
    if (now - this.#pruned < 60_000) return;
    this.#pruned = now;
    const actionsCut = now - this.retainedMs;
    const votesCut = now - VOTES_RETAINED_MS;
    this.actions.prune(actionsCut);
    this.votes.prune(votesCut);
    this.actionsFrom = Math.max(this.actionsFrom, actionsCut);
    this.votesFrom = Math.max(this.votesFrom, votesCut);
  }

  inserted(row: VelocityRow, journal: Journal | null): void {
    const index = this.actions;
    if (index.has(row.id)) return;
    index.add(indexed(row, this.counted));
    journal?.record(() => index.remove(row.id));
  }

  moved(id: string, from: Status, to: Status, journal: Journal | null): void {
    if (!this.counted.has(from) || this.counted.has(to)) return;
    const index = this.actions;
    if (index.uncount(id)) journal?.record(() => index.recount(id));
  }

  /** A reviewer's modification or a re-valuation changed the action's amount in USD. */
  revalued(id: string, amountUsd: number | null, journal: Journal | null): void {
    const index = this.actions;
    const before = index.centsOf(id);
    if (before === undefined) return;
    const cents = amountUsd === null ? null : Math.round(amountUsd * 100);
    if ((cents ?? 0) === before) return;
    index.setCents(id, cents);
    journal?.record(() => index.setCents(id, before));
  }

  /** A Stripe event stored: money moved outside Airlock counts in its windows, a dispute in the risk score. */
  eventStored(
    row: OutsideRow & { type: string; origin: string; charge: string | null },
    journal: Journal | null,
  ): void {
    if (row.type === 'charge.dispute.created' && row.charge !== null && !this.disputed.has(row.charge)) {
      const disputed = this.disputed;
      const charge = row.charge;
      disputed.add(charge);
      journal?.record(() => disputed.delete(charge));
    }
    if (!countsOutside(row)) return;
    const index = this.actions;
    if (index.has(row.id)) return;
    index.add(outsideEntry(row));
    journal?.record(() => index.remove(row.id));
  }

  voted(row: VoteRow, journal: Journal | null): void {
    const votes = this.votes;
    votes.add(vote(row));
    journal?.record(() => votes.remove(row.id));
  }

  /** A removed vote cannot be put back from here, so a rollback of its removal rebuilds the aggregates. */
  unvoted(id: string, journal: Journal | null): void {
    this.votes.remove(id);
    journal?.record(() => this.stale());
  }
}

/** The columns the aggregates are built from: an action row's. */
export interface VelocityRow {
  id: string;
  created_at: string;
  amount_usd: number | null;
  kind: string;
  read: number;
  agent_id: string | null;
  customer: string | null;
  on_account: string | null;
  status: string;
}

/** A stored Stripe event's columns the windows count: money moved by automation or outside Airlock. */
export interface OutsideRow {
  id: string;
  /** Stripe's `created`, Unix seconds. */
  created: number;
  origin: string;
  kind: string | null;
  amount_usd: number | null;
  customer: string | null;
  account: string | null;
}

/** Whether an event counts in the customer and account windows: money Airlock did not move, of a known kind. */
function countsOutside(e: { origin: string; kind: string | null }): boolean {
  return (e.origin === 'automation' || e.origin === 'outside') && e.kind !== null;
}

/** A vote row's columns the aggregates count. */
export interface VoteRow {
  id: string;
  agent_id: string | null;
  at: string;
  decision: string;
}

const DATA_VERSION = CompiledQuery.raw('pragma data_version');

/**
 * The in-memory aggregates when they hold every commit, else null (the caller then reads the database). A commit
 * by another process since they were built makes them stale: they are rebuilt in the background meanwhile.
 */
export async function currentMemory(c: {
  readonly db: Kysely<Database>;
  readonly velocity?: VelocityMemory | null;
  readonly journal?: Journal | null;
}): Promise<VelocityMemory | null> {
  const memory = c.velocity;
  if (!memory || memory.version === null) return null;
  // Inside a write transaction no other connection can commit, so one check serves the whole batch.
  if (c.journal?.versionChecked) return memory;
  const version = memory.readVersion
    ? memory.readVersion()
    : (await c.db.executeQuery<{ data_version: number }>(DATA_VERSION)).rows[0]?.data_version;
  if (memory.version === null) return null;
  if (version !== memory.version) {
    memory.stale();
    return null;
  }
  if (c.journal) c.journal.versionChecked = true;
  return memory;
}

function indexed(a: VelocityRow, counted: ReadonlySet<Status>): IndexedAction {
  return {
    id: a.id,
    at: Date.parse(a.created_at),
    usdCents: centsOrNull(a.amount_usd),
    kind: a.kind,
    read: Number(a.read) === 1,
    agentId: a.agent_id,
    customer: a.customer,
    onAccount: a.on_account,
    counted: counted.has(a.status as Status),
  };
}

// Outside money has no agent and no read; it always counts. Its time is Stripe's, as the SQL window reads it.
function outsideEntry(e: OutsideRow): IndexedAction {
  return {
    id: e.id,
    at: Number(e.created) * 1000,
    usdCents: centsOrNull(e.amount_usd),
    kind: e.kind ?? '',
    read: false,
    agentId: null,
    customer: e.customer,
    onAccount: e.account,
    counted: true,
  };
}

function centsOrNull(usd: number | null | undefined): number | null {
  return usd === null || usd === undefined ? null : Math.round(Number(usd) * 100);
}

function vote(v: VoteRow): { id: string; agentId: string; at: number; rejected: boolean } {
  // A vote on no agent's action is counted for no agent: no agent id starts with a NUL.
  return {
    id: v.id,
    agentId: v.agent_id ?? '\u0000',
    at: Date.parse(v.at),
    rejected: v.decision === 'reject',
  };
}
