import type { StoredDecision } from '../engine/engine.ts';
import { formatDuration, formatMoney, kindLabel, riskLevel } from '../review/html.ts';
import type { ActionRow } from '../store/store.ts';

/** What a reviewer needs at a glance, and nothing else: no parameters, no secrets. */
export interface Summary {
  id: string;
  /** What the message says first: `Held for review`, `Reminder: still held for review`, `Escalated: …`. */
  headline: string;
  /** One word for subjects: `Review`, `Reminder`, `Escalated`. */
  tag: string;
  title: string;
  lines: string[];
  receiptUrl: string;
}

/** Why a hold's message goes out: it began, its reminder is due, or it was escalated. */
export type OccasionKind = 'held' | 'remind' | 'escalate';

const HEADLINES: Record<OccasionKind, { headline: string; tag: string }> = {
  held: { headline: 'Held for review', tag: 'Review' },
  remind: { headline: 'Reminder: still held for review', tag: 'Reminder' },
  escalate: { headline: 'Escalated: held for review', tag: 'Escalated' },
};

export function summarize(
  action: ActionRow,
  who: string,
  now: Date,
  baseUrl: string,
  occasion: OccasionKind = 'held',
): Summary {
  const decision = JSON.parse(action.decision) as StoredDecision;
  const money = formatMoney(action.amount === null ? null : Number(action.amount), action.currency);
  const level = riskLevel(decision.risk_score);
  const left = action.expires_at
    ? formatDuration(new Date(action.expires_at).getTime() - now.getTime())
    : null;
  const lines = [
    `${kindLabel(action.kind)} of ${money} requested by ${who}`,
    action.customer ? `Customer: ${action.customer}` : null,
    `Risk: ${level === 'unscored' ? 'not scored' : `${level} (${decision.risk_score})`}`,
    `Why held: ${decision.rules.length ? decision.rules.join('; ') : decision.reason}`,
    action.approvals_required > 1 ? `Needs ${action.approvals_required} distinct approvers` : null,
    left ? `Expires in ${left} (${action.expires_at})` : null,
    occasion === 'escalate' && decision.escalate_after_ms !== undefined
      ? `Escalated to ${(decision.escalate_to ?? []).join(', ')}: no decision after ${asWritten(decision.escalate_after_ms)}`
      : null,
  ].filter((l): l is string => l !== null);
  return {
    id: action.id,
    ...HEADLINES[occasion],
    title: `${kindLabel(action.kind)} ${money} by ${who}`,
    lines,
    receiptUrl: `${baseUrl}/review/actions/${action.id}`,
  };
}

/** A rule's duration as a policy writes it (`2h`, `90m`), where it is whole. */
function asWritten(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return formatDuration(ms);
}
