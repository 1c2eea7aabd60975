import { ParamError, type Params, type ParamValue } from './params.ts';

export { ParamError } from './params.ts';

export interface StripeRequest {
  method: string;
  /** Without the query string, e.g. `/v1/refunds`. */
  path: string;
  params: Params;
}

export interface Classification {
  kind: string;
  read: boolean;
  /** Integer minor units; null when the request names none (a full refund, a confirm). */
  amount: number | null;
  /** Lower-case ISO code; null when the request names none (a refund takes its charge's). */
  currency: string | null;
  customer: string | null;
  charge: string | null;
  payment_intent: string | null;
  destination: string | null;
  /** The most specific id in the path: `sub_1` for `DELETE /v1/subscriptions/sub_1`. */
  objectId: string | null;
  /** Whether Stripe takes `metadata` on this endpoint, where Airlock tags `metadata[airlock_action]`. */
  acceptsMetadata: boolean;
  /** No API call undoes it: money sent out, an object deleted, voided or finalized, evidence submitted. */
  irreversible: boolean;
}

interface Route {
  kind: string;
  /** A POST without side effects, such as a preview. */
  read?: boolean;
  /** Fields that may hold the amount, first present wins; dotted for nested (`amount.value`). */
  amount?: readonly string[];
  amountRequired?: boolean;
  /** `none`: the endpoint takes no currency (it comes from the charge or invoice). */
  currency?: 'none' | 'optional' | 'required' | 'unless_source';
  currencyField?: string;
  metadata: boolean;
  irreversible?: boolean;
  /** For endpoints whose effect depends on a parameter (an update that cancels, an update that submits). */
  refine?: (params: Params) => { kind: string; irreversible: boolean };
}

const money = { amount: ['amount'], amountRequired: true, currency: 'required' } as const;

/** A parameter Stripe reads as true: anything but absent, empty or false, so doubt classifies as the riskier kind. */
function flagged(value: ParamValue | undefined): boolean {
  return value !== undefined && value !== null && value !== '' && value !== false && value !== 'false';
}

