import { ruleLabels } from '../../engine/context.ts';
import { eligibleReviewers } from '../../engine/engine.ts';
import type { LedgerEntry } from '../../store/store.ts';
import { contextFacts, type Fact, ruleLine } from '../facts.ts';
import { formatMoney, formatTime, type Html, html, kindLabel, majorUnits } from '../html.ts';
import type { ActionView, NotificationDelivery } from '../queries.ts';
import type { LinkVerb, Session } from '../store.ts';
import { layout, type Notice } from './layout.ts';
import { amountOf, cannotDecide, riskBadge, statusBadge, target, timeLeft, votes, who } from './parts.ts';

// The receipt: everything about one action, with the decide panel for a reviewer's session or the single button
// of a signed email link.

function jsonBlock(value: unknown): Html {
  return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
}

function paramsTable(
  params: Record<string, unknown>,
  other: Record<string, unknown> | null,
  currency: string | null,
): Html {
  const keys = [...new Set([...Object.keys(other ?? {}), ...Object.keys(params)])];
  const show = (v: unknown, k = '') => {
    if (v === undefined) return '—';
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    // Minor units are what Stripe receives; the money value beside them is what a person reads.
    if (currency && /amount/.test(k) && /^\d+$/.test(text))
      return `${text} (${formatMoney(Number(text), currency)})`;
    return text;
  };
  if (!other) {
    return html`<table class="kv">${keys.map((k) => html`<tr><th>${k}</th><td><code>${show(params[k], k)}</code></td></tr>`)}</table>`;
  }
  return html`<table class="kv versions"><thead><tr><th></th><th>Originally requested</th><th>Approved version</th></tr></thead>
${keys.map((k) => {
  const a = show(other[k], k);
  const b = show(params[k], k);
  return html`<tr class="${a !== b ? 'changed' : ''}"><th>${k}</th><td><code>${a}</code></td><td><code>${b}</code></td></tr>`;
})}</table>`;
}

/**
 * Who is being refunded, the charge, the agent's stated reason and what happened to this customer before: first on
 * the page, so a reviewer reads it before anything else. A look-up that failed says so on its line.
 */
function contextPanel(v: ActionView, now: Date): Html {
  if (!v.context) return html``;
  const rules = ruleLine(v.context.rules);
  const facts: Fact[] = [
    ...contextFacts(v.context, now),
    ...(rules ? [{ label: 'Held by', value: rules }] : []),
  ];
  return html`<section class="panel context-panel" id="context"><h2>Who, why, and what happened before</h2>
<dl class="facts">${facts.map(
    (f) =>
      html`<div class="fact${f.failed ? ' failed' : ''}" data-fact="${f.label}"><dt>${f.label}</dt><dd>${f.value}</dd></div>`,
  )}</dl></section>`;
}

function matchedRules(d: ActionView['decision']): Html {
  const rules = ruleLabels(d);
  if (!rules.length) return html`<p class="muted">None: the policy default applied.</p>`;
  return html`<ul class="rules">${rules.map((r) =>
    r.name
      ? html`<li><b class="rule-name">${r.name}</b><div class="sub"><code>${r.text}</code></div></li>`
      : html`<li><code>${r.text}</code></li>`,
  )}</ul>`;
}

