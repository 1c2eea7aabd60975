import type { ApprovalsRepository } from './approvals.ts';
import { type Connection, shaped, written } from './connection.ts';
import type { Status } from './status.ts';
import { BUCKETED_STATUSES, bucketsAnswer, CENTS_SQL, minuteOf } from './velocity-buckets.ts';
import { currentMemory, type OutsideRow, type VelocityRow, type VoteRow } from './velocity-memory.ts';

/** One sliding-window total: which actions, over which time range. Times are ISO 8601 UTC strings. */
export interface VelocityQuery {
  scope: 'agent' | 'customer' | 'account';
  /** The agent id or customer id; ignored for 'account'. */
  subject: string | null;
  /**
   * For 'customer' and 'account': the account the actions ran on (null: the platform). A connected account's
   * customers and payouts are its own, so they never count towards another account's windows.
   */
  account?: string | null;
  /** Kinds to count, or 'writes' for every write. */
  kinds: readonly string[] | 'writes';
  /** The statuses that count towards a window: the lifecycle's COUNTED_STATUSES (engine/status.ts). */
  statuses: readonly Status[];
  /** Window start, inclusive. */
  since: string;
  /** Window end, inclusive: the decision time (the action being decided is not stored yet, or excluded by id). */
  until: string;
  /** Leaves an action out (the one being decided, when it is already stored). */
  excludeId?: string | null;
}

export interface VelocityTotal {
  count: number;
  usd: number;
}

/** The read model behind velocity attributes: totals over the covering indexes of migration 0003_policy. */
export class VelocityReads {
  constructor(readonly c: Connection) {}

  /**
   * Count and USD sum of what counts towards a window (actions in `q.statuses`, and for customer and account
   * windows the money Stripe reported moving outside Airlock): from the in-memory aggregates when they are current
   * (SQLite), in O(log n) of the subject's history; on PostgreSQL from per-minute buckets trimmed to the window;
   * else one index range scan.
   */
  async total(q: VelocityQuery): Promise<VelocityTotal> {
    const memory = await currentMemory(this.c);
    const until = Date.parse(q.until);
    memory?.prune(until);
    if (memory?.answers(q.statuses) && Date.parse(q.since) >= memory.actionsFrom) {
      return memory.actions.total({
        scope: q.scope,
        subject: q.subject,
        account: q.account ?? null,
        kinds: q.kinds === 'writes' ? 'writes' : [...new Set(q.kinds)],
        since: Date.parse(q.since),
        until,
        excludeId: q.excludeId ?? null,
      });
    }
    // PostgreSQL: per-minute buckets kept in the database (bucketTotal), else a scan of the rows.
    const own = (!memory && (await this.bucketTotal(q))) || (await this.#scan(q));
    // Money moved outside Airlock has no agent, so it counts in the customer and account windows only.
    if (q.scope === 'agent') return own;
    const outside = await this.#outside(q);
    if (outside.count === 0) return own;
    return { count: own.count + outside.count, usd: Math.round((own.usd + outside.usd) * 100) / 100 };
  }

  /**
   * Money events Airlock did not make (stripe_events, origin automation or outside) inside the window, by when Stripe
   * says they happened: a refund made with a raw key weighs on the next decision like one made through Airlock.
   */
  async #outside(q: VelocityQuery): Promise<VelocityTotal> {
    const account = q.account ?? null;
    let query = this.c.db
      .selectFrom('stripe_events')
      .select((eb) => [eb.fn.countAll().as('n'), eb.fn.sum('amount_usd').as('usd')])
      .where('origin', 'in', ['automation', 'outside'])
      .where('created', '>=', Math.ceil(Date.parse(q.since) / 1000))
      .where('created', '<=', Math.floor(Date.parse(q.until) / 1000));
    query =
      q.kinds === 'writes' ? query.where('kind', 'is not', null) : query.where('kind', 'in', [...q.kinds]);
    if (q.scope === 'customer') query = query.where('customer', '=', q.subject);
    query = account === null ? query.where('account', 'is', null) : query.where('account', '=', account);
    const row = await query.executeTakeFirst();
    return { count: Number(row?.n ?? 0), usd: Math.round(Number(row?.usd ?? 0) * 100) / 100 };
  }

