import { ADMIN_GROUP } from '../auth/credentials.ts';
import { mayDecide, type Reviewer } from '../engine/engine.ts';
import { STATUSES } from '../engine/status.ts';
import type { LedgerRow } from '../store/store.ts';
import {
  formatDuration,
  formatMoney,
  formatTime,
  type Html,
  html,
  kindLabel,
  majorUnits,
  riskLevel,
} from './html.ts';
import type { ActionFilters, ActionView, DayStats, NotificationDelivery } from './queries.ts';
import type { LinkVerb, Session } from './store.ts';

export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

export function layout(
  title: string,
  session: Session | null,
  body: Html,
  opts: { notice?: Notice | null; live?: boolean; actionId?: string } = {},
): string {
  const nav = session
    ? html`<nav>
        <a class="brand" href="/review">Airlock</a>
        <a href="/review">Queue</a>
        <a href="/review/actions">All actions</a>
        <a href="/review/overview">Overview</a>
        <a href="/review/refund">Request a refund</a>
        ${isAdmin(session) ? html`<a href="/review/freeze" id="nav-freeze">Kill switch</a>` : ''}
        <span class="who">${session.reviewer.email}</span>
        <form method="post" action="/review/logout" class="inline">
          <input type="hidden" name="_csrf" value="${session.csrf}">
          <button type="submit" class="link" id="logout">Log out</button>
        </form>
      </nav>`
    : html`<nav><span class="brand">Airlock</span></nav>`;
  const notice = opts.notice
    ? html`<p class="notice ${opts.notice.kind}" role="status">${opts.notice.text}</p>`
    : '';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · Airlock</title>
<link rel="stylesheet" href="/review/assets/dashboard.css">
${opts.live ? html`<script src="/review/assets/live.js" defer></script>` : ''}
</head>
<body${opts.actionId ? html` data-action="${opts.actionId}"` : ''}>
${nav}
<main>
${notice}
<p id="changed" class="notice info" hidden>This action changed since the page loaded. <a href="">Reload</a></p>
${body}
</main>
</body>
</html>`.value;
}

// --- pieces --------------------------------------------------------------------------------------------------

function statusBadge(status: string): Html {
  return html`<span class="badge s-${status}">${status.replace('_', ' ')}</span>`;
}

function riskBadge(score: number | null): Html {
  const level = riskLevel(score);
  return html`<span class="risk r-${level}">${level === 'unscored' ? 'risk not scored' : `${level} risk · ${score}`}</span>`;
}

function timeLeft(expiresAt: string | null, now: Date): Html {
  if (!expiresAt) return html`<span class="muted">—</span>`;
  const ms = new Date(expiresAt).getTime() - now.getTime();
  const urgent = ms < 3600_000 ? ' urgent' : '';
  return html`<span class="countdown${urgent}" data-expires="${expiresAt}">${ms <= 0 ? 'expired' : `${formatDuration(ms)} left`}</span>`;
}

function who(v: ActionView): Html {
  if (v.agent) return html`agent <b>${v.agent.name}</b>`;
  if (v.requester) return html`reviewer <b>${v.requester}</b> (dashboard)`;
  return html`<span class="muted">unknown</span>`;
}

function target(v: ActionView): Html {
  const charge = typeof v.params['charge'] === 'string' ? v.params['charge'] : null;
  const parts: Html[] = [];
  if (v.row.customer) parts.push(html`customer <code>${v.row.customer}</code>`);
  if (charge) parts.push(html`charge <code>${charge}</code>`);
  if (parts.length === 0) return html`<span class="muted">no customer</span>`;
  return html`${parts.map((p, i) => html`${i ? ' · ' : ''}${p}`)}`;
}

function amountOf(v: ActionView): string {
  return formatMoney(v.row.amount === null ? null : Number(v.row.amount), v.row.currency);
}

function votes(v: ActionView): { approvals: number; required: number } {
  return {
    approvals: v.approvals.filter((a) => a.decision === 'approve').length,
    required: v.row.approvals_required,
  };
}

/** Why a reviewer cannot decide this action, or null when they can. */
export function cannotDecide(v: ActionView, reviewer: Reviewer): string | null {
  if (v.row.status !== 'awaiting_approval') return `Already ${v.row.status.replace('_', ' ')}`;
  if (v.row.requested_by === reviewer.id) return 'You requested this; another reviewer must decide';
  if (!mayDecide(reviewer, v.decision.reviewers ?? [])) return `Needs ${v.decision.reviewers.join(' or ')}`;
  if (v.approvals.some((a) => a.reviewer_id === reviewer.id)) return 'You have voted; waiting for others';
  return null;
}

// --- queue ---------------------------------------------------------------------------------------------------

export function queueRows(views: ActionView[], session: Session, now: Date): Html {
  if (views.length === 0) {
    return html`<tr class="empty"><td colspan="7">Nothing is waiting for review.</td></tr>`;
  }
  return html`${views.map((v) => {
    const blocked = cannotDecide(v, session.reviewer);
    const { approvals, required } = votes(v);
    const rules = v.decision.rules;
    return html`<tr id="row-${v.row.id}" data-id="${v.row.id}">
  <td><a class="what" href="/review/actions/${v.row.id}"><span class="kind">${kindLabel(v.row.kind)}</span>
    <span class="amount">${amountOf(v)}</span></a><div class="sub"><code>${v.row.id}</code></div></td>
  <td>${who(v)}<div class="sub">${target(v)}</div></td>
  <td>${riskBadge(v.decision.risk_score)}</td>
  <td class="why">${rules[0] ?? v.decision.reason}${rules.length > 1 ? html` <span class="muted">+${rules.length - 1} more</span>` : ''}</td>
  <td><span class="muted">${formatDuration(now.getTime() - new Date(v.row.created_at).getTime())} ago</span><br>${timeLeft(v.row.expires_at, now)}</td>
  <td>${approvals} of ${required}</td>
  <td class="decide">${
    blocked
      ? html`<span class="muted">${blocked}</span>`
      : html`<form method="post" action="/review/actions/${v.row.id}/approve" class="inline">
      <input type="hidden" name="_csrf" value="${session.csrf}"><input type="hidden" name="return" value="queue">
      <button type="submit" class="approve">Approve</button></form>
    <form method="post" action="/review/actions/${v.row.id}/reject" class="inline">
      <input type="hidden" name="_csrf" value="${session.csrf}"><input type="hidden" name="return" value="queue">
      <button type="submit" class="reject">Reject</button></form>
    <a class="button" href="/review/actions/${v.row.id}">Review…</a>`
  }</td>
</tr>`;
  })}`;
}

export function queuePage(views: ActionView[], session: Session, now: Date, notice: Notice | null): string {
  return layout(
    'Queue',
    session,
    html`<h1>Waiting for review <span class="count" id="queue-count">${views.length}</span></h1>
<p class="muted">Most urgent first. New holds appear here as they arrive.</p>
<table class="queue">
<thead><tr><th>What</th><th>Who · for whom</th><th>Risk</th><th>Why held</th><th>Waiting · left</th><th>Approvals</th><th></th></tr></thead>
<tbody id="queue-rows">${queueRows(views, session, now)}</tbody>
</table>`,
    { notice, live: true },
  );
}

// --- receipt -------------------------------------------------------------------------------------------------

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

function eventLabel(e: LedgerRow): string {
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

function timeline(events: LedgerRow[]): Html {
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
    <label>Reason <input type="text" name="reason" value="${reason}" placeholder="e.g. requested_by_customer"></label>
    <label>Metadata (one key=value a line) <textarea name="metadata" rows="2"></textarea></label>
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
<div class="grid">
<div>
<section class="panel"><h2>Why it was ${d.outcome === 'review' ? 'held' : d.outcome === 'block' ? 'blocked' : 'allowed'}</h2>
  <p>${d.reason}</p>
  <h3>Matched rules</h3>
  ${d.rules.length ? html`<ul class="rules">${d.rules.map((r) => html`<li><code>${r}</code></li>`)}</ul>` : html`<p class="muted">None: the policy default applied.</p>`}
  <h3>Risk factors</h3>
  ${d.risk_factors.length ? html`<ul class="factors">${d.risk_factors.map((f) => html`<li>${f.name} <b>+${f.points}</b></li>`)}</ul>` : html`<p class="muted">No risk factors recorded.</p>`}
  <p class="muted">Policy <code>${d.policy_version}</code> · approvals ${approvals} of ${required}${d.reviewers?.length ? ` · decided by ${d.reviewers.join(', ')}` : ''}</p>
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

// --- login, errors -------------------------------------------------------------------------------------------

export function loginPage(csrf: string, next: string, notice: Notice | null): string {
  return layout(
    'Log in',
    null,
    html`<section class="panel login"><h1>Reviewer log in</h1>
<form method="post" action="/review/login">
  <input type="hidden" name="_csrf" value="${csrf}">
  <input type="hidden" name="next" value="${next}">
  <label>Email <input type="email" name="email" autocomplete="username" required autofocus></label>
  <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
  <button type="submit" class="approve big">Log in</button>
</form></section>`,
    { notice },
  );
}

export function messagePage(title: string, text: string, session: Session | null): string {
  return layout(title, session, html`<section class="panel"><h1>${title}</h1><p>${text}</p></section>`);
}

// --- all actions ---------------------------------------------------------------------------------------------

export function actionsPage(
  views: ActionView[],
  hasMore: boolean,
  f: ActionFilters,
  query: Record<string, string>,
  session: Session,
  now: Date,
): string {
  const next = views.at(-1);
  const nextQuery = next ? new URLSearchParams({ ...query, starting_after: next.row.id }).toString() : '';
  const opt = (value: string, current: string | undefined) =>
    html`<option value="${value}"${value === (current ?? '') ? ' selected' : ''}>${value || 'any'}</option>`;
  return layout(
    'All actions',
    session,
    html`<h1>All actions</h1>
<form method="get" action="/review/actions" class="filters">
  <label>Status <select name="status">${['', ...STATUSES].map((s) => opt(s, f.status))}</select></label>
  <label>Kind <input type="text" name="kind" value="${f.kind ?? ''}" placeholder="refund.create"></label>
  <label>Agent <input type="text" name="agent" value="${f.agent ?? ''}"></label>
  <label>Min $ <input type="text" name="min_usd" value="${query['min_usd'] ?? ''}" size="6"></label>
  <label>Max $ <input type="text" name="max_usd" value="${query['max_usd'] ?? ''}" size="6"></label>
  <label>From <input type="date" name="from" value="${query['from'] ?? ''}"></label>
  <label>To <input type="date" name="to" value="${query['to'] ?? ''}"></label>
  <label>Search <input type="search" name="q" value="${f.q ?? ''}" placeholder="act_, cus_, ch_…"></label>
  <button type="submit">Filter</button>
</form>
<table class="all">
<thead><tr><th>What</th><th>Status</th><th>Who · for whom</th><th>Risk</th><th>Received</th></tr></thead>
<tbody>${
      views.length
        ? views.map(
            (
              v,
            ) => html`<tr><td><a class="what" href="/review/actions/${v.row.id}"><span class="kind">${kindLabel(v.row.kind)}</span> <span class="amount">${amountOf(v)}</span></a><div class="sub"><code>${v.row.id}</code></div></td>
<td>${statusBadge(v.row.status)}</td><td>${who(v)}<div class="sub">${target(v)}</div></td><td>${riskBadge(v.decision.risk_score)}</td>
<td>${formatTime(v.row.created_at)}<div class="sub">${formatDuration(now.getTime() - new Date(v.row.created_at).getTime())} ago</div></td></tr>`,
          )
        : html`<tr class="empty"><td colspan="5">No actions match.</td></tr>`
    }</tbody></table>
${hasMore ? html`<p><a class="button" id="next-page" href="/review/actions?${nextQuery}">Next page →</a></p>` : ''}`,
  );
}

// --- overview ------------------------------------------------------------------------------------------------

export function overviewPage(stats: DayStats[], session: Session): string {
  const max = Math.max(1, ...stats.map((s) => Math.max(s.held, s.approved, s.rejected, s.expired)));
  const maxUsd = Math.max(1, ...stats.map((s) => s.heldUsd));
  const w = 44;
  const h = 160;
  const series = [
    ['held', '#d97706'],
    ['approved', '#15803d'],
    ['rejected', '#b91c1c'],
    ['expired', '#6b7280'],
  ] as const;
  const bars = stats.map((s, i) =>
    series.map(([key, color], j) => {
      const value = s[key];
      const bh = Math.round((value / max) * h);
      return html`<rect x="${i * w + 4 + j * 9}" y="${h - bh + 10}" width="8" height="${bh}" fill="${color}"><title>${s.day} ${key}: ${value}</title></rect>`;
    }),
  );
  const usdBars = stats.map((s, i) => {
    const bh = Math.round((s.heldUsd / maxUsd) * 80);
    return html`<rect x="${i * w + 8}" y="${90 - bh}" width="28" height="${bh}" fill="#d97706"><title>${s.day}: $${s.heldUsd.toFixed(2)} held</title></rect>`;
  });
  const labels = stats.map(
    (s, i) =>
      html`<text x="${i * w + 22}" y="${h + 26}" text-anchor="middle" font-size="10">${s.day.slice(5)}</text>`,
  );
  const total = stats.reduce(
    (a, s) => ({
      held: a.held + s.held,
      approved: a.approved + s.approved,
      rejected: a.rejected + s.rejected,
      expired: a.expired + s.expired,
      usd: a.usd + s.heldUsd,
    }),
    { held: 0, approved: 0, rejected: 0, expired: 0, usd: 0 },
  );
  return layout(
    'Overview',
    session,
    html`<h1>Last ${stats.length} days</h1>
<p class="totals"><span class="badge s-awaiting_approval">${total.held} held</span> <span class="badge s-completed">${total.approved} approved</span>
<span class="badge s-rejected">${total.rejected} rejected</span> <span class="badge s-expired">${total.expired} expired</span>
· <b>${formatMoney(Math.round(total.usd * 100), 'usd')}</b> held back for review</p>
<section class="panel"><h2>Decisions per day</h2>
<svg class="chart" viewBox="0 0 ${stats.length * w} ${h + 34}" role="img" aria-label="held, approved, rejected and expired per day">${bars}${labels}</svg>
<p class="legend">${series.map(([k, c]) => html`<span><svg width="10" height="10"><rect width="10" height="10" fill="${c}"/></svg> ${k}</span> `)}</p>
</section>
<section class="panel"><h2>Money held back per day (USD)</h2>
<svg class="chart" viewBox="0 0 ${stats.length * w} 110" role="img" aria-label="money held per day">${usdBars}${stats.map(
      (s, i) =>
        html`<text x="${i * w + 22}" y="104" text-anchor="middle" font-size="10">${s.day.slice(5)}</text>`,
    )}</svg></section>`,
  );
}

// --- reviewer-requested refund -------------------------------------------------------------------------------

export function refundPage(session: Session, formKey: string, notice: Notice | null, charge = ''): string {
  return layout(
    'Request a refund',
    session,
    html`<section class="panel narrow"><h1>Request a refund</h1>
<p class="muted">Goes through the same policy as an agent's request. If it is held, another reviewer must approve it.</p>
<form method="post" action="/review/refund" id="refund-form">
  <input type="hidden" name="_csrf" value="${session.csrf}">
  <input type="hidden" name="form_key" value="${formKey}">
  <label>Charge <input type="text" name="charge" value="${charge}" placeholder="ch_…" required></label>
  <label>Amount (leave empty for the full charge) <input type="text" name="amount" inputmode="decimal" placeholder="600.00"></label>
  <label>Reason <select name="reason"><option value="">none</option><option>requested_by_customer</option><option>duplicate</option><option>fraudulent</option></select></label>
  <button type="submit" class="approve big">Request refund</button>
</form></section>`,
    { notice },
  );
}

// --- kill switch (reviewers in the admins group) ---------------------------------------------------------------

/** A dashboard user is an admin when their reviewer account is in the `admins` group. */
export function isAdmin(session: Session): boolean {
  return session.reviewer.groups?.includes(ADMIN_GROUP) ?? false;
}

export interface FreezeRow {
  scope: string;
  agent: string | null;
  reason: string | null;
  created_at: string;
}

export function freezePage(
  session: Session,
  freezes: FreezeRow[],
  agents: string[],
  notice: Notice | null,
): string {
  const rows = freezes.map(
    (
      f,
    ) => html`<tr class="freeze" data-agent="${f.agent ?? ''}"><td>${f.agent ? html`<b>${f.agent}</b>` : html`<b>Every agent</b>`}</td>
<td>${formatTime(f.created_at)}</td><td>${f.reason ?? html`<span class="muted">—</span>`}</td>
<td><form method="post" action="/review/unfreeze" class="inline">
  <input type="hidden" name="_csrf" value="${session.csrf}">
  <input type="hidden" name="agent" value="${f.agent ?? ''}">
  <button type="submit" class="approve unfreeze">Unfreeze</button>
</form></td></tr>`,
  );
  return layout(
    'Kill switch',
    session,
    html`<h1>Kill switch</h1>
<section class="panel"><h2>Frozen now</h2>
<p class="muted">While frozen, every write (refunds, payouts, transfers, any money-out) by the agent is refused, and held actions cannot be approved. Reads keep working.</p>
<table class="freezes">
<thead><tr><th>Who</th><th>Since</th><th>Reason</th><th></th></tr></thead>
<tbody>${rows.length ? rows : html`<tr class="empty"><td colspan="4">Nothing is frozen.</td></tr>`}</tbody>
</table></section>
<section class="panel narrow"><h2>Freeze</h2>
<form method="post" action="/review/freeze" id="freeze-form">
  <input type="hidden" name="_csrf" value="${session.csrf}">
  <label>Agent <select name="agent"><option value="">Every agent</option>${agents.map((a) => html`<option value="${a}">${a}</option>`)}</select></label>
  <label>Reason (shown to agents and reviewers) <input type="text" name="reason" maxlength="500" placeholder="incident 42"></label>
  <button type="submit" class="reject big" id="freeze">Freeze money-out</button>
</form></section>`,
    { notice },
  );
}
