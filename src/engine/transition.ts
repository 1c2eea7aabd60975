// The one way an action's status changes. The table in status.ts says which changes are legal; the row says whether
// this one still applies (the status it names must be the row's); the row change, its ledger event and what must
// go out with it (the callback, reviewers' messages, the wake-up of other instances) commit in one transaction.
import { AirlockError, TransitionConflict } from '../errors.ts';
import type { ActionPatch, ActionRow, LedgerEventInput, Store } from '../store/store.ts';
import { enqueueCallback } from './callbacks.ts';
import { scheduleFollowUps } from './follow-ups.ts';
import type { EngineResources } from './resources.ts';
import { canTransition, isSettledAction, type Status } from './status.ts';

/** A change the table in status.ts does not allow: a defect in the engine, never a race (that is a conflict). */
export class IllegalTransition extends AirlockError {
  readonly from: Status;
  readonly to: Status;
  constructor(actionId: string, from: Status, to: Status) {
    super('invalid_transition', `Action ${actionId} cannot move from ${from} to ${to}`, { actionId });
    this.from = from;
    this.to = to;
  }
}

/** The ledger event a transition writes, and the columns that change with the status. */
export interface TransitionEvent {
  type: string;
  actor: string;
  data: Record<string, unknown>;
  at: string;
  /** The columns that change with the status (never the status itself: that is `to`). */
  patch: ActionPatch;
}

export function assertLegal(id: string, from: Status, to: Status): void {
  if (!canTransition(from, to)) throw new IllegalTransition(id, from, to);
}

/**
 * Moves an action from `from` to `to` inside the caller's transaction: refused when the table does not allow it,
 * a TransitionConflict when the row has moved on. Announcing the change in process is the caller's, after commit.
 */
export async function transition(
  r: EngineResources,
  tx: Store,
  id: string,
  from: Status,
  to: Status,
  e: TransitionEvent,
): Promise<ActionRow> {
  assertLegal(id, from, to);
  const moved = await tx.transitionAction(id, from, to, { ...e.patch, updated_at: e.at });
  if (!moved) {
    const current = await tx.getAction(id);
    throw new TransitionConflict(id, from, current?.status ?? null);
  }
  await tx.appendLedger({ actionId: id, type: e.type, from, to, actor: e.actor, data: e.data, at: e.at });
  // An approval wakes the dispatchers of every instance when it commits (PostgreSQL LISTEN/NOTIFY). An action
  // allowed on submit is not announced: the instance that took the request executes it and answers the caller.
  if (from === 'awaiting_approval' && to === 'pending') await tx.notifyActionReady(id);
  await afterEntering(r, tx, moved, e.at, true);
  return moved;
}

/**
 * Writes a new action already decided, with the events that say how it got there (`received`, then its decision,
 * and a first claim when there is one): no other transaction can see it in between, so there is no row to guard.
 */
export async function insertDecided(
  r: EngineResources,
  tx: Store,
  row: ActionRow,
  events: LedgerEventInput[],
): Promise<void> {
  assertLegal(row.id, 'received', row.status);
  await tx.insertAction(row);
  await tx.appendLedgerEvents(events);
  await afterEntering(r, tx, row, row.updated_at, false);
}

/** What goes out with a status in the transaction that enters it (outboxes): never lost, never early. */
async function afterEntering(
  r: EngineResources,
  tx: Store,
  row: ActionRow,
  at: string,
  again: boolean,
): Promise<void> {
  if (row.callback_url && isSettledAction(row)) await enqueueCallback(tx, row, at);
  if (row.status === 'awaiting_approval') {
    await scheduleFollowUps(tx, row, at, again);
    await r.notifications?.enqueue(tx, row, at);
  }
  if (row.status === 'completed' || row.status === 'rejected')
    await r.outcomeNotifications?.enqueue(tx, row, at);
}
