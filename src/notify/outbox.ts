import type { HoldNotifications } from '../engine/callbacks.ts';
import type { Reviewer, StoredDecision } from '../engine/engine.ts';
import { newId } from '../ids.ts';
import { ReviewStore } from '../review/store.ts';
import { insertNotifications, type NotificationRow, queuedColumns } from '../store/outbox.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { Channel, Hold } from './channel.ts';

/** The one event that notifies today: an action started waiting for a person. */
export const REVIEW_REQUESTED = 'review_requested';

/**
 * Queues reviewers' messages in the transaction that holds an action, so the hold and the duty to tell someone
 * commit together. The Notifier delivers them. One row per channel and recipient, unique per hold of one version of
 * the request: queuing it again (a retried transaction, a second path to the same hold) adds nothing.
 */
export class HoldOutbox implements HoldNotifications {
  constructor(readonly channels: readonly Channel[]) {}

  async enqueue(tx: Store, row: ActionRow, at: string): Promise<void> {
    if (row.status !== 'awaiting_approval' || this.channels.length === 0) return;
    let reviewers: Promise<Reviewer[]> | null = null;
    const hold: Hold = {
      action: row,
      decision: JSON.parse(row.decision) as StoredDecision,
      reviewers: () => {
        reviewers ??= new ReviewStore(tx).reviewers();
        return reviewers;
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
          event: REVIEW_REQUESTED,
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
  }
}