  /** Outside money events created (Stripe's time) since `since`: the aggregates' rebuild. */
  async outsideRows(since: string): Promise<OutsideRow[]> {
    return this.c.db
      .selectFrom('stripe_events')
      .select(['id', 'created', 'origin', 'kind', 'amount_usd', 'customer', 'account'])
      .where('origin', 'in', ['automation', 'outside'])
      .where('kind', 'is not', null)
      .where('created', '>=', Math.ceil(Date.parse(since) / 1000))
      .execute();
  }

  /** Every charge Stripe reported a dispute on: the aggregates' rebuild. */
  async disputedCharges(): Promise<string[]> {
    const rows = await this.c.db
      .selectFrom('stripe_events')
      .select('charge')
      .where('type', '=', 'charge.dispute.created')
      .where('charge', 'is not', null)
      .execute();
    return rows.map((r) => r.charge!);
  }

  /**
   * A window's total from the per-minute buckets (PostgreSQL), with the rows of at most half a minute read to
   * trim them to the window, in one statement, so one snapshot; null when the buckets cannot answer it exactly.
   */
  bucketTotal(q: VelocityQuery): Promise<VelocityTotal | null> {
    return bucketTotal(this.c, q);
  }

  /** The window counted from the action rows alone, whatever the store keeps besides: what the tests compare to. */
  scanTotal(q: VelocityQuery): Promise<VelocityTotal> {
    return this.#scan(q);
  }

  /** Every action created since `since`, with what the aggregates need: their rebuild. */
  async rows(since: string): Promise<VelocityRow[]> {
    return this.c.db
      .selectFrom('actions')
      .select([
        'id',
        'created_at',
        'amount_usd',
        'kind',
        'read',
        'agent_id',
        'customer',
        'on_account',
        'status',
      ])
      .where('created_at', '>=', since)
      .orderBy('created_at')
      .execute();
  }

  /** Every vote cast since `since`: the vote aggregates' rebuild. */
  async votes(since: string): Promise<VoteRow[]> {
    return this.c.db
      .selectFrom('approvals')
      .select(['id', 'agent_id', 'at', 'decision'])
      .where('at', '>=', since)
      .orderBy('at')
      .execute();
  }

  async #scan(q: VelocityQuery): Promise<VelocityTotal> {
    const account = q.account ?? null;
    const build = () => {
      let query = this.c.db
        .selectFrom('actions')
        .select((eb) => [eb.fn.countAll().as('n'), eb.fn.sum('amount_usd').as('usd')])
        .where('created_at', '>=', q.since)
        .where('created_at', '<=', q.until)
        .where('status', 'in', q.statuses);
      if (q.scope === 'agent') query = query.where('agent_id', '=', q.subject);
      else if (q.scope === 'customer') query = query.where('customer', '=', q.subject);
      if (q.scope !== 'agent')
        query =
          account === null ? query.where('on_account', 'is', null) : query.where('on_account', '=', account);
      query = q.kinds === 'writes' ? query.where('read', '=', 0) : query.where('kind', 'in', q.kinds);
      if (q.excludeId) query = query.where('id', '!=', q.excludeId);
      return query;
    };
    // Every decision runs a few of these: built and compiled once per shape, not per call.
    const onAccount = q.scope === 'agent' ? '' : account === null ? ' platform' : ' connected';
    const shape = `velocity ${q.scope}${onAccount} ${q.kinds === 'writes' ? 'writes' : q.kinds.length} ${q.excludeId ? 'excluding' : 'all'} ${q.statuses.length}`;
    const parameters: unknown[] = [q.since, q.until, ...q.statuses];
    if (q.scope !== 'account') parameters.push(q.subject);
    if (q.scope !== 'agent' && account !== null) parameters.push(account);
    if (q.kinds === 'writes') parameters.push(0);
    else parameters.push(...q.kinds);
    if (q.excludeId) parameters.push(q.excludeId);
    const [row] = await shaped<{ n: unknown; usd: unknown }>(this.c, shape, build, parameters);
    // PostgreSQL returns count(*) as a bigint string.
    return { count: Number(row?.n ?? 0), usd: Math.round(Number(row?.usd ?? 0) * 100) / 100 };
  }
}

