import type { Kysely } from 'kysely';
import { COUNTED_STATUSES } from '../policy/velocity.ts';
import type { Database } from './schema.ts';
import type { Store } from './store.ts';

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

/**
 * Count and USD sum of the actions that count towards a window (see COUNTED_STATUSES). Each query is a range
 * scan of one covering index from migration 0003_policy.
 */
export async function velocityTotal(store: Store, q: VelocityQuery): Promise<VelocityTotal> {
  const account = q.account ?? null;
  const build = () => {
    let query = store.db
      .selectFrom('actions')
      .select((eb) => [eb.fn.countAll().as('n'), eb.fn.sum('amount_usd').as('usd')])
      .where('created_at', '>=', q.since)
      .where('created_at', '<=', q.until)
      .where('status', 'in', COUNTED_STATUSES);
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
  const shape = `velocity ${q.scope}${onAccount} ${q.kinds === 'writes' ? 'writes' : q.kinds.length} ${q.excludeId ? 'excluding' : 'all'}`;
  const parameters: unknown[] = [q.since, q.until, ...COUNTED_STATUSES];
  if (q.scope !== 'account') parameters.push(q.subject);
  if (q.scope !== 'agent' && account !== null) parameters.push(account);
  if (q.kinds === 'writes') parameters.push(0);
  else parameters.push(...q.kinds);
  if (q.excludeId) parameters.push(q.excludeId);
  const [row] = await store.shaped<{ n: unknown; usd: unknown }>(shape, build, parameters);
  // PostgreSQL returns count(*) as a bigint string.
  return { count: Number(row?.n ?? 0), usd: Math.round(Number(row?.usd ?? 0) * 100) / 100 };
}

/** One decision's velocity totals, so resolvers asking for the same window share one query. */
export type VelocityTotals = Map<string, Promise<VelocityTotal>>;

/** velocityTotal, answered from `totals` when another resolver of the same decision already asked for it. */
export function sharedVelocityTotal(
  totals: VelocityTotals | undefined,
  store: Store,
  q: VelocityQuery,
): Promise<VelocityTotal> {
  if (!totals) return velocityTotal(store, q);
  const key = JSON.stringify([
    q.scope,
    q.subject,
    q.account ?? null,
    q.kinds,
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
export async function reviewVotes(
  store: Store,
  agentId: string,
  since: string,
): Promise<{ rejected: number; decided: number }> {
  const [row] = await store.shaped<{ rejected: unknown; decided: unknown }>(
    'review votes',
    () =>
      store.db
        .selectFrom('approvals')
        .select((eb) => [
          eb.fn.countAll().as('decided'),
          eb.fn.sum(eb.case().when('decision', '=', 'reject').then(1).else(0).end()).as('rejected'),
        ])
        .where('agent_id', '=', agentId)
        .where('at', '>=', since),
    ['reject', agentId, since],
  );
  // PostgreSQL returns count(*) and sum() as bigint strings.
  return { rejected: Number(row?.rejected ?? 0), decided: Number(row?.decided ?? 0) };
}

interface PolicyVersionsTable {
  version: string;
  file: string;
  text: string;
  first_loaded_at: string;
  last_loaded_at: string;
}

type WithVersions = Kysely<Database & { policy_versions: PolicyVersionsTable }>;

function versionsDb(store: Store): WithVersions {
  return store.db.withTables<{ policy_versions: PolicyVersionsTable }>();
}

export interface PolicyVersionRow {
  version: string;
  file: string;
  text: string;
  first_loaded_at: string;
  last_loaded_at: string;
}

/** Records a loaded policy version and its text; loading the same text again only moves last_loaded_at. */
export async function recordPolicyVersion(
  store: Store,
  p: { version: string; file: string; text: string },
  at: string,
): Promise<void> {
  const db = versionsDb(store);
  const res = await db
    .updateTable('policy_versions')
    .set({ last_loaded_at: at, file: p.file })
    .where('version', '=', p.version)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) > 0) return;
  await db
    .insertInto('policy_versions')
    .values({ version: p.version, file: p.file, text: p.text, first_loaded_at: at, last_loaded_at: at })
    .onConflict((oc) => oc.column('version').doUpdateSet({ last_loaded_at: at }))
    .execute();
}

export async function getPolicyVersion(store: Store, version: string): Promise<PolicyVersionRow | undefined> {
  return versionsDb(store)
    .selectFrom('policy_versions')
    .selectAll()
    .where('version', '=', version)
    .executeTakeFirst();
}

export async function listPolicyVersions(store: Store): Promise<PolicyVersionRow[]> {
  return versionsDb(store)
    .selectFrom('policy_versions')
    .selectAll()
    .orderBy('first_loaded_at', 'desc')
    .execute();
}
