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
    const value = lookupGet(this.upstream, path, query, scope)
      .then((res) =>
        res.status === 200 && res.body && typeof res.body === 'object' ? (res.body as StripeObject) : null,
      )
      .catch(() => null);
    memo?.set(key, value);
    return value;
  }
}

/** A look-up: a GET with the upstream key, on the account in scope, at the Stripe version look-ups are read at. */
function lookupGet(
  upstream: Pick<StripeUpstream, 'send'>,
  path: string,
  query: string,
  scope: AccountScope,
  timeoutMs?: number,
) {
  return upstream.send({
    method: 'GET',
    path,
    params: {},
    rawQuery: query,
    stripeAccount: scope.stripeAccount,
    stripeContext: scope.stripeContext,
    stripeVersion: LOOKUP_STRIPE_VERSION,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

// --- Context for reviewers -------------------------------------------------------------------------------------------

/** A look-up's answer, or in words why there is none ("Stripe answered 500: …", "no answer within 1500 ms"). */
export type Fetched<T> = { ok: true; value: T } | { ok: false; error: string };

/** The charge a refund is about, as a reviewer reads it. */
export interface ChargeFacts {
  id: string;
  amount: number;
  currency: string | null;
  createdMs: number;
  amountRefunded: number;
  disputed: boolean;
  customer: string | null;
}

export interface CustomerFacts {
  id: string;
  name: string | null;
  email: string | null;
  createdMs: number;
}

/** What Stripe knows of a customer's past: over their latest charges, at most CONTEXT_HISTORY_CHARGES of them. */
export interface CustomerStripeHistory {
  charges: number;
  /** Charges with any refund, and the sums refunded, per currency. */
  refundedCharges: number;
  refunded: Record<string, number>;
  disputedCharges: number;
  /** More charges exist than were read. */
  truncated: boolean;
}

export const CONTEXT_HISTORY_CHARGES = 100;

export interface ContextLookupOptions {
  /** How long an answer is reused; default 60 s. */
  ttlMs?: number;
  /** How many answers are kept; the oldest go first. Default 500. */
  maxEntries?: number;
  /** How long one look-up may take; default 2 s. */
  timeoutMs?: number;
  now?: () => number;
}

/**
 * Read-only look-ups for what a reviewer sees beside a hold: the charge, the customer and their history at Stripe.
 * Unlike the money facts above (fresh per decision), these are for people and cached briefly, so a busy queue, a
 * receipt reloaded and four notification channels cost one call each. Every call is a GET with the upstream key,
 * straight to `StripeUpstream.send`: never an action, never dispatched, never in the ledger. A failure is an answer
 * (`ok: false`) and is not cached.
 */
export class ContextLookups {
  readonly #cache = new Map<string, { at: number; value: Promise<Fetched<StripeObject>> }>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(
    readonly upstream: Pick<StripeUpstream, 'send'>,
    opts: ContextLookupOptions = {},
  ) {
    this.#ttlMs = opts.ttlMs ?? 60_000;
    this.#max = Math.max(1, opts.maxEntries ?? 500);
    this.#timeoutMs = opts.timeoutMs ?? 2_000;
    this.#now = opts.now ?? Date.now;
  }

  /** The number of answers held now (for tests of the bound). */
  get size(): number {
    return this.#cache.size;
  }

  async charge(id: string, scope: AccountScope, timeoutMs?: number): Promise<Fetched<ChargeFacts>> {
    const got = await this.#object('charges', id, scope, timeoutMs);
    if (!got.ok) return got;
    const c = got.value;
    return {
      ok: true,
      value: {
        id,
        amount: num(c['amount']),
        currency: str(c['currency']),
        createdMs: num(c['created']) * 1000,
        amountRefunded: num(c['amount_refunded']),
        disputed: c['disputed'] === true,
        customer: str(c['customer']),
      },
    };
  }

  /** The charge a payment intent settled with, for a refund that names the intent. */
  async latestCharge(
    paymentIntent: string,
    scope: AccountScope,
    timeoutMs?: number,
  ): Promise<Fetched<string>> {
    const got = await this.#object('payment_intents', paymentIntent, scope, timeoutMs);
    if (!got.ok) return got;
    const charge = str(got.value['latest_charge']);
    return charge
      ? { ok: true, value: charge }
      : { ok: false, error: `payment intent ${paymentIntent} has no charge` };
  }

  async customer(id: string, scope: AccountScope, timeoutMs?: number): Promise<Fetched<CustomerFacts>> {
    const got = await this.#object('customers', id, scope, timeoutMs);
    if (!got.ok) return got;
    const c = got.value;
    if (c['deleted'] === true) return { ok: false, error: `customer ${id} was deleted` };
    return {
      ok: true,
      value: { id, name: str(c['name']), email: str(c['email']), createdMs: num(c['created']) * 1000 },
    };
  }

  /** Refunds and disputes over the customer's latest charges (one list call, bounded). */
  async customerHistory(
    id: string,
    scope: AccountScope,
    timeoutMs?: number,
  ): Promise<Fetched<CustomerStripeHistory>> {
    if (!ID.test(id)) return { ok: false, error: `'${id}' is not a Stripe id` };
    const got = await this.#fetch(
      '/v1/charges',
      `customer=${encodeURIComponent(id)}&limit=${CONTEXT_HISTORY_CHARGES}`,
      scope,
      timeoutMs,
    );
    if (!got.ok) return got;
    const data = Array.isArray(got.value['data']) ? (got.value['data'] as StripeObject[]) : [];
    const history: CustomerStripeHistory = {
      charges: data.length,
      refundedCharges: 0,
      refunded: {},
      disputedCharges: 0,
      truncated: got.value['has_more'] === true,
    };
    for (const c of data) {
      const refunded = num(c['amount_refunded']);
      if (refunded > 0) {
        history.refundedCharges++;
        const cur = str(c['currency']) ?? 'usd';
        history.refunded[cur] = (history.refunded[cur] ?? 0) + refunded;
      }
      if (c['disputed'] === true) history.disputedCharges++;
    }
    return { ok: true, value: history };
  }

  #object(
    collection: string,
    id: string,
    scope: AccountScope,
    timeoutMs?: number,
  ): Promise<Fetched<StripeObject>> {
    if (!ID.test(id)) return Promise.resolve({ ok: false, error: `'${id}' is not a Stripe id` });
    return this.#fetch(`/v1/${collection}/${id}`, '', scope, timeoutMs);
  }

  #fetch(
    path: string,
    query: string,
    scope: AccountScope,
    timeoutMs?: number,
  ): Promise<Fetched<StripeObject>> {
    const key = `${scope.stripeAccount ?? ''}|${scope.stripeContext ?? ''}|${path}?${query}`;
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit && now - hit.at < this.#ttlMs) return hit.value;
    if (hit) this.#cache.delete(key);
    const limit = Math.min(timeoutMs ?? this.#timeoutMs, this.#timeoutMs);
    const value = this.#send(path, query, scope, limit);
    this.#cache.set(key, { at: now, value });
    while (this.#cache.size > this.#max) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    // Only answers are kept: a failure is asked again next time.
    void value.then((v) => {
      if (!v.ok && this.#cache.get(key)?.value === value) this.#cache.delete(key);
    });
    return value;
  }

  async #send(
    path: string,
    query: string,
    scope: AccountScope,
    timeoutMs: number,
  ): Promise<Fetched<StripeObject>> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Fetched<StripeObject>>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${timeoutMs} ms` }), timeoutMs);
    });
    const call = lookupGet(this.upstream, path, query, scope, timeoutMs)
      .then((res): Fetched<StripeObject> => {
        if (res.status === 200 && res.body && typeof res.body === 'object')
          return { ok: true, value: res.body as StripeObject };
        const err = (res.body as { error?: { message?: unknown } } | null)?.error;
        const message = typeof err?.message === 'string' ? `: ${err.message.slice(0, 200)}` : '';
        return { ok: false, error: `Stripe answered ${res.status}${message}` };
      })
      .catch(
        (err: unknown): Fetched<StripeObject> => ({
          ok: false,
          error: `Stripe could not be reached (${(err instanceof Error ? err.message : String(err)).slice(0, 200)})`,
        }),
      );
    try {
      return await Promise.race([call, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const ID = /^[A-Za-z0-9_]{1,100}$/;
