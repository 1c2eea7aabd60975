// Reminders and escalation of holds (a rule's `remind_before`, `escalate_after` and `escalate_to`): scheduled in the
// transaction that holds an action, each claimed once in the store by the sweep that sends it, on any instance.
import { TransitionConflict } from '../../errors.ts';
import type { ActionRow, ReminderKind, Store } from '../../store/store.ts';
import { announce, type EngineResources } from '../resources.ts';
import type { StoredDecision } from '../types.ts';
import { eligibleReviewers } from './review.ts';

export class ReminderSystem {
  constructor(private readonly r: EngineResources) {}

  /**
   * Sends the reminders and escalations due now. Each is claimed in the store in the transaction that records it in
   * the ledger and queues its messages, so it goes out once whichever instance sweeps first, and never for a hold
   * that ended: one decided, cancelled or past its expiry is dropped instead (expiry stays `expired`).
   */
  async sendDue(): Promise<number> {
    const at = this.r.clock.now().toISOString();
    let n = 0;
    for (const { action_id: id, kind } of await this.r.store.reminders.due(at, 100)) {
      const fired = await this.r.store.transaction((tx) => this.#fire(tx, id, kind, at));
      if (fired) {
        announce(this.r, id, 'awaiting_approval');
        n++;
      }
    }
    return n;
  }

  async #fire(tx: Store, id: string, kind: ReminderKind, at: string): Promise<boolean> {
    // The row lock first, as a vote takes it: a vote and an escalation of one hold are applied one after the other.
    const action = await tx.getActionForUpdate(id);
    const live = action?.status === 'awaiting_approval' && !(action.expires_at && action.expires_at <= at);
    const decision = action ? (JSON.parse(action.decision) as StoredDecision) : null;
    // A reviewer's change may have been decided under rules that no longer escalate: then nobody is added.
    const moot = kind === 'escalate' && (decision?.escalate_to ?? []).length === 0;
    if (!action || !decision || !live || moot) {
      await tx.reminders.drop(id, kind);
      return false;
    }
    if (!(await tx.reminders.claim(id, kind, at))) return false;
    if (kind === 'remind') {
      const notified = (await this.r.notifications?.followUp(tx, action, at, { kind })) ?? [];
      await tx.appendLedger({
        actionId: id,
        type: 'action.reminded',
        from: 'awaiting_approval',
        to: 'awaiting_approval',
        actor: 'system',
        data: { expires_at: action.expires_at, notified },
        at,
      });
      return true;
    }
    const to = decision.escalate_to ?? [];
    const escalated: StoredDecision = {
      ...decision,
      escalated_to: [...new Set([...(decision.escalated_to ?? []), ...to])],
    };
    const json = JSON.stringify(escalated);
    if (!(await tx.updateActionFrom(id, 'awaiting_approval', { decision: json, updated_at: at })))
      throw new TransitionConflict(id, 'awaiting_approval', null);
    const row: ActionRow = { ...action, decision: json };
    const notified = (await this.r.notifications?.followUp(tx, row, at, { kind, to })) ?? [];
    await tx.appendLedger({
      actionId: id,
      type: 'action.escalated',
      from: 'awaiting_approval',
      to: 'awaiting_approval',
      actor: 'system',
      data: { escalate_to: to, eligible: eligibleReviewers(escalated), notified },
      at,
    });
    return true;
  }
}
