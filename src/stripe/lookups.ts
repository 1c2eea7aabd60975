import type { Classification } from './classify.ts';
import type { StripeUpstream } from './upstream.ts';

/**
 * The API version every look-up pins, so the fields read below mean what this code assumes whatever the account's
 * default version is. test/stripe/lookups.test.ts checks it against the pinned `stripe` client's.
 */
export const LOOKUP_STRIPE_VERSION = '2026-10-28.endive';

/** Whose objects a call reads and writes: the headers exactly as the caller sent them. */
export interface AccountScope {
  stripeAccount: string | null;
  stripeContext: string | null;
}

export const PLATFORM: AccountScope = { stripeAccount: null, stripeContext: null };

/**
 * One request's look-ups: each object is read once per decision, fresh from Stripe. Money facts (what remains
 * refundable, what is captured) change between calls, so no look-up outlives the request that made it.
 */
export type LookupMemo = Map<string, Promise<StripeObject | null>>;

/** How a derived amount was found, for the receipt. */
export interface Valuation {
  /** The amount the action is valued at, in minor units. */
  amount: number;
  currency: string | null;
  /** `charge ch_1: captured 60000 − refunded 0` */
  basis: string;
  /**
   * The parameter that makes the amount explicit, where Stripe takes it with the meaning "move exactly this"; null
   * when the call cannot carry it (a confirm moves the intent's amount), so it is checked again before dispatch.
   */
  field: string | null;
}

/**
 * Fills in the money facts a request leaves to Stripe: a refund is in its charge's currency, and a refund with
 * no amount refunds whatever remains. Read-only, with the upstream key. A failed look-up leaves the fact
 * missing, which makes every comparison on it false, so the policy default (review) holds the money.
 */
export interface FactSource {
  complete(
    c: Classification,
    scope: AccountScope,
    memo?: LookupMemo,
  ): Promise<Classification & { valuation?: Valuation }>;
}

export type StripeObject = Record<string, unknown>;

const REFUND_COUNTED = new Set(['pending', 'requires_action', 'succeeded']);

/** A request that leaves its amount to Stripe, valued at what Stripe would take: the amount written in, and how. */
function valuedAt(c: Classification, valuation: Valuation): Classification & { valuation: Valuation } {
  return { ...c, amount: valuation.amount, valuation };
}

export class StripeLookups implements FactSource {
  constructor(readonly upstream: StripeUpstream) {}

  async complete(
    c: Classification,
    scope: AccountScope,
    memo: LookupMemo = new Map(),
  ): Promise<Classification & { valuation?: Valuation }> {
    switch (c.kind) {
      case 'refund.create':
        return this.#refund(c, scope, memo);
      case 'charge.capture': {
        if (!c.charge) return c;
        const charge = await this.#get('charges', c.charge, scope, memo);
        if (!charge) return c;
        // An uncaptured charge captures its full authorisation when no amount is given.
        const remaining = Math.max(0, num(charge['amount']) - num(charge['amount_captured']));
        const currency = str(charge['currency']);
        const completed = { ...c, currency, customer: c.customer ?? str(charge['customer']) };
        if (c.amount !== null) return completed;
        return valuedAt(completed, {
          amount: remaining,
          currency,
          field: 'amount',
          basis: `charge ${c.charge}: authorised ${num(charge['amount'])} − captured ${num(charge['amount_captured'])}`,
        });
      }
      case 'payment_intent.capture':
      case 'payment_intent.confirm':
      case 'payment_intent.increment_authorization':
      case 'payment_intent.update': {
        const id = c.payment_intent ?? c.objectId;
        if (!id || (c.currency && c.amount !== null)) return c;
        const pi = await this.#get('payment_intents', id, scope, memo);
        if (!pi) return c;
        const derive = c.amount === null && c.kind !== 'payment_intent.update';
        // A capture with no amount captures what is capturable; a confirm moves the intent's amount.
        const value =
          c.kind === 'payment_intent.capture'
            ? num(pi['amount_capturable']) || num(pi['amount'])
            : num(pi['amount']);
        const currency = c.currency ?? str(pi['currency']);
        const completed = { ...c, currency, customer: c.customer ?? str(pi['customer']) };
        if (!derive) return completed;
        return valuedAt(completed, {
          amount: value,
          currency,
          field: c.kind === 'payment_intent.capture' ? 'amount_to_capture' : null,
          basis: `payment intent ${id}: ${c.kind === 'payment_intent.capture' ? 'amount_capturable' : 'amount'} ${value}`,
        });
      }
      case 'transfer_reversal.create': {
        if (!c.objectId) return c;
        const tr = await this.#get('transfers', c.objectId, scope, memo);
        if (!tr) return c;
        const remaining = Math.max(0, num(tr['amount']) - num(tr['amount_reversed']));
        const currency = str(tr['currency']);
        const completed = { ...c, currency };
        if (c.amount !== null) return completed;
        return valuedAt(completed, {
          amount: remaining,
          currency,
          field: 'amount',
          basis: `transfer ${c.objectId}: amount ${num(tr['amount'])} − reversed ${num(tr['amount_reversed'])}`,
        });
      }
      case 'invoice.pay': {
        // Paying an invoice charges what remains on it, which the request cannot state.
        if (!c.objectId || c.amount !== null) return c;
        const invoice = await this.#get('invoices', c.objectId, scope, memo);
        if (!invoice) return c;
        const remaining = num(invoice['amount_remaining']);
        const currency = str(invoice['currency']);
        return valuedAt(
          { ...c, currency, customer: c.customer ?? str(invoice['customer']) },
          {
            amount: remaining,
            currency,
            field: null,
            basis: `invoice ${c.objectId}: amount_remaining ${remaining}`,
          },
        );
      }
      default:
        return c;
    }
  }

