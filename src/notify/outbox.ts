import type { FollowUp, HoldNotifications, Notified } from '../engine/callbacks.ts';
import { boundHash, type Reviewer, type StoredDecision } from '../engine/engine.ts';
import { newId } from '../ids.ts';
import { ReviewStore } from '../review/store.ts';
import { insertNotifications, type NotificationRow, queuedColumns } from '../store/outbox.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { Channel, Hold, Occasion } from './channel.ts';

/** An action started waiting for a person. */
export const REVIEW_REQUESTED = 'review_requested';
/** A hold's reminder (`remind_before`), to eligible reviewers who have not voted. */
export const REVIEW_REMINDER = 'review_reminder';
/** A hold's escalation (`escalate_after`), to those it made eligible. */
export const REVIEW_ESCALATED = 'review_escalated';

const EVENTS: Record<Occasion['kind'], string> = {
  held: REVIEW_REQUESTED,
  remind: REVIEW_REMINDER,
  escalate: REVIEW_ESCALATED,
};

/** What a queued message is about, from its event. */
export function occasionOf(event: string): Occasion['kind'] {
  return event === REVIEW_REMINDER ? 'remind' : event === REVIEW_ESCALATED ? 'escalate' : 'held';
}

/**
 * Queues reviewers' messages in the transaction that holds an action (or claims its reminder or escalation), so the
 * change and the duty to tell someone commit together. The Notifier delivers them. One row per event, channel and
 * recipient, unique per hold of one version of the request: queuing it again adds nothing.
 */
export class HoldOutbox implements HoldNotifications {
  constructor(readonly channels: readonly Channel[]) {}

  async enqueue(tx: Store, row: ActionRow, at: string): Promise<void> {
    if (row.status !== 'awaiting_approval') return;
    await this.#queue(tx, row, at, { kind: 'held' });
  }

  followUp(tx: Store, row: ActionRow, at: string, occasion: FollowUp): Promise<Notified[]> {
    return this.#queue(tx, row, at, occasion);
  }

  async #queue(tx: Store, row: ActionRow, at: string, occasion: Occasion): Promise<Notified[]> {
    if (this.channels.length === 0) return [];
    let reviewers: Promise<Reviewer[]> | null = null;
    const hold: Hold = {
      action: row,
      decision: JSON.parse(row.decision) as StoredDecision,
      occasion,
      reviewers: () => {
        reviewers ??= new ReviewStore(tx).reviewers();
        return reviewers;
      },
      voters: async () => {
        const bound = boundHash(row);
        return (await tx.listApprovals(row.id))
          .filter((a) => a.bound_hash === bound)
          .map((a) => a.reviewer_id);
      },
    };
    // Due by the wall clock the sender sweeps with, not the engine's (which tests may move).
    const due = new Date().toISOString();
    const rows: NotificationRow[] = [];
    for (const channel of this.channels) {
      for (const to of await channel.recipients(hold)) {
        rows.push({
          ...queuedColumns(newId('ntf'), due, at),
          action_id: row.id,
          event: EVENTS[occasion.kind],
          version: row.request_hash,
          channel: channel.name,
          recipient: to.recipient,
          reviewer_id: to.reviewerId,
          payload: null,
          status: 'queued',
        });
      }
    }
    await insertNotifications(tx, rows);
    return rows.map((r) => ({ channel: r.channel, recipient: r.recipient }));
  }
}
