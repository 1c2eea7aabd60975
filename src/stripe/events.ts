// Stripe Events as Airlock reads them: the envelope, and the money facts of the events in MONEY_EVENTS. Pure: the
// webhook route and the backfill hand in parsed JSON, the engine decides what it means (src/engine/stripe-events.ts).
import Stripe from 'stripe';
import { z } from 'zod';
import { isMoneyEvent, MONEY_EVENTS, type MoneyEventType } from './overlay.ts';

/** Stripe's Event object, as much of it as Airlock relies on; everything else is kept as sent. */
const EventEnvelope = z.object({
  id: z.string().regex(/^evt_[A-Za-z0-9_]{1,250}$/),
  type: z.string().min(1).max(200),
  created: z.number().int().nonnegative(),
  livemode: z.boolean().optional(),
  data: z
    .object({ object: z.record(z.string(), z.unknown()), previous_attributes: z.unknown().optional() })
    .optional(),
  // Events of old API versions carry the request id as a bare string.
  request: z
    .union([
      z.object({ id: z.string().nullable().optional(), idempotency_key: z.string().nullable().optional() }),
      z.string(),
      z.null(),
    ])
    .optional(),
  // v2 ("thin") events name their object and say why they happened instead.
  related_object: z.object({ id: z.string(), type: z.string().optional() }).nullable().optional(),
  reason: z
    .object({
      request: z
        .object({ id: z.string().nullable().optional(), idempotency_key: z.string().nullable().optional() })
        .optional(),
    })
    .nullable()
    .optional(),
});

export type StripeEvent = z.infer<typeof EventEnvelope> & Record<string, unknown>;

export class EventRefused extends Error {
  constructor(
    readonly code:
      | 'stripe_signature_missing'
      | 'stripe_signature_invalid'
      | 'stripe_signature_stale'
      | 'stripe_event_malformed',
    message: string,
  ) {
    super(message);
    this.name = 'EventRefused';
  }
}

/** Stripe's default tolerance: a signature older (or newer) than this is refused, so a captured event cannot be replayed later. */
export const SIGNATURE_TOLERANCE_S = 300;

/**
 * Verifies `Stripe-Signature` over the body's exact bytes with the official client's verifier, then reads the
 * envelope. Throws EventRefused naming what was wrong: nothing about a refused event is trusted.
 */
export function verifyStripeEvent(
  raw: string,
  header: string | undefined,
  secret: string,
  nowMs: number,
): StripeEvent {
  if (!header) throw new EventRefused('stripe_signature_missing', 'No Stripe-Signature header');
  try {
    Stripe.webhooks.constructEvent(
      raw,
      header,
      secret,
      SIGNATURE_TOLERANCE_S,
      undefined,
      nowMs, // milliseconds
    );
  } catch (err) {
    // A signed body that is not JSON: the signature held, the content did not.
    if (err instanceof SyntaxError) throw new EventRefused('stripe_event_malformed', 'The body is not JSON');
    const message = err instanceof Error ? err.message : String(err);
    if (/tolerance/i.test(message))
      throw new EventRefused(
        'stripe_signature_stale',
        `The Stripe-Signature timestamp is more than ${SIGNATURE_TOLERANCE_S} s from now`,
      );
    throw new EventRefused(
      'stripe_signature_invalid',
      'The Stripe-Signature does not match the body and the endpoint secret',
    );
  }
  // Stripe's verifier lets a timestamp from the future through; one further ahead than the tolerance is refused too,
  // so a signature can never be held back and replayed later.
  const t = signatureTime(header);
  if (t === null || t * 1000 - nowMs > SIGNATURE_TOLERANCE_S * 1000)
    throw new EventRefused(
      'stripe_signature_stale',
      `The Stripe-Signature timestamp is more than ${SIGNATURE_TOLERANCE_S} s from now`,
    );
  return parseStripeEvent(JSON.parse(raw));
}

/** The `t=` of a Stripe-Signature header, Unix seconds; null when it has none. */
export function signatureTime(header: string): number | null {
  const t = /(?:^|,)\s*t=(\d+)/.exec(header)?.[1];
  return t === undefined ? null : Number(t);
}

