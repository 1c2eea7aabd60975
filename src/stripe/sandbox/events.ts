import { newId, nowSeconds } from './ids.ts';
import type { Change, StoredEvent, StripeObject } from './store.ts';

/** The API version the sandbox's events are rendered in: the official client's, which the sandbox answers as. */
export const SANDBOX_EVENT_API_VERSION = '2026-10-28.endive';

/** What made a change: a request (its Request-Id and Idempotency-Key) or, with a null id, Stripe's own automation. */
export interface EventRequest {
  id: string | null;
  idempotency_key: string | null;
}

/** An event type and the object it carries, before it gets an id. */
export interface DerivedEvent {
  type: string;
  object: StripeObject;
  previousAttributes?: Record<string, unknown>;
}

type Obj = StripeObject;

/** The top-level fields that differ, with their old values: Stripe's `previous_attributes`. */
export function previousAttributes(before: Obj, after: Obj): Record<string, unknown> {
  const previous: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) previous[key] = before[key] ?? null;
  }
  return previous;
}

const updated = (type: string, before: Obj, after: Obj): DerivedEvent => ({
  type,
  object: after,
  previousAttributes: previousAttributes(before, after),
});

function statusMoved(before: Obj, after: Obj, to: string): boolean {
  return before['status'] !== to && after['status'] === to;
}

// Fields of a charge a caller edits directly; other changes (refunds, captures) have events of their own.
const CHARGE_EDITABLE = [
  'description',
  'metadata',
  'receipt_email',
  'shipping',
  'fraud_details',
  'transfer_group',
];

function chargeEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) {
    const status = after['status'] as string;
    return [
      {
        type: `charge.${status === 'failed' ? 'failed' : status === 'pending' ? 'pending' : 'succeeded'}`,
        object: after,
      },
    ];
  }
  const events: DerivedEvent[] = [];
  const previous = previousAttributes(before, after);
  if (!before['captured'] && after['captured']) events.push(updated('charge.captured', before, after));
  if ((after['amount_refunded'] as number) > (before['amount_refunded'] as number)) {
    events.push(updated('charge.refunded', before, after));
  }
  if (CHARGE_EDITABLE.some((k) => k in previous)) events.push(updated('charge.updated', before, after));
  return events;
}

function refundEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) return [{ type: 'refund.created', object: after }];
  const events = [updated('refund.updated', before, after), updated('charge.refund.updated', before, after)];
  if (statusMoved(before, after, 'failed')) events.push(updated('refund.failed', before, after));
  return events;
}

function payoutEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) return [{ type: 'payout.created', object: after }];
  const events = [updated('payout.updated', before, after)];
  for (const status of ['paid', 'failed', 'canceled']) {
    if (statusMoved(before, after, status)) events.push(updated(`payout.${status}`, before, after));
  }
  if (!before['reversed_by'] && after['reversed_by']) events.push(updated('payout.reversed', before, after));
  return events;
}

function transferEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) return [{ type: 'transfer.created', object: after }];
  if ((after['amount_reversed'] as number) > (before['amount_reversed'] as number)) {
    return [updated('transfer.reversed', before, after)];
  }
  return [updated('transfer.updated', before, after)];
}

function customerEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) return [{ type: 'customer.created', object: after }];
  // A deleted customer is stored as a stub; the event carries the customer as it was, as Stripe's does.
  if (after['deleted'] && !before['deleted']) return [{ type: 'customer.deleted', object: before }];
  return [updated('customer.updated', before, after)];
}

function subscriptionEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) return [{ type: 'customer.subscription.created', object: after }];
  if (statusMoved(before, after, 'canceled'))
    return [updated('customer.subscription.deleted', before, after)];
  return [updated('customer.subscription.updated', before, after)];
}

function invoiceEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  if (!before) return [{ type: 'invoice.created', object: after }];
  if (after['deleted'] && !before['deleted']) return [{ type: 'invoice.deleted', object: before }];
  const events = [updated('invoice.updated', before, after)];
  const moves: [string, string[]][] = [
    ['open', ['invoice.finalized']],
    ['paid', ['invoice.paid', 'invoice.payment_succeeded']],
    ['void', ['invoice.voided']],
    ['uncollectible', ['invoice.marked_uncollectible']],
  ];
  for (const [status, types] of moves) {
    if (statusMoved(before, after, status)) for (const t of types) events.push(updated(t, before, after));
  }
  return events;
}

function paymentIntentEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  const events: DerivedEvent[] = [];
  if (!before) events.push({ type: 'payment_intent.created', object: after });
  const was = before?.['status'];
  const status = after['status'];
  if (was === status) return events;
  const previous = before ? previousAttributes(before, after) : undefined;
  const push = (type: string) =>
    events.push({ type, object: after, ...(previous ? { previousAttributes: previous } : {}) });
  if (status === 'succeeded') push('payment_intent.succeeded');
  else if (status === 'canceled') push('payment_intent.canceled');
  else if (status === 'requires_capture') push('payment_intent.amount_capturable_updated');
  else if (status === 'processing') push('payment_intent.processing');
  else if (status === 'requires_action') push('payment_intent.requires_action');
  else if (status === 'requires_payment_method' && after['last_payment_error'])
    push('payment_intent.payment_failed');
  return events;
}