function eventLabel(e: LedgerEntry): string {
  const data = JSON.parse(e.data) as Record<string, unknown>;
  switch (e.type) {
    case 'action.received':
      return 'Request received';
    case 'action.decided':
      return `Policy decided: ${String(data['outcome'] ?? '')}`;
    case 'action.modified':
      return 'Changed by a reviewer';
    case 'approval.recorded':
      return `Approval ${String(data['approvals'])} of ${String(data['approvals_required'])} recorded`;
    case 'action.approved':
      return 'Approved';
    case 'action.rejected':
      return 'Rejected';
    case 'action.expired':
      return 'Expired without a decision';
    case 'action.reminded':
      return `Reminder sent (${notifiedCount(data)})`;
    case 'action.escalated':
      return `Escalated to ${((data['escalate_to'] as string[] | undefined) ?? []).join(', ')} (${notifiedCount(data)})`;
    case 'dispatch.attempt':
      return `Sent upstream (attempt ${String(data['attempt'])})`;
    case 'dispatch.retry_scheduled':
      return `Retry scheduled: ${String(data['error'] ?? '')}`;
    case 'action.completed':
      return `Completed: upstream answered ${String(data['response_code'])}${data['object_id'] ? ` (${String(data['object_id'])})` : ''}`;
    case 'action.failed':
      return `Failed: ${String(data['error'] ?? '')}`;
    case 'notification.sent':
      return `Notified ${String(data['recipient'])} by ${String(data['channel'])}`;
    case 'notification.failed':
      return `Could not notify ${String(data['recipient'])} by ${String(data['channel'])}`;
    default:
      return e.type;
  }
}

function notifiedCount(data: Record<string, unknown>): string {
  const n = Array.isArray(data['notified']) ? data['notified'].length : 0;
  return `${n} message${n === 1 ? '' : 's'} queued`;
}

function timeline(events: LedgerEntry[]): Html {
  return html`<ol class="timeline">${events.map(
    (e) => html`<li class="ev-${e.type.replace(/\W/g, '-')}"><time>${formatTime(e.at)}</time>
<span class="ev">${eventLabel(e)}</span> <span class="muted">by ${e.actor.replace(/^(agent|reviewer|dispatcher):/, '$1 ')}</span>
${e.from_status && e.to_status && e.from_status !== e.to_status ? html`<span class="muted"> · ${e.from_status} → ${e.to_status}</span>` : ''}
<details><summary>details</summary>${jsonBlock(JSON.parse(e.data))}</details></li>`,
  )}</ol>`;
}

/** Where a message to a reviewer stands, in words. */
function notificationState(n: NotificationDelivery): string {
  switch (n.status) {
    case 'sent':
      return `sent ${formatTime(n.delivered_at ?? '')}`;
    case 'failed':
      return `gave up ${formatTime(n.gave_up_at ?? '')}`;
    case 'skipped':
      return n.last_error ?? 'not sent';
    default:
      return n.attempts > 0 ? 'retrying' : 'queued';
  }
}

/** How long delivery took: from the moment the action was cleared to the upstream's answer. */
function deliveryMs(v: ActionView): number | null {
  const cleared = v.ledger.find((e) => e.to_status === 'pending');
  const done = v.ledger.find((e) => e.type === 'action.completed' || e.type === 'action.failed');
  if (!cleared || !done) return null;
  return new Date(done.at).getTime() - new Date(cleared.at).getTime();
}

function decidePanel(v: ActionView, session: Session): Html {
  const blocked = cannotDecide(v, session.reviewer);
  if (blocked)
    return html`<section class="panel decide"><h2>Decision</h2><p class="muted">${blocked}.</p></section>`;
  const currency = v.row.currency ?? 'usd';
  const amount = v.row.amount === null ? null : Number(v.row.amount);
  const reason = typeof v.params['reason'] === 'string' ? v.params['reason'] : '';
  return html`<section class="panel decide"><h2>Decide</h2>
<form method="post" action="/review/actions/${v.row.id}/approve" id="approve-form">
  <input type="hidden" name="_csrf" value="${session.csrf}">
  <label>Note <input type="text" name="note" maxlength="2000" placeholder="Why you approve (kept in the ledger)"></label>
  <details id="changes"><summary>Approve with changes</summary>
    ${
      amount !== null
        ? html`<label>Amount (${currency.toUpperCase()}, may only go down)
      <input type="text" name="amount" inputmode="decimal" value="${majorUnits(amount, currency)}"></label>`
        : ''
    }
    ${
      // A generic call's body is the caller's: only its amount, where the operator's route reads it, can change.
      v.row.mode === 'http'
        ? ''
        : html`<label>Reason <input type="text" name="reason" value="${reason}" placeholder="e.g. requested_by_customer"></label>
    <label>Metadata (one key=value a line) <textarea name="metadata" rows="2"></textarea></label>`
    }
  </details>
  <button type="submit" class="approve big">Approve</button>
</form>
<form method="post" action="/review/actions/${v.row.id}/reject" id="reject-form">
  <input type="hidden" name="_csrf" value="${session.csrf}">
  <label>Note <input type="text" name="note" maxlength="2000" placeholder="Why you reject"></label>
  <button type="submit" class="reject big">Reject</button>
</form></section>`;
}