const ROUTES: Record<string, Route> = {
  'POST /v1/refunds': {
    kind: 'refund.create',
    amount: ['amount'],
    // Refunds of a charge are in the charge's currency; only customer-balance refunds name one.
    currency: 'unless_source',
    metadata: true,
    irreversible: true,
  },
  'POST /v1/refunds/*': { kind: 'refund.update', metadata: true },
  'POST /v1/refunds/*/cancel': { kind: 'refund.cancel', metadata: false },

  'POST /v1/payouts': { kind: 'payout.create', ...money, metadata: true, irreversible: true },
  'POST /v1/payouts/*': { kind: 'payout.update', metadata: true },
  'POST /v1/payouts/*/cancel': { kind: 'payout.cancel', metadata: false },
  'POST /v1/payouts/*/reverse': { kind: 'payout.reverse', metadata: true, irreversible: true },

  'POST /v1/transfers': { kind: 'transfer.create', amount: ['amount'], currency: 'required', metadata: true },
  'POST /v1/transfers/*': { kind: 'transfer.update', metadata: true },
  'POST /v1/transfers/*/reversals': {
    kind: 'transfer_reversal.create',
    amount: ['amount'],
    metadata: true,
    irreversible: true,
  },
  'POST /v1/transfers/*/reversals/*': { kind: 'transfer_reversal.update', metadata: true },

  'POST /v1/application_fees/*/refunds': {
    kind: 'application_fee_refund.create',
    amount: ['amount'],
    metadata: true,
    irreversible: true,
  },
  'POST /v1/application_fees/*/refunds/*': { kind: 'application_fee_refund.update', metadata: true },

  'POST /v1/charges': { kind: 'charge.create', amount: ['amount'], currency: 'optional', metadata: true },
  'POST /v1/charges/*': { kind: 'charge.update', metadata: true },
  'POST /v1/charges/*/capture': { kind: 'charge.capture', amount: ['amount'], metadata: false },
  'POST /v1/charges/*/refunds': {
    kind: 'refund.create',
    amount: ['amount'],
    metadata: true,
    irreversible: true,
  },
  // The legacy singular form, still served by Stripe.
  'POST /v1/charges/*/refund': {
    kind: 'refund.create',
    amount: ['amount'],
    metadata: true,
    irreversible: true,
  },
  'POST /v1/charges/*/refunds/*': { kind: 'refund.update', metadata: true },
  'POST /v1/charges/*/dispute': { kind: 'dispute.update', metadata: true, refine: disputeUpdate },
  'POST /v1/charges/*/dispute/close': { kind: 'dispute.close', metadata: false, irreversible: true },

  'POST /v1/payment_intents': { kind: 'payment_intent.create', ...money, metadata: true },
  'POST /v1/payment_intents/*': {
    kind: 'payment_intent.update',
    amount: ['amount'],
    currency: 'optional',
    metadata: true,
  },
  'POST /v1/payment_intents/*/confirm': { kind: 'payment_intent.confirm', metadata: false },
  'POST /v1/payment_intents/*/capture': {
    kind: 'payment_intent.capture',
    amount: ['amount_to_capture'],
    metadata: true,
  },
  'POST /v1/payment_intents/*/increment_authorization': {
    kind: 'payment_intent.increment_authorization',
    amount: ['amount'],
    amountRequired: true,
    metadata: true,
  },
  'POST /v1/payment_intents/*/cancel': { kind: 'payment_intent.cancel', metadata: false, irreversible: true },
  'POST /v1/payment_intents/*/apply_customer_balance': {
    kind: 'payment_intent.apply_customer_balance',
    amount: ['amount'],
    currency: 'optional',
    metadata: false,
  },
  'POST /v1/payment_intents/*/verify_microdeposits': {
    kind: 'payment_intent.verify_microdeposits',
    metadata: false,
  },

  'POST /v1/subscriptions/*': { kind: 'subscription.update', metadata: true, refine: subscriptionUpdate },
  'DELETE /v1/subscriptions/*': { kind: 'subscription.cancel', metadata: false, irreversible: true },
  'POST /v1/subscriptions/*/pause': { kind: 'subscription.pause', metadata: false },
  'POST /v1/subscriptions/*/resume': { kind: 'subscription.resume', metadata: false },
  'POST /v1/subscriptions/*/migrate': { kind: 'subscription.migrate', metadata: false },
  'DELETE /v1/subscriptions/*/discount': { kind: 'discount.delete', metadata: false, irreversible: true },

  'POST /v1/invoices': { kind: 'invoice.create', currency: 'optional', metadata: true },
  'POST /v1/invoices/create_preview': { kind: 'invoice.preview', read: true, metadata: false },
  'POST /v1/invoices/*': { kind: 'invoice.update', metadata: true },
  'DELETE /v1/invoices/*': { kind: 'invoice.delete', metadata: false, irreversible: true },
  'POST /v1/invoices/*/pay': { kind: 'invoice.pay', metadata: false },
  'POST /v1/invoices/*/void': { kind: 'invoice.void', metadata: false, irreversible: true },
  'POST /v1/invoices/*/mark_uncollectible': { kind: 'invoice.mark_uncollectible', metadata: false },
  // A finalized invoice cannot return to draft.
  'POST /v1/invoices/*/finalize': { kind: 'invoice.finalize', metadata: false, irreversible: true },
  'POST /v1/invoices/*/send': { kind: 'invoice.send', metadata: false },
  'POST /v1/invoices/*/add_lines': { kind: 'invoice.add_lines', metadata: false },
  'POST /v1/invoices/*/update_lines': { kind: 'invoice.update_lines', metadata: false },
  'POST /v1/invoices/*/remove_lines': { kind: 'invoice.remove_lines', metadata: false },
  'POST /v1/invoices/*/lines/*': { kind: 'invoice_line_item.update', metadata: true },

  'POST /v1/credit_notes': {
    kind: 'credit_note.create',
    amount: ['amount', 'refund_amount'],
    metadata: true,
    refine: creditNoteCreate,
  },
  'POST /v1/credit_notes/*': { kind: 'credit_note.update', metadata: true },
  'POST /v1/credit_notes/*/void': { kind: 'credit_note.void', metadata: false, irreversible: true },

  'DELETE /v1/customers/*': { kind: 'customer.delete', metadata: false, irreversible: true },
  'POST /v1/customers/*/balance_transactions': {
    kind: 'customer_balance_transaction.create',
    ...money,
    metadata: true,
  },
  'POST /v1/customers/*/balance_transactions/*': {
    kind: 'customer_balance_transaction.update',
    metadata: true,
  },
  'DELETE /v1/customers/*/discount': { kind: 'discount.delete', metadata: false, irreversible: true },

  // `submit=true` makes an update final: Stripe sends the evidence to the bank and it can no longer change.
  'POST /v1/disputes/*': { kind: 'dispute.update', metadata: true, refine: disputeUpdate },
  // Closing concedes the dispute.
  'POST /v1/disputes/*/close': { kind: 'dispute.close', metadata: false, irreversible: true },

  'POST /v1/topups': { kind: 'topup.create', ...money, metadata: true },
  'POST /v1/topups/*': { kind: 'topup.update', metadata: true },
  'POST /v1/topups/*/cancel': { kind: 'topup.cancel', metadata: false },

  'POST /v1/treasury/outbound_payments': {
    kind: 'treasury.outbound_payment.create',
    ...money,
    metadata: true,
    irreversible: true,
  },
  'POST /v1/treasury/outbound_payments/*/cancel': {
    kind: 'treasury.outbound_payment.cancel',
    metadata: false,
  },
  'POST /v1/treasury/outbound_transfers': {
    kind: 'treasury.outbound_transfer.create',
    ...money,
    metadata: true,
  },
  'POST /v1/treasury/outbound_transfers/*/cancel': {
    kind: 'treasury.outbound_transfer.cancel',
    metadata: false,
  },

  'POST /v1/quotes/*/accept': { kind: 'quote.accept', metadata: false },
  'POST /v1/quotes/*/cancel': { kind: 'quote.cancel', metadata: false },
  'POST /v1/quotes/*/finalize': { kind: 'quote.finalize', metadata: false },
  'POST /v1/setup_intents/*/confirm': { kind: 'setup_intent.confirm', metadata: false },
  'POST /v1/setup_intents/*/cancel': { kind: 'setup_intent.cancel', metadata: false, irreversible: true },
  'POST /v1/payment_methods/*/attach': { kind: 'payment_method.attach', metadata: false },
  'POST /v1/payment_methods/*/detach': { kind: 'payment_method.detach', metadata: false },
  'POST /v1/checkout/sessions/*/expire': {
    kind: 'checkout.session.expire',
    metadata: false,
    irreversible: true,
  },
  'POST /v1/subscription_schedules/*/cancel': { kind: 'subscription_schedule.cancel', metadata: false },
  'POST /v1/subscription_schedules/*/release': { kind: 'subscription_schedule.release', metadata: false },

  'POST /v2/money_management/outbound_payments': {
    kind: 'v2.money_management.outbound_payment.create',
    amount: ['amount.value'],
    amountRequired: true,
    currency: 'required',
    currencyField: 'amount.currency',
    metadata: true,
    irreversible: true,
  },
};

