import { newId } from '../ids.ts';
import { hasCallback, insertCallback, listCallbacks, queuedColumns } from '../store/outbox.ts';
import type { ActionRow, Store } from '../store/store.ts';
import { callbackShapeOf, shapedCallbackBody } from './shapes.ts';
import { toActionObject, toDecisionObject } from './view.ts';

/** The event a callback delivers. Its id and body are fixed when queued, so every retry is the same event. */
export interface CallbackEvent {
  id: string;
  object: 'event';
  type: string;
  created: number;
  data: { object: unknown };
}

/** Queues the callback for an action that just settled, inside the caller's transaction. Idempotent per type. */
export async function enqueueCallback(tx: Store, row: ActionRow, at: string): Promise<void> {
  if (!row.callback_url) return;
  const type = `${row.mode === 'decide' ? 'decision' : 'action'}.${row.status}`;
  if (await hasCallback(tx, row.id, type)) return;
  const approvals = await tx.listApprovals(row.id);
  const agent = row.agent_id ? ((await tx.getAgent(row.agent_id)) ?? null) : null;
  const object =
    row.mode === 'decide' ? toDecisionObject(row, approvals) : toActionObject(row, approvals, agent);
  const event: CallbackEvent = {
    id: newId('evt'),
    object: 'event',
    type,
    created: Math.floor(Date.parse(at) / 1000),
    data: { object },
  };
  // An action requested in a compatible shape gets its callback in that shape; the event id travels as a header.
  const shape = callbackShapeOf(row);
  const body = shape ? shapedCallbackBody(shape, row, approvals, agent) : event;
  await insertCallback(tx, {
    ...queuedColumns(event.id, at, at),
    action_id: row.id,
    type,
    url: row.callback_url,
    payload: JSON.stringify(body),
  });
}

/**
 * What the engine queues for reviewers when an action starts waiting for them, in the transaction that holds it
 * (src/notify implements it). Queuing the same hold again adds nothing.
 */
export interface HoldNotifications {
  enqueue(tx: Store, row: ActionRow, at: string): Promise<void>;
  /**
   * Queues a hold's reminder (to eligible reviewers who have not voted) or escalation (to those it adds), in the
   * transaction that claims it. Returns who will be told, for the ledger.
   */
  followUp(tx: Store, row: ActionRow, at: string, occasion: FollowUp): Promise<Notified[]>;
}

export type FollowUp = { kind: 'remind' } | { kind: 'escalate'; to: string[] };

/** One message queued: its channel and recipient (an email address, or a role such as `webhook`). */
export interface Notified {
  channel: string;
  recipient: string;
}

/** What the engine queues when an action settles, for people outside Airlock (customer notices; src/notify). */
export interface OutcomeNotifications {
  enqueue(tx: Store, row: ActionRow, at: string): Promise<void>;
}

/** A callback and how its delivery went, as the actions API (and the SDK's `Action`) shows it. */
export interface CallbackDelivery {
  id: string;
  type: string;
  url: string;
  attempts: number;
  delivered_at: string | null;
  gave_up_at: string | null;
  last_status: number | null;
  last_error: string | null;
}

export async function callbacksFor(store: Store, actionId: string): Promise<CallbackDelivery[]> {
  return listCallbacks(store, actionId);
}
