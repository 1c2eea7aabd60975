import type { FollowUp, Reviewer, StoredDecision } from '../engine/engine.ts';
import type { ActionRow } from '../store/store.ts';
import type { Summary } from './summary.ts';

/** One recipient on one channel. */
export interface Addressee {
  /** An email address; `webhook` for Slack's one incoming webhook. */
  recipient: string;
  /** Set when the recipient may decide: their message carries their own approve and reject links. */
  reviewerId: string | null;
}

/** Why a hold's message goes out (summary.ts's OccasionKind), with whom an escalation adds. */
export type Occasion = { kind: 'held' } | FollowUp;

/** A hold, as a channel sees it when choosing recipients (inside the transaction that holds the action). */
export interface Hold {
  action: ActionRow;
  decision: StoredDecision;
  occasion: Occasion;
  /** Every reviewer; read once, and only if a channel asks. */
  reviewers(): Promise<Reviewer[]>;
  /** Reviewers whose vote stands on the current version of the request. */
  voters(): Promise<string[]>;
}

export interface ReviewLinks {
  approve: string;
  reject: string;
}

/**
 * A way to tell people that an action waits for them: one file per channel in this folder. The notifier queues one
 * message per recipient a channel names, composes it once, stores it, and sends that same message on every try.
 */
export interface Channel<M = unknown> {
  /** Stored with each message: `email`, `slack`. */
  readonly name: string;
  recipients(hold: Hold): Promise<Addressee[]>;
  /** `links` is null unless the addressee may decide. */
  compose(summary: Summary, to: Addressee, links: ReviewLinks | null): M;
  /**
   * Sends one message; `id` is the same on every try of it. Throws to be tried again later, or Undeliverable when
   * no retry can help. Resolves with the server's answer code when there is one.
   */
  send(message: M, id: string): Promise<{ status: number | null }>;
  close?(): void;
}

/** A failure that retrying cannot fix (the mailbox does not exist, the webhook was deleted): give up at once. */
export class Undeliverable extends Error {
  constructor(
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'Undeliverable';
  }
}