function linkPanel(
  v: ActionView,
  verb: LinkVerb,
  reviewerEmail: string,
  token: string,
  spent: boolean,
): Html {
  if (spent || v.row.status !== 'awaiting_approval') {
    const { approvals, required } = votes(v);
    return html`<section class="panel decide"><h2>Outcome</h2><p id="outcome">This action is <b>${v.row.status.replace('_', ' ')}</b>${
      v.row.status === 'awaiting_approval' ? ` (${approvals} of ${required} approvals)` : ''
    }.</p></section>`;
  }
  return html`<section class="panel decide"><h2>${verb === 'approve' ? 'Approve' : 'Reject'} as ${reviewerEmail}</h2>
<p class="muted">Opening this link decided nothing. Press the button to ${verb}; this link and its sibling then stop working.</p>
<form method="post" action="/review/links/${token}" id="link-form">
  <label>Note <input type="text" name="note" maxlength="2000"></label>
  <button type="submit" class="${verb} big">${verb === 'approve' ? `Approve ${kindLabel(v.row.kind).toLowerCase()}` : 'Reject'}</button>
</form></section>`;
}

export type ReceiptMode =
  | { kind: 'session'; session: Session }
  | { kind: 'link'; verb: LinkVerb; reviewerEmail: string; token: string; spent: boolean };

