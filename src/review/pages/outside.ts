import type { StripeEventRow } from '../../store/store.ts';
import { stripeDashboardUrl } from '../../stripe/events.ts';
import { formatMoney, formatTime, html } from '../html.ts';
import type { Session } from '../store.ts';
import { layout } from './layout.ts';

const SOURCES: Record<string, string> = {
  automation: "Stripe's automation",
  outside: 'outside Airlock (raw key, Dashboard or script)',
};

/**
 * Outside Airlock: money events Stripe reported that Airlock did not make, newest first, each with its source and
 * a link to the object in the Stripe Dashboard. `older` is the link to the next page, when there is one.
 */
export function outsidePage(session: Session, events: StripeEventRow[], older: string | null): string {
  const rows = events.map((e) => {
    const link = stripeDashboardUrl(e.object_id, e.livemode === 1);
    return html`<tr class="outside-event" data-event="${e.id}">
<td>${formatTime(new Date(e.created * 1000).toISOString())}</td>
<td><code>${e.type}</code></td>
<td class="amount">${e.amount === null ? html`<span class="muted">—</span>` : formatMoney(e.amount, e.currency)}</td>
<td>${SOURCES[e.origin] ?? e.origin}${e.expected ? html` <span class="muted">(expected)</span>` : ''}</td>
<td>${e.object_id ? (link ? html`<a href="${link}" rel="noreferrer">${e.object_id}</a>` : html`<code>${e.object_id}</code>`) : html`<span class="muted">—</span>`}</td>
</tr>`;
  });
  return layout(
    'Outside Airlock',
    session,
    html`<h1>Outside Airlock</h1>
<section class="panel"><p class="muted">Money that moved without passing through Airlock, as Stripe reported it: refunds, payouts, transfers and other money events made with a raw key, from the Stripe Dashboard, by a script, or by Stripe's own automation. Each is in the ledger and counts in the velocity windows; the policy's <code>outside_airlock.expected</code> kinds are not alerted.</p>
<table class="outside">
<thead><tr><th>When</th><th>Event</th><th>Amount</th><th>Source</th><th>Stripe object</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr class="empty"><td colspan="5">Nothing has moved outside Airlock.</td></tr>`}</tbody>
</table>
${older ? html`<p><a href="${older}" id="older">Older</a></p>` : ''}</section>`,
  );
}
