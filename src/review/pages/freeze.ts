import { formatTime, html } from '../html.ts';
import type { Session } from '../store.ts';
import { layout, type Notice } from './layout.ts';

/** One freeze as the kill switch lists it: the whole platform (agent null) or one agent. */
export interface FreezeRow {
  scope: string;
  agent: string | null;
  reason: string | null;
  created_at: string;
}

/** The kill switch: what is frozen now, with an unfreeze button each, and the freeze form. Admins only. */
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
