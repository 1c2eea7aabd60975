// Stripe Events as Stripe sends them: built in the Event object's shape and signed with the official client's
// test signer, so the webhook route is checked against Stripe's own signature scheme.
import Stripe from 'stripe';
import { newId } from '../../src/ids.ts';
import { parseStripeEvent, type StripeEvent } from '../../src/stripe/events.ts';

export const WEBHOOK_SECRET = 'whsec_airlock_test_endpoint_secret';

/** A `refund.created` event; by default made by a request that is not Airlock's. */
export function refundEvent(
  over: {
    amount?: number;
    key?: string | null;
    requestId?: string | null;
    metadata?: Record<string, string>;
    refund?: string;
  } = {},
): StripeEvent {
  return parseStripeEvent({
    id: newId('evt'),
    object: 'event',
    api_version: '2025-01-27.acacia',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    type: 'refund.created',
    data: {
      object: {
        id: over.refund ?? newId('re'),
        object: 'refund',
        amount: over.amount ?? 4200,
        currency: 'usd',
        charge: 'ch_outside',
        status: 'succeeded',
        metadata: over.metadata ?? {},
      },
    },
    request: {
      id: over.requestId === undefined ? newId('req') : over.requestId,
      idempotency_key: over.key ?? null,
    },
  });
}

/** A Stripe-Signature header for `payload`, as Stripe makes it (now, unless a timestamp in seconds is given). */
export function signatureFor(payload: string, opts: { secret?: string; timestamp?: number } = {}): string {
  return Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: opts.secret ?? WEBHOOK_SECRET,
    ...(opts.timestamp !== undefined ? { timestamp: opts.timestamp } : {}),
  });
}

/** POSTs a delivery to Airlock's webhook endpoint; `signature` null sends none. */
export async function deliver(
  airlockUrl: string,
  body: string,
  signature: string | null = signatureFor(body),
  path = '/stripe/webhooks',
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${airlockUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      ...(signature !== null ? { 'stripe-signature': signature } : {}),
    },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
