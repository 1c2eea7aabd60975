// Signed digests of the ledger head (src/audit/digest.ts). None of this is on the request path.
import type { Selectable } from 'kysely';
import type { Connection } from './connection.ts';
import type { LedgerDigestsTable } from './schema.ts';

export type DigestRow = Selectable<LedgerDigestsTable>;

export class DigestsRepository {
  constructor(readonly c: Connection) {}

  /**
   * Stores a digest unless one with its number exists: another instance signed first, and this one's is dropped,
   * so the digest chain never forks. Returns whether it was stored.
   */
  async insert(row: DigestRow): Promise<boolean> {
    const res = await this.c.db
      .insertInto('ledger_digests')
      .values(row)
      .onConflict((oc) => oc.column('number').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async latest(): Promise<DigestRow | undefined> {
    return this.c.db
      .selectFrom('ledger_digests')
      .selectAll()
      .orderBy('number', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  /** Digests after `afterNumber`, oldest first. */
  async page(afterNumber: number, limit: number): Promise<DigestRow[]> {
    return this.c.db
      .selectFrom('ledger_digests')
      .selectAll()
      .where('number', '>', afterNumber)
      .orderBy('number')
      .limit(limit)
      .execute();
  }

  /** The newest digest covering no event after `ledgerSeq`: where an export starting after it can be anchored. */
  async atOrBefore(ledgerSeq: number): Promise<DigestRow | undefined> {
    return this.c.db
      .selectFrom('ledger_digests')
      .selectAll()
      .where('ledger_seq', '<=', ledgerSeq)
      .orderBy('number', 'desc')
      .limit(1)
      .executeTakeFirst();
  }
}
