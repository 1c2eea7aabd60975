import { createHmac } from 'node:crypto';
import { safeEqual } from '../auth/compare.ts';
import type { Reviewer } from '../engine/engine.ts';
import { newId, randomToken, sha256Hex } from '../ids.ts';
import type { ReviewLinkRow } from '../store/review.ts';
import type { Store } from '../store/store.ts';

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
  #secret: Promise<string> | null = null;

  constructor(readonly store: Store) {}

  // --- reviewers -----------------------------------------------------------------------------------------------

  async reviewerForLogin(email: string): Promise<(Reviewer & { passwordHash: string | null }) | undefined> {
    return this.store.credentials.reviewerForLogin(email.trim());
  }

  /** The reviewer single sign-on vouches for: created on first login, their groups set from the provider's. */
  async ssoReviewer(email: string, groups: string[], at: Date): Promise<{ id: string; email: string }> {
    return this.store.credentials.upsertReviewer({
      id: newId('rev'),
      email,
      password_hash: null,
      groups,
      created_at: at.toISOString(),
    });
  }

  async reviewers(): Promise<Reviewer[]> {
    return this.store.credentials.listReviewers();
  }

  async reviewerEmail(id: string): Promise<string | null> {
    return this.store.credentials.reviewerEmail(id);
  }

  // --- sessions ------------------------------------------------------------------------------------------------

  async createSession(
    reviewerId: string,
    now: Date,
    ttlMs: number,
  ): Promise<{ token: string; csrf: string }> {
    const token = randomToken(40);
    const csrf = randomToken(32);
    await this.store.review.insertSession({
      id_hash: sha256Hex(token),
      reviewer_id: reviewerId,
      csrf,
      created_at: now.toISOString(),
      expires_at: new Date(now.getTime() + ttlMs).toISOString(),
    });
    return { token, csrf };
  }

  async session(token: string, now: Date): Promise<Session | null> {
    const found = await this.store.review.findSession(sha256Hex(token));
    if (!found || found.expiresAt <= now.toISOString()) return null;
    return found;
  }

  async deleteSession(token: string): Promise<void> {
    await this.store.review.deleteSession(sha256Hex(token));
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
      await this.store.review.insertLink({
        id,
        batch_id: batchId,
        action_id: actionId,
        reviewer_id: reviewerId,
        verb,
        expires_at: row.expires_at,
        used_at: null,
        created_at: now.toISOString(),
      });
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
    const row = await this.store.review.getLink(id);
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
    return this.store.review.spendBatch(batchId, now.toISOString());
  }

  /** Gives the batch back when the decision failed for a reason the reviewer may retry (the store was down). */
  async unspendBatch(batchId: string): Promise<void> {
    await this.store.review.unspendBatch(batchId);
  }

  async #sign(row: Pick<ReviewLinkRow, 'id' | 'action_id' | 'reviewer_id' | 'verb' | 'expires_at'>) {
    return createHmac('sha256', await this.#key())
      .update([row.id, row.action_id, row.reviewer_id, row.verb, row.expires_at].join('\n'))
      .digest('base64url');
  }

  #key(): Promise<string> {
    this.#secret ??= this.#loadKey();
    return this.#secret;
  }

  #loadKey(): Promise<string> {
    return this.store.review.linkKey(() => randomToken(64));
  }
}
