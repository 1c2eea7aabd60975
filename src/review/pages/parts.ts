import { whyCannotDecide } from '../../auth/authorize.ts';
import { eligibleReviewers, type Reviewer } from '../../engine/engine.ts';
import { formatDuration, formatMoney, type Html, html, riskLevel } from '../html.ts';
import type { ActionView } from '../queries.ts';

// Pieces more than one page shows for an action.

export function statusBadge(status: string): Html {
  return html`<span class="badge s-${status}">${status.replace('_', ' ')}</span>`;
}

export function riskBadge(score: number | null): Html {
  const level = riskLevel(score);
  return html`<span class="risk r-${level}">${level === 'unscored' ? 'risk not scored' : `${level} risk · ${score}`}</span>`;
}

export function timeLeft(expiresAt: string | null, now: Date): Html {
  if (!expiresAt) return html`<span class="muted">—</span>`;
  const ms = new Date(expiresAt).getTime() - now.getTime();
  const urgent = ms < 3600_000 ? ' urgent' : '';
  return html`<span class="countdown${urgent}" data-expires="${expiresAt}">${ms <= 0 ? 'expired' : `${formatDuration(ms)} left`}</span>`;
}

export function who(v: ActionView): Html {
  if (v.agent) return html`agent <b>${v.agent.name}</b>`;
  if (v.requester) return html`reviewer <b>${v.requester}</b> (dashboard)`;
  return html`<span class="muted">unknown</span>`;
}

export function target(v: ActionView): Html {
  const charge = typeof v.params['charge'] === 'string' ? v.params['charge'] : null;
  const parts: Html[] = [];
  if (v.row.customer) parts.push(html`customer <code>${v.row.customer}</code>`);
  if (charge) parts.push(html`charge <code>${charge}</code>`);
  if (parts.length === 0) return html`<span class="muted">no customer</span>`;
  return html`${parts.map((p, i) => html`${i ? ' · ' : ''}${p}`)}`;
}

export function amountOf(v: ActionView): string {
  return formatMoney(v.row.amount === null ? null : Number(v.row.amount), v.row.currency);
}

export function votes(v: ActionView): { approvals: number; required: number } {
  return {
    approvals: v.approvals.filter((a) => a.decision === 'approve').length,
    required: v.row.approvals_required,
  };
}

/** Why a reviewer cannot decide this action, or null when they can (the rules are in auth/authorize.ts). */
export function cannotDecide(v: ActionView, reviewer: Reviewer): string | null {
  return whyCannotDecide(reviewer, {
    status: v.row.status,
    requestedBy: v.row.requested_by,
    reviewers: eligibleReviewers(v.decision),
    voterIds: v.approvals.map((a) => a.reviewer_id),
  });
}
