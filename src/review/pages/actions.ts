import { STATUSES } from '../../engine/status.ts';
import { formatDuration, formatTime, html, kindLabel } from '../html.ts';
import type { ActionFilters, ActionView } from '../queries.ts';
import type { Session } from '../store.ts';
import { layout } from './layout.ts';
import { amountOf, riskBadge, statusBadge, target, who } from './parts.ts';

/** Every action, filtered, a page at a time; `query` is the filter as typed, carried into the next page's link. */
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
