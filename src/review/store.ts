import { createHmac } from 'node:crypto';
import type { Kysely } from 'kysely';
import { safeEqual } from '../auth/compare.ts';
import type { Reviewer } from '../engine/engine.ts';
import { newId, randomToken, sha256Hex } from '../ids.ts';
import type { Database } from '../store/schema.ts';
import type { Store } from '../store/store.ts';

// Tables of migration '0005_review'. They live beside the code that uses them, not in the core schema.
interface ReviewSessionsTable {
  id_hash: string;
  reviewer_id: string;
  csrf: string;
  created_at: string;
  expires_at: string;
}

interface ReviewLinksTable {
  id: string;
  batch_id: string;
  action_id: string;
  reviewer_id: string;
  verb: string;
  expires_at: string;
  used_at: string | null;
  created_at: string;
}

interface ReviewKeysTable {
  id: number;
  secret: string;
}

type ReviewDatabase = Database & {
  review_sessions: ReviewSessionsTable;
  review_links: ReviewLinksTable;
  review_keys: ReviewKeysTable;
};

export interface Session {
  reviewer: Reviewer;
  csrf: string;
  expiresAt: string;
}

export type LinkVerb = 'approve' | 'reject';

export interface LinkRow {
  id: string;
  batchId: string;
  actionId: string;
  reviewerId: string;
  verb: LinkVerb;
  expiresAt: string;
  usedAt: string | null;
}

export type LinkCheck =
  | { ok: true; link: LinkRow }
  | { ok: false; reason: 'invalid' | 'expired'; link?: LinkRow };

/** Persistence for dashboard sessions and email links, on the same store as the actions. */
export class ReviewStore {
  readonly #db: Kysely<ReviewDatabase>;
  #secret: Promise<string> | null = null;

  constructor(readonly store: Store) {
    this.#db = store.db as unknown as Kysely<ReviewDatabase>;
  }

  // --- reviewers -----------------------------------------------------------------------------------------------