// The resolvers' calls, on whichever store (or transaction) a decision runs on.

export function velocityTotal(
  store: { readonly velocity: VelocityReads },
  q: VelocityQuery,
): Promise<VelocityTotal> {
  return store.velocity.total(q);
}

/** One decision's velocity totals, so resolvers asking for the same window share one query. */
export type VelocityTotals = Map<string, Promise<VelocityTotal>>;

/** velocityTotal, answered from `totals` when another resolver of the same decision already asked for it. */
export function sharedVelocityTotal(
  totals: VelocityTotals | undefined,
  store: { readonly velocity: VelocityReads },
  q: VelocityQuery,
): Promise<VelocityTotal> {
  if (!totals) return velocityTotal(store, q);
  const key = JSON.stringify([
    q.scope,
    q.subject,
    q.account ?? null,
    q.kinds,
    q.statuses,
    q.since,
    q.until,
    q.excludeId ?? null,
  ]);
  let total = totals.get(key);
  if (!total) {
    total = velocityTotal(store, q);
    totals.set(key, total);
  }
  return total;
}

/** Reviewer votes on one agent's actions cast since `since`: a range of one index, the agent's votes only. */
export function reviewVotes(
  store: { readonly approvals: ApprovalsRepository },
  agentId: string,
  since: string,
): Promise<{ rejected: number; decided: number }> {
  return store.approvals.votesOnAgent(agentId, since);
}

// --- windows from the per-minute buckets (PostgreSQL; src/store/velocity-buckets.ts) ----------------------------
// Exact across instances: a decision holds its agent's advisory lock (Store.lockAgent), and every change to an
// action's rows updates its buckets in the same transaction, so the one statement below sees buckets and edge rows
// of the same snapshot: the total a scan of that snapshot gives.

const MINUTE = 60_000;

async function bucketTotal(c: Connection, q: VelocityQuery): Promise<VelocityTotal | null> {
  if (c.dialect !== 'postgres' || !bucketsAnswer(q.statuses)) return null;
  const account = q.account ?? null;
  if (q.scope !== 'agent' && account === '') return null;
  if (q.scope !== 'account' && q.subject === null) return null;
  if (q.kinds !== 'writes' && q.kinds.length === 0) return null;
  const since = Date.parse(q.since);
  const until = Date.parse(q.until);
  // The scan compares strings: only toISOString's form makes that the same as comparing times.
  if (!isIsoTime(q.since, since) || !isIsoTime(q.until, until)) return null;
  if (since > until) return null;
  // Buckets from the minute of `since` (or the next, when `since` is in its second half) to the minute of `until`;
  // what they hold outside the window is taken back by reading those rows, and a low edge read directly is added.
  const lowMinute = Math.floor(since / MINUTE) * MINUTE;
  const highMinute = Math.floor(until / MINUTE) * MINUTE;
  const lowTakenBack = since - lowMinute < MINUTE / 2;
  // The first bucket's start: where the rows taken back begin, or where the low edge read ends.
  const lowCut = new Date(lowTakenBack ? lowMinute : lowMinute + MINUTE).toISOString();
  const highCut = new Date(highMinute + MINUTE).toISOString();
  const platform = q.scope !== 'agent' && account === null;
  const exclude = Boolean(q.excludeId);
  const parameters: unknown[] = [
    q.since,
    q.until,
    minuteOf(lowCut),
    minuteOf(new Date(highMinute).toISOString()),
    lowCut,
    highCut,
  ];
  if (q.scope !== 'account') parameters.push(q.subject);
  if (q.scope !== 'agent' && account !== null) parameters.push(account);
  // A kind listed twice counts once, as in `kind in (…)`.
  const kindList = q.kinds === 'writes' ? [] : [...new Set(q.kinds)];
  parameters.push(...kindList);
  if (exclude) parameters.push(q.excludeId);
  const kinds = q.kinds === 'writes' ? 'writes' : kindList.length;
  const [row] = await written<{ n: unknown; c: unknown }>(
    c,
    `velocity buckets ${q.scope} ${platform ? 'platform' : 'connected'} ${kinds} ${exclude ? 'excluding' : 'all'} ${lowTakenBack ? 'low-back' : 'low-read'}`,
    () => windowSql(q.scope, platform, kinds, exclude, lowTakenBack),
    parameters,
  );
  // sum(bigint) is numeric: a string.
  return { count: Number(row?.n ?? 0), usd: Number(row?.c ?? 0) / 100 };
}