/**
 * Plain resources whose create, update and delete map to `<noun>.create|update|delete`.
 * `c`/`u` = create/update exists, `+` = it accepts metadata, `d` = delete exists
 * (from the official client's generated spec).
 */
const RESOURCES: Record<string, string> = {
  accounts: 'c+ u+ d',
  account_links: 'c',
  account_sessions: 'c',
  'billing_portal/configurations': 'c+ u+',
  'billing_portal/sessions': 'c',
  'checkout/sessions': 'c+ u+',
  coupons: 'c+ u+ d',
  customer_sessions: 'c',
  customers: 'c+ u+',
  ephemeral_keys: 'c d',
  file_links: 'c+ u+',
  invoiceitems: 'c+ u+ d',
  'issuing/cardholders': 'c+ u+',
  'issuing/cards': 'c+ u+',
  payment_links: 'c+ u+',
  payment_method_configurations: 'c u',
  payment_method_domains: 'c u',
  payment_methods: 'c+ u+',
  plans: 'c+ u+ d',
  prices: 'c+ u+',
  products: 'c+ u+ d',
  promotion_codes: 'c+ u+',
  quotes: 'c+ u+',
  'radar/value_list_items': 'c d',
  'radar/value_lists': 'c+ u+ d',
  setup_intents: 'c+ u+',
  shipping_rates: 'c+ u+',
  subscription_items: 'c+ u+ d',
  subscription_schedules: 'c+ u+',
  subscriptions: 'c+',
  tax_ids: 'c d',
  tax_rates: 'c+ u+',
  'terminal/locations': 'c+ u+ d',
  'terminal/readers': 'c+ u+ d',
  'treasury/financial_accounts': 'c+ u+',
  'treasury/inbound_transfers': 'c+',
  webhook_endpoints: 'c+ u+ d',
};