  async reviewerForLogin(email: string): Promise<(Reviewer & { passwordHash: string | null }) | undefined> {
    const row = await this.#db
      .selectFrom('reviewers')
      .select(['id', 'email', 'groups', 'password_hash'])
      .where('email', '=', email.trim())
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: row.id,
      email: row.email,
      groups: JSON.parse(row.groups) as string[],
      passwordHash: row.password_hash,
    };
  }

  async reviewers(): Promise<Reviewer[]> {
    const rows = await this.#db.selectFrom('reviewers').select(['id', 'email', 'groups']).execute();
    return rows.map((r) => ({ id: r.id, email: r.email, groups: JSON.parse(r.groups) as string[] }));
  }

  async reviewerEmail(id: string): Promise<string | null> {
    const row = await this.#db
      .selectFrom('reviewers')
      .select('email')
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.email ?? null;
  }

  // --- sessions ------------------------------------------------------------------------------------------------

  async createSession(
    reviewerId: string,
    now: Date,
    ttlMs: number,
  ): Promise<{ token: string; csrf: string }> {
    const token = randomToken(40);
    const csrf = randomToken(32);
    await this.#db
      .insertInto('review_sessions')
      .values({
        id_hash: sha256Hex(token),
        reviewer_id: reviewerId,
        csrf,
        created_at: now.toISOString(),
        expires_at: new Date(now.getTime() + ttlMs).toISOString(),
      })
      .execute();
    return { token, csrf };
  }

  async session(token: string, now: Date): Promise<Session | null> {
    const row = await this.#db
      .selectFrom('review_sessions')
      .innerJoin('reviewers', 'reviewers.id', 'review_sessions.reviewer_id')
      .select([
        'reviewers.id as id',
        'reviewers.email as email',
        'reviewers.groups as groups',
        'review_sessions.csrf as csrf',
        'review_sessions.expires_at as expires_at',
      ])
      .where('review_sessions.id_hash', '=', sha256Hex(token))
      .executeTakeFirst();
    if (!row || row.expires_at <= now.toISOString()) return null;
    return {
      reviewer: { id: row.id, email: row.email, groups: JSON.parse(row.groups) as string[] },
      csrf: row.csrf,
      expiresAt: row.expires_at,
    };
  }

  async deleteSession(token: string): Promise<void> {
    await this.#db.deleteFrom('review_sessions').where('id_hash', '=', sha256Hex(token)).execute();
  }

  // --- email links ---------------------------------------------------------------------------------------------

  /** The approve and reject links for one reviewer and one action; using either spends both. */
  async createLinks(
    actionId: string,
    reviewerId: string,
    now: Date,
    expiresAt: Date,
  ): Promise<Record<LinkVerb, string>> {
    const batchId = newId('lnb');
    const out = {} as Record<LinkVerb, string>;
    for (const verb of ['approve', 'reject'] as const) {
      const id = newId('lnk');
      const row = {
        id,
        action_id: actionId,
        reviewer_id: reviewerId,
        verb,
        expires_at: expiresAt.toISOString(),
      };
      await this.#db
        .insertInto('review_links')
        .values({
          id,
          batch_id: batchId,
          action_id: actionId,
          reviewer_id: reviewerId,
          verb,
          expires_at: row.expires_at,
          used_at: null,
          created_at: now.toISOString(),
        })
        .execute();
      out[verb] = `${id}.${await this.#sign(row)}`;
    }
    return out;
  }

  /** A link is `<id>.<HMAC of what the row binds>`: editing any part, or the row, breaks the signature. */
  async checkLink(token: string, now: Date): Promise<LinkCheck> {
    const [id, signature, extra] = token.split('.');
    if (!id || !signature || extra !== undefined || !/^lnk_[0-9A-Za-z]{1,40}$/.test(id)) {
      return { ok: false, reason: 'invalid' };
    }
    const row = await this.#db.selectFrom('review_links').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || !safeEqual(signature, await this.#sign(row))) return { ok: false, reason: 'invalid' };
    const link: LinkRow = {
      id: row.id,
      batchId: row.batch_id,
      actionId: row.action_id,
      reviewerId: row.reviewer_id,
      verb: row.verb as LinkVerb,
      expiresAt: row.expires_at,
      usedAt: row.used_at,
    };
    if (row.expires_at <= now.toISOString()) return { ok: false, reason: 'expired', link };
    return { ok: true, link };
  }

  /** Spends every link of the batch at once; false when one of them was already used (a second click, a race). */
  async spendBatch(batchId: string, now: Date): Promise<boolean> {
    const res = await this.#db
      .updateTable('review_links')
      .set({ used_at: now.toISOString() })
      .where('batch_id', '=', batchId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Gives the batch back when the decision failed for a reason the reviewer may retry (the store was down). */
  async unspendBatch(batchId: string): Promise<void> {
    await this.#db
      .updateTable('review_links')
      .set({ used_at: null })
      .where('batch_id', '=', batchId)
      .execute();
  }

  async #sign(row: Pick<ReviewLinksTable, 'id' | 'action_id' | 'reviewer_id' | 'verb' | 'expires_at'>) {
    return createHmac('sha256', await this.#key())
      .update([row.id, row.action_id, row.reviewer_id, row.verb, row.expires_at].join('\n'))
      .digest('base64url');
  }

  #key(): Promise<string> {
    this.#secret ??= this.#loadKey();
    return this.#secret;
  }

  async #loadKey(): Promise<string> {
    const existing = await this.#db
      .selectFrom('review_keys')
      .select('secret')
      .where('id', '=', 1)
      .executeTakeFirst();
    if (existing) return existing.secret;
    // Two instances may race to create it: the primary key keeps one, and both read that one back.
    try {
      await this.#db
        .insertInto('review_keys')
        .values({ id: 1, secret: randomToken(64) })
        .execute();
    } catch {
      // another instance won
    }
    const row = await this.#db
      .selectFrom('review_keys')
      .select('secret')
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return row.secret;
  }
}