export function receiptBody(v: ActionView, now: Date, mode: ReceiptMode): Html {
  const d = v.decision;
  const { approvals, required } = votes(v);
  const delivery = deliveryMs(v);
  return html`<header class="receipt-head">
  <h1><span class="kind">${kindLabel(v.row.kind)}</span> <span class="amount">${amountOf(v)}</span> ${statusBadge(v.row.status)}</h1>
  <p class="lede">Requested by ${who(v)} · ${target(v)} · ${riskBadge(d.risk_score)}
  ${v.row.status === 'awaiting_approval' ? html` · ${timeLeft(v.row.expires_at, now)} · <b>${approvals} of ${required}</b> approval${required === 1 ? '' : 's'}` : ''}</p>
  <p class="muted"><code>${v.row.id}</code> · <code>${v.row.kind}</code> · ${v.row.method} ${v.row.path} · received ${formatTime(v.row.created_at)}</p>
</header>
${contextPanel(v, now)}
<div class="grid">
<div>
<section class="panel why-panel"><h2>Why it was ${d.outcome === 'review' ? 'held' : d.outcome === 'block' ? 'blocked' : 'allowed'}</h2>
  <p>${d.reason}</p>
  <h3>Matched rules</h3>
  ${matchedRules(d)}
  <h3>Risk factors</h3>
  ${d.risk_factors.length ? html`<ul class="factors">${d.risk_factors.map((f) => html`<li>${f.name} <b>+${f.points}</b></li>`)}</ul>` : html`<p class="muted">No risk factors recorded.</p>`}
  <p class="muted">Policy <code>${d.policy_version}</code> · approvals ${approvals} of ${required}${d.reviewers?.length ? ` · decided by ${eligibleReviewers(d).join(', ')}` : ''}</p>
</section>
<section class="panel"><h2>${v.originalParams ? 'Request, both versions' : 'Request'}</h2>
  ${paramsTable(v.params, v.originalParams, v.row.currency)}
  ${v.row.stripe_account ? html`<p>On connected account <code>${v.row.stripe_account}</code></p>` : ''}
</section>
<section class="panel"><h2>Reviewers</h2>
  ${
    v.approvals.length
      ? html`<ul class="votes">${v.approvals.map(
          (
            a,
          ) => html`<li><b>${a.reviewer_email}</b> ${a.decision === 'approve' ? 'approved' : 'rejected'} at ${formatTime(a.at)}
      ${a.note ? html`<blockquote>${a.note}</blockquote>` : ''}${a.changes ? html`<div class="muted">with changes <code>${a.changes}</code></div>` : ''}</li>`,
        )}</ul>`
      : html`<p class="muted">Nobody has decided yet.</p>`
  }
  <h3>Notifications</h3>
  ${
    v.notifications.length
      ? html`<table class="kv notifications">${v.notifications.map(
          (n) =>
            html`<tr><th>${n.channel}</th><td>${n.recipient}<div class="sub">${notificationState(n)}${
              n.status === 'skipped'
                ? ''
                : ` · ${n.attempts} attempt${n.attempts === 1 ? '' : 's'}${n.last_status ? ` · last answer ${n.last_status}` : ''}${
                    n.last_error ? ` · ${n.last_error}` : ''
                  }`
            }</div></td></tr>`,
        )}</table>`
      : html`<p class="muted">None sent.</p>`
  }
</section>
<section class="panel"><h2>Upstream</h2>
  ${
    v.row.response_code !== null || v.row.last_error
      ? html`<p>Answered <b>${v.row.response_code ?? '—'}</b> after ${v.row.attempts} attempt${v.row.attempts === 1 ? '' : 's'}${delivery !== null ? html` · delivered in <b>${delivery} ms</b>` : ''}</p>
    ${v.row.last_error ? html`<p class="error">${v.row.last_error}</p>` : ''}
    ${v.responseBody !== null ? jsonBlock(v.responseBody) : ''}`
      : html`<p class="muted">Not sent upstream${v.row.status === 'pending' ? ' yet' : ''}.</p>`
  }
  <h3>Callback deliveries</h3>
  ${
    v.callbacks.length
      ? html`<table class="kv callbacks">${v.callbacks.map(
          (c) =>
            html`<tr><th>${c.type}</th><td><code>${c.url}</code><div class="sub">${
              c.delivered_at
                ? `delivered ${formatTime(c.delivered_at)}`
                : c.gave_up_at
                  ? `gave up ${formatTime(c.gave_up_at)}`
                  : 'retrying'
            } · ${c.attempts} attempt${c.attempts === 1 ? '' : 's'}${c.last_status ? ` · last answer ${c.last_status}` : ''}${
              c.last_error ? ` · ${c.last_error}` : ''
            }</div></td></tr>`,
        )}</table>`
      : html`<p class="muted">None.</p>`
  }
</section>
</div>
<div>
${mode.kind === 'session' ? decidePanel(v, mode.session) : linkPanel(v, mode.verb, mode.reviewerEmail, mode.token, mode.spent)}
<section class="panel"><h2>Timeline</h2>${timeline(v.ledger)}</section>
</div>
</div>`;
}

export function receiptPage(v: ActionView, session: Session, now: Date, notice: Notice | null): string {
  return layout(
    `${kindLabel(v.row.kind)} ${amountOf(v)}`,
    session,
    receiptBody(v, now, { kind: 'session', session }),
    {
      notice,
      live: true,
      actionId: v.row.id,
    },
  );
}

export function linkPage(
  v: ActionView,
  verb: LinkVerb,
  reviewerEmail: string,
  token: string,
  now: Date,
  notice: Notice | null,
  spent: boolean,
): string {
  const mode: ReceiptMode = { kind: 'link', verb, reviewerEmail, token, spent };
  return layout(`${kindLabel(v.row.kind)} ${amountOf(v)}`, null, receiptBody(v, now, mode), {
    notice,
  });
}