  async #refund(
    c: Classification,
    scope: AccountScope,
    memo: LookupMemo,
  ): Promise<Classification & { valuation?: Valuation }> {
    if (c.currency && c.amount !== null) return c;
    let chargeId = c.charge;
    let customer = c.customer;
    if (!chargeId && c.payment_intent) {
      const pi = await this.#get('payment_intents', c.payment_intent, scope, memo);
      chargeId = pi ? str(pi['latest_charge']) : null;
      customer = customer ?? (pi ? str(pi['customer']) : null);
    }
    if (!chargeId) return c;
    const charge = await this.#get('charges', chargeId, scope, memo);
    if (!charge) return c;
    const currency = str(charge['currency']);
    const base = { ...c, charge: chargeId, currency, customer: customer ?? str(charge['customer']) };
    if (c.amount !== null) return base;
    const refundable = await this.refundable(chargeId, scope, memo);
    if (refundable === null) return base;
    return valuedAt(base, { amount: refundable.amount, currency, field: 'amount', basis: refundable.basis });
  }

  /**
   * What a refund with no amount would return: the captured amount less the refunds already made. Counted from the
   * refunds themselves, not from `amount_refunded`, whose meaning for a partly captured charge is not the same
   * across API versions (some count the released, uncaptured part as refunded).
   */
  async refundable(
    chargeId: string,
    scope: AccountScope,
    memo: LookupMemo = new Map(),
  ): Promise<{ amount: number; basis: string } | null> {
    const charge = await this.#get('charges', chargeId, scope, memo);
    if (!charge) return null;
    // An uncaptured charge's refund releases the whole authorisation: valued at it, the larger figure.
    const captured =
      charge['captured'] === false
        ? num(charge['amount'])
        : num(charge['amount_captured'] ?? charge['amount']);
    let refunded = 0;
    let after: string | null = null;
    for (let page = 0; ; page++) {
      if (page === 20) return null; // too many refunds to count: leave the amount unknown, so it is held
      const query = `charge=${encodeURIComponent(chargeId)}&limit=100${after ? `&starting_after=${encodeURIComponent(after)}` : ''}`;
      const list = await this.#send('/v1/refunds', scope, query, memo);
      if (!list || !Array.isArray(list['data'])) return null;
      const data = list['data'] as StripeObject[];
      for (const r of data) if (REFUND_COUNTED.has(String(r['status']))) refunded += num(r['amount']);
      const last = str(data.at(-1)?.['id']);
      if (list['has_more'] !== true || !last) break;
      after = last;
    }
    return {
      amount: Math.max(0, captured - refunded),
      basis: `charge ${chargeId}: captured ${captured} − refunded ${refunded}`,
    };
  }

  /**
   * What a decision on a refund or capture may ask about its charge. null when the look-up failed (or the
   * charge does not exist), which the risk score counts against the request.
   */
  async charge(
    id: string,
    scope: AccountScope,
    memo: LookupMemo = new Map(),
    opts: { refundable?: boolean } = {},
  ): Promise<{
    createdMs: number;
    disputed: boolean;
    refundable: number | null;
    currency: string | null;
  } | null> {
    const charge = await this.#get('charges', id, scope, memo);
    if (!charge || typeof charge['created'] !== 'number') return null;
    // Counting refunds costs a list call: only when the policy asks for it.
    const refundable = opts.refundable ? await this.refundable(id, scope, memo) : null;
    return {
      createdMs: charge['created'] * 1000,
      disputed: charge['disputed'] === true,
      refundable: refundable?.amount ?? null,
      currency: str(charge['currency']),
    };
  }

  /** When the customer was created, and how to reach them; null when the look-up failed. */
  async customer(
    id: string,
    scope: AccountScope,
    memo: LookupMemo = new Map(),
  ): Promise<{ createdMs: number; email: string | null; name: string | null } | null> {
    const customer = await this.#get('customers', id, scope, memo);
    if (!customer || typeof customer['created'] !== 'number') return null;
    return {
      createdMs: customer['created'] * 1000,
      email: str(customer['email']),
      name: str(customer['name']),
    };
  }

  #get(collection: string, id: string, scope: AccountScope, memo: LookupMemo): Promise<StripeObject | null> {
    if (!/^[A-Za-z0-9_]{1,100}$/.test(id)) return Promise.resolve(null);
    return this.#send(`/v1/${collection}/${id}`, scope, '', memo);
  }

  #send(path: string, scope: AccountScope, query: string, memo?: LookupMemo): Promise<StripeObject | null> {
    const key = `${path}?${query}`;
    const hit = memo?.get(key);
    if (hit) return hit;
    const value = this.upstream
      .send({
        method: 'GET',
        path,
        params: {},
        rawQuery: query,
        stripeAccount: scope.stripeAccount,
        stripeContext: scope.stripeContext,
        stripeVersion: LOOKUP_STRIPE_VERSION,
      })
      .then((res) =>
        res.status === 200 && res.body && typeof res.body === 'object' ? (res.body as StripeObject) : null,
      )
      .catch(() => null);
    memo?.set(key, value);
    return value;
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}
