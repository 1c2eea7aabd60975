import type { Selectable } from 'kysely';
import type { Connection } from './connection.ts';
import type { ReviewLinksTable } from './schema.ts';

// The dashboard's sessions and the signed email links (migration 0005_review). review/store.ts makes the tokens
// and signs the links; only hashes and what a signature binds are stored here.

export type ReviewLinkRow = Selectable<ReviewLinksTable>;

export class ReviewRepository {
  constructor(readonly c: Connection) {}

  // --- sessions ------------------------------------------------------------------------------------------------

  async insertSession(row: {
    id_hash: string;
    reviewer_id: string;
    csrf: string;
    created_at: string;
    expires_at: string;
  }): Promise<void> {
    await this.c.db.insertInto('review_sessions').values(row).execute();
  }

  /** The session with this token hash and its reviewer, expired or not. */
  async findSession(idHash: string): Promise<
    | {
        reviewer: { id: string; email: string; groups: string[] };
        csrf: string;
        expiresAt: string;
      }
    | undefined
  > {
    const row = await this.c.db
      .selectFrom('review_sessions')
      .innerJoin('reviewers', 'reviewers.id', 'review_sessions.reviewer_id')
      .select([
        'reviewers.id as id',
        'reviewers.email as email',
        'reviewers.groups as groups',
        'review_sessions.csrf as csrf',
        'review_sessions.expires_at as expires_at',
      ])
      .where('review_sessions.id_hash', '=', idHash)
      .executeTakeFirst();
    return (
      row && {
        reviewer: { id: row.id, email: row.email, groups: JSON.parse(row.groups) as string[] },
        csrf: row.csrf,
        expiresAt: row.expires_at,
      }
    );
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.c.db.deleteFrom('review_sessions').where('id_hash', '=', idHash).execute();
  }

  // --- email links ---------------------------------------------------------------------------------------------

  async insertLink(row: ReviewLinkRow): Promise<void> {
    await this.c.db.insertInto('review_links').values(row).execute();
  }

  async getLink(id: string): Promise<ReviewLinkRow | undefined> {
    return this.c.db.selectFrom('review_links').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Spends every link of the batch at once; false when one of them was already used (a second click, a race). */
  async spendBatch(batchId: string, at: string): Promise<boolean> {
    const res = await this.c.db
      .updateTable('review_links')
      .set({ used_at: at })
      .where('batch_id', '=', batchId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Gives the batch back when the decision failed for a reason the reviewer may retry (the store was down). */
  async unspendBatch(batchId: string): Promise<void> {
    await this.c.db
      .updateTable('review_links')
      .set({ used_at: null })
      .where('batch_id', '=', batchId)
      .execute();
  }

  /**
   * The key that signs email links, made on first use. Two instances may race to create it: the primary key
   * keeps one, and both read that one back.
   */
  async linkKey(make: () => string): Promise<string> {
    const existing = await this.#readKey();
    if (existing !== undefined) return existing;
    await this.c.db
      .insertInto('review_keys')
      .values({ id: 1, secret: make() })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    const secret = await this.#readKey();
    if (secret === undefined) throw new Error('the link key was neither found nor stored');
    return secret;
  }

  async #readKey(): Promise<string | undefined> {
    const row = await this.c.db
      .selectFrom('review_keys')
      .select('secret')
      .where('id', '=', 1)
      .executeTakeFirst();
    return row?.secret;
  }
}