function disputeEvents(before: Obj | null, after: Obj): DerivedEvent[] {
  // Stripe takes the disputed amount from the balance as the dispute opens, and says so.
  if (!before) {
    return [
      { type: 'charge.dispute.created', object: after },
      { type: 'charge.dispute.funds_withdrawn', object: after },
    ];
  }
  const closed = ['won', 'lost', 'warning_closed'];
  if (!closed.includes(before['status'] as string) && closed.includes(after['status'] as string)) {
    return [updated('charge.dispute.closed', before, after)];
  }
  return [updated('charge.dispute.updated', before, after)];
}

/** Objects with a status whose create, cancel or void Stripe announces, and nothing more in the sandbox. */
function simpleEvents(prefix: string, moves: Record<string, string>) {
  return (before: Obj | null, after: Obj): DerivedEvent[] => {
    if (!before) return [{ type: `${prefix}.created`, object: after }];
    for (const [status, suffix] of Object.entries(moves)) {
      if (statusMoved(before, after, status)) return [updated(`${prefix}.${suffix}`, before, after)];
    }
    return [updated(`${prefix}.updated`, before, after)];
  };
}

type Deriver = (before: Obj | null, after: Obj) => DerivedEvent[];

const DERIVERS: Record<string, Deriver> = {
  charge: chargeEvents,
  refund: refundEvents,
  payout: payoutEvents,
  transfer: transferEvents,
  customer: customerEvents,
  subscription: subscriptionEvents,
  invoice: invoiceEvents,
  payment_intent: paymentIntentEvents,
  dispute: disputeEvents,
  topup: simpleEvents('topup', { canceled: 'canceled', succeeded: 'succeeded', failed: 'failed' }),
  credit_note: simpleEvents('credit_note', { void: 'voided' }),
  'treasury.outbound_payment': simpleEvents('treasury.outbound_payment', { canceled: 'canceled' }),
  'treasury.outbound_transfer': simpleEvents('treasury.outbound_transfer', { canceled: 'canceled' }),
};

/**
 * An application fee refund is announced on the fee (`application_fee.refunded`); the sandbox keeps no fee
 * objects, so the fee is rendered from its refunds.
 */
function feeRefundEvents(
  before: Obj | null,
  after: Obj,
  refundsOfFee: (fee: string) => Obj[],
): DerivedEvent[] {
  if (before) return [updated('application_fee.refund.updated', before, after)];
  const fee = after['fee'] as string;
  const refunds = refundsOfFee(fee);
  const amountRefunded = refunds.reduce((sum, r) => sum + ((r['amount'] as number) ?? 0), 0);
  return [
    {
      type: 'application_fee.refunded',
      object: {
        id: fee,
        object: 'application_fee',
        amount_refunded: amountRefunded,
        currency: after['currency'],
        livemode: false,
        refunded: true,
        refunds: {
          object: 'list',
          data: [...refunds].reverse().slice(0, 10),
          has_more: refunds.length > 10,
          total_count: refunds.length,
          url: `/v1/application_fees/${fee}/refunds`,
        },
      },
    },
  ];
}

/**
 * The events a request's writes make, in the order of the writes. Several writes to one object within a request
 * count as one change, from its first state to its last.
 */
export function deriveEvents(
  changes: Change[],
  refundsOfFee: (fee: string, account: string) => Obj[],
): { account: string; event: DerivedEvent }[] {
  const merged = new Map<string, Change>();
  for (const c of changes) {
    const key = `${c.account}\n${c.id}`;
    const seen = merged.get(key);
    merged.set(key, seen ? { ...seen, after: c.after } : c);
  }
  const out: { account: string; event: DerivedEvent }[] = [];
  for (const c of merged.values()) {
    if (c.before === c.after) continue;
    const after = JSON.parse(c.after) as Obj;
    const before = c.before === null ? null : (JSON.parse(c.before) as Obj);
    const derived =
      after.object === 'fee_refund'
        ? feeRefundEvents(before, after, (fee) => refundsOfFee(fee, c.account))
        : (DERIVERS[after.object]?.(before, after) ?? []);
    for (const event of derived) out.push({ account: c.account, event });
  }
  return out;
}

/** A Stripe Event object, stored as JSON. */
export function renderEvent(
  account: string,
  derived: DerivedEvent,
  request: EventRequest,
  pendingWebhooks: number,
): StoredEvent {
  const created = nowSeconds();
  const id = newId('evt');
  const data: Record<string, unknown> = { object: derived.object };
  if (derived.previousAttributes) data['previous_attributes'] = derived.previousAttributes;
  const event: Record<string, unknown> = {
    id,
    object: 'event',
    ...(account ? { account } : {}),
    api_version: SANDBOX_EVENT_API_VERSION,
    created,
    data,
    livemode: false,
    pending_webhooks: pendingWebhooks,
    request: { id: request.id, idempotency_key: request.idempotency_key },
    type: derived.type,
  };
  return { id, type: derived.type, created, account, pendingWebhooks, json: JSON.stringify(event) };
}