function isIsoTime(text: string, ms: number): boolean {
  return Number.isFinite(ms) && new Date(ms).toISOString() === text;
}

/**
 * Parameters: since, until, the first and last bucket minutes (inclusive), the low cut (the first bucket minute's
 * start, or the end of since's minute when the low edge is read instead), the high cut (the end of until's
 * minute), subject, account, kinds (without repeats), excluded.
 *
 * A window is its buckets, less the rows they hold outside it (from the low cut up to `since`, when since is early in
 * its minute; after `until` to the high cut, nearly always none, since until is the decision's now), plus the rows
 * from since to the low cut when since is late in its minute: at most half a minute of rows is read, not two minutes.
 * Every edge is bounded by time whatever index the planner takes. That matters for the one next to now, newer than
 * the table's statistics: the planner thinks any index on its time range nearly free, and took (kind, created_at) for
 * one customer's window, reading every agent's rows of the minute; rows after now are none in any index.
 */
function windowSql(
  scope: VelocityQuery['scope'],
  platform: boolean,
  kinds: number | 'writes',
  exclude: boolean,
  lowTakenBack: boolean,
): string {
  let n = 6;
  const subject = scope === 'account' ? '' : `$${++n}`;
  const account = scope === 'agent' || platform ? '' : `$${++n}`;
  const kindList = kinds === 'writes' ? '' : Array.from({ length: kinds }, () => `$${++n}`).join(', ');
  const excluded = exclude ? `$${++n}` : '';
  const byKind = kinds === 'writes' ? 'read = 0' : `kind in (${kindList})`;
  const counted = `status in (${BUCKETED_STATUSES.map((s) => `'${s}'`).join(', ')})`;
  const onAccount = platform ? 'on_account is null' : `on_account = ${account}`;
  let buckets: string;
  let filter: string;
  switch (scope) {
    case 'agent':
      buckets = `scope = 'agent' and subject = ${subject} and account = ''`;
      filter = `agent_id = ${subject}`;
      break;
    case 'customer':
      buckets = `scope = 'customer' and subject = ${subject} and account = ${platform ? "''" : account}`;
      filter = `customer = ${subject} and ${onAccount}`;
      break;
    case 'account':
      buckets = `scope = 'account' and subject = '' and account = ${platform ? "''" : account}`;
      filter = onAccount;
      break;
    default: {
      const never: never = scope;
      throw new Error(`velocity buckets: unknown scope ${String(never)}`);
    }
  }
  const rowsOf = `${counted} and ${byKind} and ${filter}`;
  /** The counted rows with created_at in a range, each as `sign` (1 or -1) and its cents. */
  const edge = (sign: 1 | -1, lo: string, loOp: '>=' | '>', hi: string, hiOp: '<' | '<='): string =>
    `select ${sign}, ${sign === 1 ? '' : '-'}${CENTS_SQL} from actions
        where created_at ${loOp} ${lo} and created_at ${hiOp} ${hi} and ${rowsOf}`;
  const low = lowTakenBack ? edge(-1, '$5', '>=', '$1', '<') : edge(1, '$1', '>=', '$5', '<');
  // The excluded action counts nowhere: taken back when it is in the window.
  const takeBack = exclude
    ? `union all select -1, -${CENTS_SQL} from actions
        where id = ${excluded} and ${rowsOf} and created_at >= $1 and created_at <= $2`
    : '';
  return `select coalesce(sum(n), 0) as n, coalesce(sum(c), 0) as c from (
      select n, usd_cents as c from velocity_minutes where ${buckets} and ${byKind} and minute >= $3 and minute <= $4
      union all ${low}
      union all ${edge(-1, '$2', '>', '$6', '<')}
      ${takeBack}
    ) as t`;
}