function subscriptionUpdate(params: Params): { kind: string; irreversible: boolean } {
  const cancelAt = params['cancel_at'];
  const cancels =
    flagged(params['cancel_at_period_end']) ||
    (cancelAt !== undefined && cancelAt !== null && cancelAt !== '');
  // Scheduled cancellation can still be undone before it takes effect.
  return { kind: cancels ? 'subscription.cancel' : 'subscription.update', irreversible: false };
}

function disputeUpdate(params: Params): { kind: string; irreversible: boolean } {
  return flagged(params['submit'])
    ? { kind: 'dispute.submit', irreversible: true }
    : { kind: 'dispute.update', irreversible: false };
}

function creditNoteCreate(params: Params): { kind: string; irreversible: boolean } {
  const refundAmount = params['refund_amount'];
  // A credit note that refunds money cannot take the refund back when voided.
  const refunds =
    (flagged(refundAmount) && refundAmount !== '0' && refundAmount !== 0) || own(params, 'refunds');
  return { kind: 'credit_note.create', irreversible: refunds };
}

// Namespaces prefix the noun: `/v1/treasury/outbound_payments` is `treasury.outbound_payment`.
const NAMESPACES = new Set([
  'apple_pay',
  'apps',
  'billing',
  'billing_portal',
  'checkout',
  'climate',
  'entitlements',
  'financial_connections',
  'forwarding',
  'identity',
  'issuing',
  'product_catalog',
  'radar',
  'reporting',
  'sigma',
  'tax',
  'terminal',
  'test_helpers',
  'three_d_secure',
  'treasury',
]);

// Sub-collections whose objects Stripe names after their parent.
const NESTED_NOUNS: Record<string, string> = {
  'application_fees/refunds': 'application_fee_refund',
  'charges/dispute': 'dispute',
  'credit_notes/lines': 'credit_note_line_item',
  'customers/balance_transactions': 'customer_balance_transaction',
  'customers/cash_balance_transactions': 'customer_cash_balance_transaction',
  'invoices/lines': 'invoice_line_item',
  'transfers/reversals': 'transfer_reversal',
};

// Words that sit where an id would but name an operation.
const NOT_IDS = new Set(['search', 'upcoming', 'history', 'create_preview']);

const UNCHANGED_NOUNS = new Set(['settings', 'balance_settings']);

/** `refunds` → `refund`, `capabilities` → `capability`, `balance` stays. */
function singular(noun: string): string {
  if (UNCHANGED_NOUNS.has(noun)) return noun;
  if (noun.endsWith('ies')) return noun.slice(0, -3) + 'y';
  if (/(ss|x|ch|sh)es$/.test(noun)) return noun.slice(0, -2);
  if (noun.endsWith('s') && !noun.endsWith('ss') && !noun.endsWith('us')) return noun.slice(0, -1);
  return noun;
}

