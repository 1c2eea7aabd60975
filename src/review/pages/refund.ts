import { html } from '../html.ts';
import type { Session } from '../store.ts';
import { layout, type Notice } from './layout.ts';

/** A reviewer asks for a refund; `formKey` makes a repeated post of the same form one request. */
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
