import type { Classification } from './classify.ts';
import type { StripeUpstream } from './upstream.ts';

/**
 * Fills in the money facts a request leaves to Stripe: a refund is in its charge's currency, and a refund with
 * no amount refunds whatever remains. Read-only, with the upstream key, cached briefly. A failed look-up leaves the
 * fact missing, which makes every comparison on it false, so the policy default (review) holds the money.
 */
export interface FactSource {
  complete(c: Classification, stripeAccount: string | null): Promise<Classification>;
}

type StripeObject = Record<string, unknown>;

export class StripeLookups implements FactSource {
  readonly #cache = new Map<string, { value: Promise<StripeObject | null>; until: number }>();

  constructor(
    readonly upstream: StripeUpstream,
    readonly ttlMs = 5_000,
  ) {}

  async complete(c: Classification, stripeAccount: string | null): Promise<Classification> {
    switch (c.kind) {
      case 'refund.create':
        return this.#refund(c, stripeAccount);
      case 'charge.capture': {
        if (!c.charge) return c;
        const charge = await this.#get('charges', c.charge, stripeAccount);
        if (!charge) return c;
        const remaining = num(charge['amount']) - num(charge['amount_captured']);
        return {
          ...c,
          currency: str(charge['currency']),
          amount: c.amount ?? remaining,
          customer: c.customer ?? str(charge['customer']),
        };
      }
      case 'payment_intent.capture':
      case 'payment_intent.confirm':
      case 'payment_intent.increment_authorization':
      case 'payment_intent.update': {
        const id = c.payment_intent ?? c.objectId;
        if (!id || c.currency) return c;
        const pi = await this.#get('payment_intents', id, stripeAccount);
        if (!pi) return c;
        return {
          ...c,
          currency: str(pi['currency']),
          amount: c.amount ?? (c.kind === 'payment_intent.update' ? null : num(pi['amount'])),
          customer: c.customer ?? str(pi['customer']),
        };
      }
      case 'transfer_reversal.create': {
        if (!c.objectId) return c;
        const tr = await this.#get('transfers', c.objectId, stripeAccount);
        if (!tr) return c;
        return {
          ...c,
          currency: str(tr['currency']),
          amount: c.amount ?? num(tr['amount']) - num(tr['amount_reversed']),
        };
      }
      default:
        return c;
    }
  }

  async #refund(c: Classification, stripeAccount: string | null): Promise<Classification> {
    if (c.currency && c.amount !== null) return c;
    let chargeId = c.charge;
    let customer = c.customer;
    if (!chargeId && c.payment_intent) {
      const pi = await this.#get('payment_intents', c.payment_intent, stripeAccount);
      chargeId = pi ? str(pi['latest_charge']) : null;
      customer = customer ?? (pi ? str(pi['customer']) : null);
    }
    if (!chargeId) return c;
    const charge = await this.#get('charges', chargeId, stripeAccount);
    if (!charge) return c;
    const refundable = num(charge['amount_captured'] ?? charge['amount']) - num(charge['amount_refunded']);
    return {
      ...c,
      charge: chargeId,
      currency: str(charge['currency']),
      amount: c.amount ?? Math.max(0, refundable),
      customer: customer ?? str(charge['customer']),
    };
  }

  /**
   * What a decision on a refund or capture may ask about its charge. null when the look-up failed (or the
   * charge does not exist), which the risk score counts against the request.
   */
  async charge(
    id: string,
    stripeAccount: string | null,
  ): Promise<{ createdMs: number; disputed: boolean; refundable: number; currency: string | null } | null> {
    const charge = await this.#get('charges', id, stripeAccount);
    if (!charge || typeof charge['created'] !== 'number') return null;
    return {
      createdMs: charge['created'] * 1000,
      disputed: charge['disputed'] === true,
      refundable: Math.max(
        0,
        num(charge['amount_captured'] ?? charge['amount']) - num(charge['amount_refunded']),
      ),
      currency: str(charge['currency']),
    };
  }

  /** When the customer was created; null when the look-up failed. */
  async customer(id: string, stripeAccount: string | null): Promise<{ createdMs: number } | null> {
    const customer = await this.#get('customers', id, stripeAccount);
    if (!customer || typeof customer['created'] !== 'number') return null;
    return { createdMs: customer['created'] * 1000 };
  }

  #get(collection: string, id: string, stripeAccount: string | null): Promise<StripeObject | null> {
    if (!/^[A-Za-z0-9_]{1,100}$/.test(id)) return Promise.resolve(null);
    const key = `${stripeAccount ?? ''}|${collection}/${id}`;
    const hit = this.#cache.get(key);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = this.upstream
      .send({ method: 'GET', path: `/v1/${collection}/${id}`, params: {}, stripeAccount })
      .then((res) =>
        res.status === 200 && res.body && typeof res.body === 'object' ? (res.body as StripeObject) : null,
      )
      .catch(() => null);
    if (this.#cache.size > 5_000) this.#cache.clear();
    this.#cache.set(key, { value, until: Date.now() + this.ttlMs });
    return value;
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}