function nounOf(collectionPath: string): string {
  const parts = collectionPath.split('/');
  const last = parts.pop() ?? '';
  return [...parts, singular(last)].join('.');
}

// --- the route table, compiled once into a trie keyed by method then path segment ---

interface Node {
  literal: Map<string, Node>;
  param: Node | null;
  route: Route | null;
}

const newNode = (): Node => ({ literal: new Map(), param: null, route: null });
const TRIE = new Map<string, Node>();
const TABLE = new Map<string, Route>();

function addRoute(key: string, route: Route): void {
  TABLE.set(key, route);
  const [method = '', path = ''] = key.split(' ');
  let node = TRIE.get(method);
  if (!node) {
    node = newNode();
    TRIE.set(method, node);
  }
  for (const segment of path.split('/').slice(1)) {
    if (segment === '*') {
      node = node.param ??= newNode();
    } else {
      let next = node.literal.get(segment);
      if (!next) {
        next = newNode();
        node.literal.set(segment, next);
      }
      node = next;
    }
  }
  node.route = route;
}

for (const [collection, ops] of Object.entries(RESOURCES)) {
  const noun = nounOf(collection);
  const flags = ops.split(' ');
  const generic = { amount: ['amount'], currency: 'optional' } as const;
  for (const flag of flags) {
    const metadata = flag.endsWith('+');
    if (flag.startsWith('c'))
      addRoute(`POST /v1/${collection}`, { kind: `${noun}.create`, ...generic, metadata });
    if (flag.startsWith('u'))
      addRoute(`POST /v1/${collection}/*`, { kind: `${noun}.update`, ...generic, metadata });
    if (flag === 'd')
      addRoute(`DELETE /v1/${collection}/*`, { kind: `${noun}.delete`, metadata, irreversible: true });
  }
}
// Specific routes last, so they replace a generic entry for the same path.
for (const [key, route] of Object.entries(ROUTES)) addRoute(key, route);

export interface EndpointCoverage {
  /** `POST /v1/refunds`; `*` stands for an id. */
  endpoint: string;
  kind: string;
  /** The kind depends on the parameters (an update that cancels, a dispute update that submits). */
  refined: boolean;
  amountFields: readonly string[];
  currency: NonNullable<Route['currency']> | 'none';
  metadata: boolean;
  irreversible: boolean;
  read: boolean;
}

/** Every write endpoint Airlock classifies by name, for docs/stripe-coverage.md. */
export function endpointCoverage(): EndpointCoverage[] {
  return [...TABLE.entries()]
    .map(([endpoint, r]) => ({
      endpoint,
      kind: r.kind,
      refined: r.refine !== undefined,
      amountFields: r.amount ?? [],
      currency: r.currency ?? 'none',
      metadata: r.metadata,
      irreversible: r.irreversible ?? false,
      read: r.read ?? false,
    }))
    .sort(
      (a, b) =>
        a.endpoint.split(' ')[1]!.localeCompare(b.endpoint.split(' ')[1]!) ||
        a.endpoint.localeCompare(b.endpoint),
    );
}

function match(node: Node, segments: readonly string[], i: number, ids: string[]): Route | null {
  if (i === segments.length) return node.route;
  const segment = segments[i]!;
  const literal = node.literal.get(segment);
  if (literal) {
    const found = match(literal, segments, i + 1, ids);
    if (found) return found;
  }
  if (node.param) {
    ids.push(segment);
    const found = match(node.param, segments, i + 1, ids);
    if (found) return found;
    ids.pop();
  }
  return null;
}

// --- paths ---

const SEGMENT = /^[A-Za-z0-9_.-]+$/;
const MAX_PATH_LENGTH = 512;
const MAX_SEGMENT_LENGTH = 255;

