// Velocity windows kept in the database, per minute, for PostgreSQL (several instances, so no in-memory aggregates):
// a window reads its whole minutes' buckets and scans `actions` only for the two partial minutes at its edges, so a
// decision costs the same however busy its agent is. The actions repository updates the buckets in the transaction
// that changes the action rows, so at any snapshot the buckets sum exactly the rows a scan would count.
// This module holds what the buckets are; actions.ts writes them, velocity.ts reads them.
import { type Kysely, type Selectable, sql } from 'kysely';
import type { ActionsTable } from './schema.ts';
import type { Status } from './status.ts';

/**
 * The statuses the buckets count: the lifecycle's COUNTED_STATUSES (engine/status.ts; a test checks they agree). A
 * window asking for any other set is scanned; changing this set needs a migration that calls rebuildBuckets.
 */
export const BUCKETED_STATUSES = [
  'received',
  'awaiting_approval',
  'approved',
  'pending',
  'completed',
] as const satisfies readonly Status[];

const bucketed: ReadonlySet<string> = new Set(BUCKETED_STATUSES);

export function isBucketed(status: string): boolean {
  return bucketed.has(status);
}

/** Whether a window counting `statuses` is the one the buckets keep. */
export function bucketsAnswer(statuses: readonly Status[]): boolean {
  return statuses.every((s) => bucketed.has(s)) && BUCKETED_STATUSES.every((s) => statuses.includes(s));
}

/** The action columns a bucket's key and sums come from. */
export const BUCKET_COLUMNS = [
  'agent_id',
  'customer',
  'on_account',
  'kind',
  'read',
  'created_at',
  'amount_usd',
] as const;

export type BucketFacts = Pick<Selectable<ActionsTable>, (typeof BUCKET_COLUMNS)[number]>;

/** Whether an update with this patch changes what the action adds to its buckets. */
export function touchesBuckets(patch: object): boolean {
  return BUCKET_COLUMNS.some((c) => (patch as Record<string, unknown>)[c] !== undefined);
}

/** The facts after a patch, from those before it. */
export function patched(before: BucketFacts, patch: Partial<BucketFacts>): BucketFacts {
  const after = { ...before };
  for (const c of BUCKET_COLUMNS) {
    const v = patch[c];
    if (v !== undefined) (after as Record<string, unknown>)[c] = v;
  }
  return after;
}

/**
 * An amount in whole cents, null as 0, as VelocityIndex counts it. floor(x * 100 + 0.5) rather than Math.round so
 * that SQL computes the same double for an edge minute's rows (amount_usd is already rounded to cents by toUsd, so
 * both agree with the scan's rounded sum; they could differ only on sub-cent amounts, which toUsd never stores).
 */
export function centsOf(usd: number | null): number {
  return usd === null ? 0 : Math.floor(Number(usd) * 100 + 0.5);
}

export const CENTS_SQL = 'floor(coalesce(amount_usd, 0) * 100 + 0.5)::bigint';

/** created_at's minute: its first 16 characters (times are toISOString's, so string order is time order). */
export function minuteOf(createdAt: string): string {
  return createdAt.slice(0, 16);
}

/** One bucket row's key: scope, subject, account, shard, kind, read, minute. */
type BucketKey = [string, string, string, string, string, number, string];

/**
 * The buckets one statement adds to or takes from, merged by key (an upsert may not touch a row twice). The rows
 * go in a fixed order (agent, customer, account), so two transactions lock the rows they share in the same order.
 */
export class BucketChanges {
  readonly #rows = new Map<string, { key: BucketKey; n: number; cents: number }>();

  /** Adds (sign 1) or takes away (-1) a counted action's contribution to each of its buckets. */
  add(a: BucketFacts, sign: 1 | -1): void {
    const minute = minuteOf(a.created_at);
    const read = Number(a.read);
    const cents = sign * centsOf(a.amount_usd);
    const put = (scope: string, subject: string, account: string, shard: string) => {
      const key: BucketKey = [scope, subject, account, shard, a.kind, read, minute];
      const id = JSON.stringify(key);
      const row = this.#rows.get(id);
      if (row) {
        row.n += sign;
        row.cents += cents;
      } else this.#rows.set(id, { key, n: sign, cents });
    };
    // Agent windows span every account.
    if (a.agent_id !== null) put('agent', a.agent_id, '', '');
    // '' is the platform's account key, so an action on an account named '' (which no caller sends: an empty header
    // is no account) is left out of the customer and account buckets, and windows on it are scanned.
    if (a.on_account === '') return;
    const account = a.on_account ?? '';
    // Sharded by agent, so decisions of different agents (each holding its own agent's lock) never wait for each
    // other on one row; a window sums its subject's shards.
    const shard = a.agent_id ?? '';
    if (a.customer !== null) put('customer', a.customer, account, shard);
    put('account', '', account, shard);
  }

  /** The rows that change something. */
  get #changed(): { key: BucketKey; n: number; cents: number }[] {
    return [...this.#rows.values()].filter((r) => r.n !== 0 || r.cents !== 0);
  }

  /** How many bucket rows the statement changes: none when the changes cancel out. */
  get size(): number {
    return this.#changed.length;
  }

  parameters(): unknown[] {
    return this.#changed.flatMap((r) => [...r.key, r.n, r.cents]);
  }

  /** The upsert, its parameters numbered from `offset` + 1 (after those of a statement it is chained to). */
  sql(offset: number): string {
    return upsertSql(this.size, offset);
  }
}

function upsertSql(rows: number, offset: number): string {
  const values: string[] = [];
  for (let r = 0; r < rows; r++) {
    const p = (i: number) => `$${offset + r * 9 + i}`;
    values.push(
      `(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}::integer, ${p(7)}, ${p(8)}::bigint, ${p(9)}::bigint)`,
    );
  }
  return `insert into velocity_minutes (scope, subject, account, shard, kind, read, minute, n, usd_cents)
    values ${values.join(', ')}
    on conflict (scope, subject, account, minute, kind, read, shard) do update
    set n = velocity_minutes.n + excluded.n, usd_cents = velocity_minutes.usd_cents + excluded.usd_cents`;
}

/**
 * Replaces every bucket with sums over the stored actions: migration 0019's backfill, and what a change to
 * BUCKETED_STATUSES needs (in a new migration). The keys are those BucketChanges.add gives an action.
 */
export async function rebuildBuckets(db: Kysely<unknown>): Promise<void> {
  const statuses = sql.join(BUCKETED_STATUSES.map((s) => sql.lit(s)));
  await sql`delete from velocity_minutes`.execute(db);
  await sql`insert into velocity_minutes (scope, subject, account, shard, kind, read, minute, n, usd_cents)
    select k.scope, k.subject, k.account, k.shard, a.kind, a.read, substr(a.created_at, 1, 16), count(*),
      sum(${sql.raw(CENTS_SQL.replace('amount_usd', 'a.amount_usd'))})
    from actions a
    cross join lateral (values
      ('agent', a.agent_id, '', ''),
      ('customer', a.customer, coalesce(a.on_account, ''), coalesce(a.agent_id, '')),
      ('account', '', coalesce(a.on_account, ''), coalesce(a.agent_id, ''))
    ) as k (scope, subject, account, shard)
    where a.status in (${statuses}) and k.subject is not null
      and (k.scope = 'agent' or a.on_account is null or a.on_account <> '')
    group by k.scope, k.subject, k.account, k.shard, a.kind, a.read, substr(a.created_at, 1, 16)`.execute(db);
}