/** Reads an Event object (from a verified webhook or the list endpoint); throws EventRefused when it is not one. */
export function parseStripeEvent(value: unknown): StripeEvent {
  const parsed = EventEnvelope.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new EventRefused(
      'stripe_event_malformed',
      `Not a Stripe Event: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
    );
  }
  return value as StripeEvent;
}

/** Who caused an event: Stripe's own automation (no request), or a request with this key. */
export interface EventRequest {
  id: string | null;
  idempotencyKey: string | null;
}

export function eventRequest(e: StripeEvent): EventRequest {
  const r = e.reason?.request ?? e.request;
  if (typeof r === 'string') return { id: r, idempotencyKey: null };
  return { id: r?.id ?? null, idempotencyKey: r?.idempotency_key ?? null };
}

/** What a money event moved, read from its object alone (no look-up). */
export interface MoneyFacts {
  type: MoneyEventType;
  /** The action kind that would have made it through Airlock. */
  kind: string;
  objectId: string | null;
  amount: number | null;
  currency: string | null;
  customer: string | null;
  charge: string | null;
  /** metadata[airlock_action] on the object, if any. */
  metadataAction: string | null;
}

export function moneyFacts(e: StripeEvent): MoneyFacts | null {
  if (!isMoneyEvent(e.type)) return null;
  const o = e.data?.object ?? {};
  const prev = (e.data?.previous_attributes ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);
  // An id or an expanded object.
  const ref = (v: unknown) =>
    str(v) ?? (typeof v === 'object' && v !== null ? str((v as Record<string, unknown>)['id']) : null);
  const metadata = o['metadata'];
  const metadataAction =
    typeof metadata === 'object' && metadata !== null
      ? str((metadata as Record<string, unknown>)['airlock_action'])
      : null;
  let amount: number | null;
  switch (e.type) {
    case 'charge.captured':
      amount = num(o['amount_captured']) ?? num(o['amount']);
      break;
    case 'transfer.reversed':
    case 'application_fee.refunded': {
      // The object's running total, less what it was before this event.
      const field = e.type === 'transfer.reversed' ? 'amount_reversed' : 'amount_refunded';
      const now = num(o[field]);
      const before = num(prev[field]);
      amount = now !== null && before !== null ? now - before : now;
      break;
    }
    case 'customer.subscription.deleted':
    case 'customer.deleted':
      amount = null;
      break;
    default:
      amount = num(o['amount']);
  }
  const v2Amount = o['amount'];
  const currency =
    str(o['currency'])?.toLowerCase() ??
    (typeof v2Amount === 'object' && v2Amount !== null
      ? (str((v2Amount as Record<string, unknown>)['currency'])?.toLowerCase() ?? null)
      : null);
  if (amount === null && typeof v2Amount === 'object' && v2Amount !== null)
    amount = num((v2Amount as Record<string, unknown>)['value']);
  return {
    type: e.type,
    kind: MONEY_EVENTS[e.type],
    objectId: str(o['id']) ?? e.related_object?.id ?? null,
    amount,
    currency,
    customer: e.type === 'customer.deleted' ? str(o['id']) : ref(o['customer']),
    charge: e.type === 'charge.captured' ? str(o['id']) : ref(o['charge']),
    metadataAction,
  };
}

/** Events that report a refund or payout failing after it was made, and the statuses that mean it did. */
const LATER_FAILURES: Record<string, { prefix: string; statuses: readonly string[] }> = {
  'refund.updated': { prefix: 're_', statuses: ['failed', 'canceled'] },
  'refund.failed': { prefix: 're_', statuses: ['failed', 'canceled'] },
  'charge.refund.updated': { prefix: 're_', statuses: ['failed', 'canceled'] },
  'payout.failed': { prefix: 'po_', statuses: ['failed', 'canceled'] },
  'payout.canceled': { prefix: 'po_', statuses: ['failed', 'canceled'] },
  'payout.updated': { prefix: 'po_', statuses: ['failed', 'canceled'] },
};

export interface LaterFailure {
  objectId: string;
  status: string;
  reason: string | null;
  metadataAction: string | null;
}

/** A refund or payout Stripe now reports failed or cancelled, or null. */
export function laterFailure(e: StripeEvent): LaterFailure | null {
  const rule = LATER_FAILURES[e.type];
  const o = e.data?.object;
  if (!rule || !o) return null;
  const id = o['id'];
  const status = o['status'];
  if (typeof id !== 'string' || !id.startsWith(rule.prefix)) return null;
  if (typeof status !== 'string' || !rule.statuses.includes(status)) return null;
  const reason = o['failure_reason'] ?? o['failure_code'] ?? o['failure_message'];
  const metadata = o['metadata'];
  const tagged =
    typeof metadata === 'object' && metadata !== null
      ? (metadata as Record<string, unknown>)['airlock_action']
      : null;
  return {
    objectId: id,
    status,
    reason: typeof reason === 'string' ? reason : null,
    metadataAction: typeof tagged === 'string' ? tagged : null,
  };
}

/** The action id in an Idempotency-Key Airlock sends (`airlock-act_…`, src/engine/dispatcher.ts), or null. */
export function airlockKeyAction(key: string | null): string | null {
  const m = key ? /^airlock-(act_[A-Za-z0-9]{1,64})$/.exec(key) : null;
  return m?.[1] ?? null;
}

/** Where the Stripe Dashboard shows an object, by its id's prefix. */
const DASHBOARD_PATHS: Record<string, string> = {
  re: 'refunds',
  pyr: 'refunds',
  po: 'payouts',
  tr: 'connect/transfers',
  trr: 'connect/transfers',
  ch: 'payments',
  py: 'payments',
  sub: 'subscriptions',
  cus: 'customers',
  fee: 'connect/application_fees',
  fr: 'connect/application_fees',
};

export function stripeDashboardUrl(objectId: string | null, livemode: boolean): string | null {
  if (!objectId) return null;
  const path = DASHBOARD_PATHS[objectId.split('_')[0] ?? ''];
  return path ? `https://dashboard.stripe.com/${livemode ? '' : 'test/'}${path}/${objectId}` : null;
}
