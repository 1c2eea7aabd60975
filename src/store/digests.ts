// The audit trail's reads and writes: signed digests of the ledger head (src/audit/digest.ts) and what an export
// reads. None of this is on the request path.
import type { Selectable } from 'kysely';
import type { ActionsTable, LedgerDigestsTable } from './schema.ts';
import type { Store } from './store.ts';

export type DigestRow = Selectable<LedgerDigestsTable>;

/**
 * Stores a digest unless one with its number exists: another instance signed first, and this one's is dropped, so
 * the digest chain never forks. Returns whether it was stored.
 */
export async function insertDigest(store: Store, row: DigestRow): Promise<boolean> {
  return store.transaction(async (tx) => {
    const res = await tx.db
      .insertInto('ledger_digests')
      .values(row)
      .onConflict((oc) => oc.column('number').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  });
}

export async function latestDigest(store: Store): Promise<DigestRow | undefined> {
  return store.db
    .selectFrom('ledger_digests')
    .selectAll()
    .orderBy('number', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** Digests after `afterNumber`, oldest first. */
export async function digestPage(store: Store, afterNumber: number, limit: number): Promise<DigestRow[]> {
  return store.db
    .selectFrom('ledger_digests')
    .selectAll()
    .where('number', '>', afterNumber)
    .orderBy('number')
    .limit(limit)
    .execute();
}

/** The newest digest covering no event after `ledgerSeq`: where an export starting after it can be anchored. */
export async function digestAtOrBefore(store: Store, ledgerSeq: number): Promise<DigestRow | undefined> {
  return store.db
    .selectFrom('ledger_digests')
    .selectAll()
    .where('ledger_seq', '<=', ledgerSeq)
    .orderBy('number', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** The first event recorded at or after `at` (ISO 8601 UTC); null when there is none. A scan: exports are rare. */
export async function firstEventSince(store: Store, at: string): Promise<number | null> {
  const row = await store.db
    .selectFrom('ledger')
    .select((eb) => eb.fn.min('seq').as('seq'))
    .where('at', '>=', at)
    .executeTakeFirst();
  return row?.seq === null || row?.seq === undefined ? null : Number(row.seq);
}

/** The hash of event `seq`, or undefined when it is not stored. */
export async function eventHash(store: Store, seq: number): Promise<string | undefined> {
  const row = await store.db.selectFrom('ledger').select('hash').where('seq', '=', seq).executeTakeFirst();
  return row?.hash;
}

export type ActionExportRow = Pick<
  Selectable<ActionsTable>,
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

/** Actions changed at or after `since`, in (updated_at, id) order, a page after `after`. */
export async function actionsChangedSince(
  store: Store,
  since: string,
  after: { updated_at: string; id: string } | null,
  limit: number,
): Promise<ActionExportRow[]> {
  let query = store.db
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
