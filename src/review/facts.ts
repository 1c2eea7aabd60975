import type { ActionContext, AirlockHistory, RuleLabel } from '../engine/engine.ts';
import type { CustomerStripeHistory } from '../stripe/lookups.ts';
import { formatMoney } from './html.ts';

// The context of a hold in words, one labelled line per fact: the receipt shows them as a list, and every
// notification channel as lines of its summary (Teams turns `Label: value` into facts). Pure: no I/O here.

export interface Fact {
  /** Short enough for a Teams fact title. */
  label: string;
  value: string;
  /** A look-up failed: the line says what could not be loaded and why. */
  failed?: boolean;
}

const DAY = 86_400_000;

/** How long someone has been a customer, in the largest unit that fits. */
export function customerAge(createdMs: number, now: Date): string {
  const days = Math.floor((now.getTime() - createdMs) / DAY);
  if (days < 1) return 'new customer, today';
  if (days < 60) return `customer for ${days} day${days === 1 ? '' : 's'}`;
  const months = Math.floor(days / 30.44);
  if (months < 24) return `customer for ${months} months`;
  return `customer for ${Math.floor(days / 365.25)} years`;
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function sums(byCurrency: Record<string, number>): string {
  return Object.entries(byCurrency)
    .map(([cur, amount]) => formatMoney(amount, cur))
    .join(' + ');
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function airlockHistoryLine(h: AirlockHistory): string {
  if (h.refunds.total === 0 && h.disputes === 0) return 'no earlier refunds or disputes';
  const parts: string[] = [];
  if (h.refunds.total > 0) {
    const how = [
      h.refunds.completed ? `${h.refunds.completed} completed (${sums(h.refunded)})` : null,
      h.refunds.rejected ? `${h.refunds.rejected} rejected` : null,
      h.refunds.blocked ? `${h.refunds.blocked} blocked` : null,
      h.refunds.open ? `${h.refunds.open} open` : null,
    ].filter((p): p is string => p !== null);
    parts.push(`${plural(h.refunds.total, 'earlier refund')}${how.length ? `: ${how.join(', ')}` : ''}`);
  } else parts.push('no earlier refunds');
  parts.push(h.disputes ? plural(h.disputes, 'dispute action') : 'no disputes');
  return `${parts.join(' · ')}${h.truncated ? ' (latest 100 actions)' : ''}`;
}

export function stripeHistoryLine(h: CustomerStripeHistory): string {
  if (h.charges === 0) return 'no charges';
  const of = `${h.truncated ? 'the latest ' : ''}${plural(h.charges, 'charge')}`;
  const refunds = h.refundedCharges
    ? `refunds on ${h.refundedCharges} of ${of} (${sums(h.refunded)})`
    : `no refunds on ${of}`;
  const disputes = h.disputedCharges ? plural(h.disputedCharges, 'disputed charge') : 'no disputes';
  return `${refunds} · ${disputes}`;
}

export function ruleLine(rules: RuleLabel[]): string | null {
  if (rules.length === 0) return null;
  return rules.map((r) => r.name ?? r.text).join('; ');
}

/** The facts of a hold's context, in the order a reviewer asks them: who, the charge, why, and before. */
export function contextFacts(c: ActionContext, now: Date): Fact[] {
  const facts: Fact[] = [];
  if (c.customer) {
    const s = c.customer.stripe;
    if (s.ok) {
      const who = [s.value.name, s.value.email ? (s.value.name ? `<${s.value.email}>` : s.value.email) : null]
        .filter(Boolean)
        .join(' ');
      facts.push({
        label: 'Customer',
        value: `${who || c.customer.id} · ${
          s.value.createdMs
            ? `${customerAge(s.value.createdMs, now)} (since ${day(s.value.createdMs)})`
            : 'age unknown'
        }`,
      });
    } else {
      facts.push({
        label: 'Customer',
        value: `${c.customer.id} · Could not load the customer from Stripe: ${s.error}`,
        failed: true,
      });
    }
  }
  if (c.charge) {
    const f = c.charge.facts;
    if (f.ok) {
      const v = f.value;
      const refunded = v.amountRefunded
        ? `${formatMoney(v.amountRefunded, v.currency)} already refunded`
        : 'nothing refunded yet';
      facts.push({
        label: 'Charge',
        value: `${formatMoney(v.amount, v.currency)} on ${day(v.createdMs)} · ${refunded}${v.disputed ? ' · disputed' : ''}`,
      });
    } else {
      facts.push({
        label: 'Charge',
        value: `Could not load the charge from Stripe: ${f.error}`,
        failed: true,
      });
    }
  }
  const [reason, ...others] = c.reasons;
  facts.push({
    label: 'Stated reason',
    value: reason
      ? `“${reason.text}” (${reason.source})${others.map((o) => `; “${o.text}” (${o.source})`).join('')}`
      : 'none stated',
  });
  if (c.customer) {
    facts.push({ label: 'Before, in Airlock', value: airlockHistoryLine(c.customer.airlock) });
    const h = c.customer.history;
    facts.push(
      h.ok
        ? { label: 'Before, in Stripe', value: stripeHistoryLine(h.value) }
        : {
            label: 'Before, in Stripe',
            value: `Could not load the customer's charges from Stripe: ${h.error}`,
            failed: true,
          },
    );
  }
  return facts;
}
