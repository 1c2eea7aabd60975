// When a hold's reminder and escalation fall due, scheduled in the transaction that holds it (transition.ts).
// Sending them is systems/reminders.ts.
import type { ActionRow, ReminderKind, Store } from '../store/store.ts';
import type { StoredDecision } from './types.ts';

/**
 * When a hold's reminder and escalation fall due: the reminder `remind_before` ahead of its expiry, the escalation
 * `escalate_after` past its start. One that would fall outside the hold (a shorter expiry from another rule) is
 * not scheduled: the first message was just sent, and an expired hold decides nothing.
 */
export function followUpsFor(
  row: Pick<ActionRow, 'decision' | 'expires_at'>,
  at: string,
): { kind: ReminderKind; at: string }[] {
  if (!row.expires_at) return [];
  const d = JSON.parse(row.decision) as StoredDecision;
  const start = Date.parse(at);
  const end = Date.parse(row.expires_at);
  const due: { kind: ReminderKind; at: number }[] = [];
  if (d.escalate_after_ms !== undefined && (d.escalate_to?.length ?? 0) > 0)
    due.push({ kind: 'escalate', at: start + d.escalate_after_ms });
  if (d.remind_before_ms !== undefined) due.push({ kind: 'remind', at: end - d.remind_before_ms });
  return due
    .filter((f) => f.at > start && f.at < end)
    .map((f) => ({ kind: f.kind, at: new Date(f.at).toISOString() }));
}

/** Schedules a hold's reminder and escalation in the transaction that holds it; `again` replaces an earlier hold's. */
export async function scheduleFollowUps(
  tx: Store,
  row: ActionRow,
  at: string,
  again: boolean,
): Promise<void> {
  const due = followUpsFor(row, at);
  if (due.length > 0 || again) await tx.reminders.schedule(row.id, due, at);
}
