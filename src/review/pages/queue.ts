import { formatDuration, type Html, html, kindLabel } from '../html.ts';
import type { ActionView } from '../queries.ts';
import type { Session } from '../store.ts';
import { layout, type Notice } from './layout.ts';
import { amountOf, cannotDecide, riskBadge, target, timeLeft, votes, who } from './parts.ts';

/** The queue's rows alone: the page's table body, and the fragment live.js fetches when something changes. */
export function queueRows(views: ActionView[], session: Session, now: Date): Html {
  if (views.length === 0) {
    return html`<tr class="empty"><td colspan="7">Nothing is waiting for review.</td></tr>`;
  }
  return html`${views.map((v) => {
    const blocked = cannotDecide(v, session.reviewer);
    const { approvals, required } = votes(v);
    const rules = v.decision.rules;
    return html`<tr id="row-${v.row.id}" data-id="${v.row.id}">
  <td class="what-cell"><a class="what" href="/review/actions/${v.row.id}"><span class="kind">${kindLabel(v.row.kind)}</span>
    <span class="amount">${amountOf(v)}</span></a><div class="sub"><code>${v.row.id}</code></div></td>
  <td class="who-cell">${who(v)}<div class="sub">${target(v)}</div></td>
  <td class="risk-cell">${riskBadge(v.decision.risk_score)}</td>
  <td class="why" data-label="Why held">${rules[0] ?? v.decision.reason}${rules.length > 1 ? html` <span class="muted">+${rules.length - 1} more</span>` : ''}</td>
  <td class="when"><span class="muted">${formatDuration(now.getTime() - new Date(v.row.created_at).getTime())} ago</span><br>${timeLeft(v.row.expires_at, now)}</td>
  <td class="votes" data-label="Approvals">${approvals} of ${required}</td>
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