/** A path Airlock will forward: `/v1/...` or `/v2/...`, plain segments only (no dot-only segments, no `%`). */
export function isValidStripePath(path: string): boolean {
  if (typeof path !== 'string' || path.length > MAX_PATH_LENGTH || path.includes('..')) return false;
  const segments = path.split('/');
  if (segments[0] !== '' || (segments[1] !== 'v1' && segments[1] !== 'v2') || segments.length < 3)
    return false;
  for (let i = 2; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.length > MAX_SEGMENT_LENGTH || !SEGMENT.test(segment) || /^\.+$/.test(segment)) return false;
  }
  return true;
}

interface PathShape {
  /** `treasury`, or `v2.core`: what prefixes the noun. */
  prefix: string[];
  /** Segments after the prefix: collections at even positions, ids at odd ones. */
  rest: string[];
}

function shapeOf(segments: readonly string[]): PathShape {
  // segments[0] is the version.
  if (segments[0] === 'v2') {
    const hasNamespace = segments.length > 2;
    return {
      prefix: hasNamespace ? ['v2', segments[1]!] : ['v2'],
      rest: segments.slice(hasNamespace ? 2 : 1),
    };
  }
  let i = 1;
  while (i < segments.length - 1 && NAMESPACES.has(segments[i]!)) i++;
  return { prefix: segments.slice(1, i), rest: segments.slice(i) };
}

function readKind({ prefix, rest }: PathShape): string {
  const last = rest.length - 1 - ((rest.length - 1) % 2);
  const collection = rest[last];
  if (collection === undefined) return prefix.length ? `${prefix.join('.')}.read` : 'stripe.read';
  const parent = last >= 2 ? rest[last - 2] : undefined;
  const nested =
    parent !== undefined && prefix.length === 0 ? NESTED_NOUNS[`${parent}/${collection}`] : undefined;
  return [...prefix, nested ?? singular(collection)].join('.') + '.read';
}

function lastIdOf({ rest }: PathShape): string | null {
  for (let i = rest.length - 1 - (rest.length % 2); i >= 1; i -= 2) {
    const segment = rest[i]!;
    if (!NOT_IDS.has(segment)) return segment;
  }
  return null;
}

const PATH_FACTS: Record<string, 'charge' | 'customer' | 'payment_intent'> = {
  charges: 'charge',
  customers: 'customer',
  payment_intents: 'payment_intent',
};

// --- parameters ---

function own(params: Params, key: string): boolean {
  return Object.hasOwn(params, key) && params[key] !== undefined && params[key] !== null;
}

function lookup(params: Params, dotted: string): ParamValue | undefined {
  let value: ParamValue | undefined = params;
  for (const key of dotted.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, key)) {
      return undefined;
    }
    value = value[key];
  }
  return value;
}

function stringParam(params: Params, dotted: string): string | null {
  const value = lookup(params, dotted);
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Integer minor units: digits only (form) or a safe non-negative integer (JSON). */
function toAmount(value: ParamValue, param: string): number {
  let amount: number | null = null;
  if (typeof value === 'string' && /^\d+$/.test(value)) amount = Number(value);
  else if (typeof value === 'number') amount = value;
  if (amount === null || !Number.isSafeInteger(amount) || amount < 0) {
    throw new ParamError('parameter_invalid_integer', param, `Invalid integer: ${describe(value)}`);
  }
  return amount === 0 ? 0 : amount; // no -0
}

function describe(value: ParamValue): string {
  if (typeof value === 'string') return value.length > 40 ? `${value.slice(0, 40)}…` : value;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

function readAmount(params: Params, route: Route): number | null {
  let amount: number | null = null;
  for (const field of route.amount ?? []) {
    const value = lookup(params, field);
    if (value === undefined || value === null) continue;
    const parsed = toAmount(value, field);
    amount ??= parsed;
  }
  if (amount === null && route.amountRequired) {
    const field = route.amount?.[0] ?? 'amount';
    throw new ParamError('parameter_missing', field, `Missing required param: ${field}.`);
  }
  return amount;
}

function readCurrency(params: Params, route: Route): string | null {
  const mode = route.currency ?? 'none';
  if (mode === 'none') return null;
  if (mode === 'unless_source' && (own(params, 'charge') || own(params, 'payment_intent'))) return null;
  const field = route.currencyField ?? 'currency';
  const value = lookup(params, field);
  if (value === undefined || value === null) {
    if (mode === 'required')
      throw new ParamError('parameter_missing', field, `Missing required param: ${field}.`);
    return null;
  }
  if (typeof value !== 'string' || !/^[A-Za-z]{3}$/.test(value)) {
    throw new ParamError('parameter_invalid', field, `Invalid currency: ${describe(value)}`);
  }
  return value.toLowerCase();
}

function destinationOf(params: Params): string | null {
  // Transfers and payouts name it directly; legacy charges as `destination[account]`; PaymentIntents and
  // charges as `transfer_data[destination]`, which moves the funds to a connected account.
  return (
    stringParam(params, 'destination') ??
    stringParam(params, 'destination.account') ??
    stringParam(params, 'transfer_data.destination')
  );
}

// --- classify ---

/**
 * What a Stripe request does and the money it names. Pure; throws ParamError when an amount or currency
 * is malformed. GETs are reads (`<noun>.read`); a write not in the table is `stripe.write`.
 */
export function classify(req: StripeRequest): Classification {
  const method = req.method.toUpperCase();
  const params = req.params;
  const facts = {
    customer: stringParam(params, 'customer'),
    charge: stringParam(params, 'charge'),
    payment_intent: stringParam(params, 'payment_intent'),
    destination: destinationOf(params),
  };
  const result: Classification = {
    kind: method === 'GET' ? 'stripe.read' : 'stripe.write',
    read: method === 'GET',
    amount: null,
    currency: null,
    ...facts,
    objectId: null,
    acceptsMetadata: false,
    irreversible: false,
  };
  if (!isValidStripePath(req.path)) return result;

  const segments = req.path.split('/').slice(1);
  const shape = shapeOf(segments);
  // `/v1/charges/ch_1/...` is about that charge, whatever the params say.
  const owner = segments[0] === 'v1' && shape.prefix.length === 0 ? PATH_FACTS[shape.rest[0]!] : undefined;
  const ownerId = shape.rest[1];
  if (owner && ownerId !== undefined && !NOT_IDS.has(ownerId)) result[owner] = ownerId;

  if (method === 'GET') {
    result.kind = readKind(shape);
    result.objectId = lastIdOf(shape);
    return result;
  }

  const ids: string[] = [];
  const root = TRIE.get(method);
  const route = root ? match(root, segments, 0, ids) : null;
  if (!route) {
    result.objectId = lastIdOf(shape);
    result.amount = readAmount(params, { kind: 'stripe.write', amount: ['amount'], metadata: false });
    result.currency = readCurrency(params, { kind: 'stripe.write', currency: 'optional', metadata: false });
    return result;
  }
  const refined = route.refine?.(params);
  result.kind = refined?.kind ?? route.kind;
  result.read = route.read ?? false;
  result.irreversible = refined?.irreversible ?? route.irreversible ?? false;
  result.acceptsMetadata = route.metadata;
  result.objectId = ids.at(-1) ?? null;
  result.amount = readAmount(params, route);
  result.currency = readCurrency(params, route);
  return result;
}

/** The facts of an action that is not a Stripe call (a decision intent, a generic HTTP call): only what the caller said. */
export function statedFacts(
  kind: string,
  amount: number | null,
  currency: string | null,
  more: Partial<Pick<Classification, 'customer' | 'charge'>> = {},
): Classification {
  return {
    kind,
    read: false,
    amount,
    currency,
    customer: more.customer ?? null,
    charge: more.charge ?? null,
    payment_intent: null,
    destination: null,
    objectId: null,
    acceptsMetadata: false,
    irreversible: false,
  };
}
