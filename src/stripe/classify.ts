import { type CurrencyMode, LEGACY, OVERLAY, type Refined, type Semantics } from './overlay.ts';
import { ParamError, type Params, type ParamValue } from './params.ts';
import { GENERATED_ROUTES, type GeneratedRoute } from './routes.generated.ts';

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
  /**
   * The dotted param where this endpoint takes its amount (`amount`, `amount_to_capture`, `amount.value`),
   * whether or not the request names one; null when it takes none. A derived amount is written there.
   */
  amountField: string | null;
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
  /** The official client's method (`refunds.create`); null for a path the client no longer calls. */
  operation: string | null;
  read: boolean;
  /** Fields that may hold the amount, first present wins; dotted for nested (`amount.value`). */
  amount: readonly string[];
  amountRequired: boolean;
  currency: CurrencyMode;
  currencyField: string;
  metadata: boolean;
  irreversible: boolean;
  refine: ((params: Params) => Refined) | null;
  /** Why it is a money write, for the overlay's money writes. */
  money: string | null;
}

// Sub-collections whose objects Stripe names after their parent.
const NESTED_NOUNS: Record<string, string> = {
  'application_fees/refunds': 'application_fee_refund',
  'charges/dispute': 'dispute',
  'credit_notes/lines': 'credit_note_line_item',
  'customers/balance_transactions': 'customer_balance_transaction',
  'customers/cash_balance_transactions': 'customer_cash_balance_transaction',
  'customers/sources': 'customer_source',
  'financial_accounts/features': 'financial_account_features',
  'invoices/lines': 'invoice_line_item',
  'products/features': 'product_feature',
  'transfers/reversals': 'transfer_reversal',
};

// Namespaces prefix the noun of a read: `/v1/treasury/outbound_payments` is `treasury.outbound_payment`.
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

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

// `<noun>.<verb>` from a pattern of the generated table: `POST /v1/refunds/*/cancel` is `refund.cancel`,
// `POST /v1/accounts/*/external_accounts` is `external_account.create`, `POST /v2/core/accounts/*/close` is
// `v2.core.account.close`. A last segment that the client's method is named after is the verb.
function derivedKind(method: string, path: string, operation: string): { kind: string; verb: string } {
  const [version, ...segments] = path.split('/').slice(1);
  const call = snake(operation.slice(operation.lastIndexOf('.') + 1));
  const last = segments.at(-1) ?? '';
  let verb: string;
  if (last !== '*' && (call === last || call.startsWith(`${last}_`))) {
    verb = last;
    segments.pop();
  } else {
    const word = call.split('_')[0];
    if (method === 'DELETE' || word === 'del' || word === 'delete') verb = 'delete';
    else if (word === 'create' || word === 'update') verb = word;
    else verb = last === '*' ? 'update' : 'create';
  }
  const at = segments.at(-1) === '*' ? segments.length - 2 : segments.length - 1;
  const collection = segments[at] ?? '';
  const parent = segments[at - 1] === '*' ? segments[at - 2] : undefined;
  // Literals naming no object (`treasury`, `core`, `vault`) qualify the noun; parents (`accounts/*`) do not.
  const prefix = segments.slice(0, at).filter((s, i) => s !== '*' && segments[i + 1] !== '*');
  const noun =
    (parent !== undefined ? NESTED_NOUNS[`${parent}/${collection}`] : undefined) ?? singular(collection);
  return { kind: [...(version === 'v2' ? ['v2'] : []), ...prefix, noun, verb].join('.'), verb };
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

function compile(row: GeneratedRoute, s: Semantics, operation: string | null): Route {
  const derived = derivedKind(row.method, row.path, row.operation);
  return {
    kind: s.kind ?? derived.kind,
    operation,
    read: s.read ?? false,
    amount: s.amount ?? row.amounts,
    amountRequired: s.amountRequired ?? false,
    currency: s.currency ?? (row.currency ? 'optional' : 'none'),
    currencyField: row.currency ?? 'currency',
    metadata: row.metadata,
    irreversible: s.irreversible ?? derived.verb === 'delete',
    refine: s.refine ?? null,
    money: s.money ?? null,
  };
}

const GENERATED = new Map(GENERATED_ROUTES.map((r) => [`${r.method} ${r.path}`, r]));
for (const [key, row] of GENERATED) addRoute(key, compile(row, OVERLAY[key] ?? {}, row.operation));
for (const [key, { like, ...semantics }] of Object.entries(LEGACY)) {
  const row = GENERATED.get(like);
  if (row) addRoute(key, compile(row, semantics, null));
}

export interface EndpointCoverage {
  /** `POST /v1/refunds`; `*` stands for an id. */
  endpoint: string;
  kind: string;
  /** The client's method, `refunds.create`; null for a legacy path the client no longer calls. */
  operation: string | null;
  /** The kind depends on the parameters (an update that cancels, a dispute update that submits). */
  refined: boolean;
  amountFields: readonly string[];
  currency: CurrencyMode;
  currencyField: string;
  metadata: boolean;
  irreversible: boolean;
  read: boolean;
  /** For a money write: why it is one. */
  money: string | null;
}

/** Every write endpoint Airlock classifies by name, for docs/stripe-coverage.md. */
export function endpointCoverage(): EndpointCoverage[] {
  return [...TABLE.entries()]
    .map(([endpoint, r]) => ({
      endpoint,
      kind: r.kind,
      operation: r.operation,
      refined: r.refine !== null,
      amountFields: r.amount,
      currency: r.currency,
      currencyField: r.currencyField,
      metadata: r.metadata,
      irreversible: r.irreversible,
      read: r.read,
      money: r.money,
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
  const nested = parent !== undefined ? NESTED_NOUNS[`${parent}/${collection}`] : undefined;
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

function readAmount(params: Params, route: Pick<Route, 'amount' | 'amountRequired'>): number | null {
  let amount: number | null = null;
  for (const field of route.amount) {
    const value = lookup(params, field);
    if (value === undefined || value === null) continue;
    const parsed = toAmount(value, field);
    amount ??= parsed;
  }
  if (amount === null && route.amountRequired) {
    const field = route.amount[0] ?? 'amount';
    throw new ParamError('parameter_missing', field, `Missing required param: ${field}.`);
  }
  return amount;
}

function readCurrency(params: Params, route: Pick<Route, 'currency' | 'currencyField'>): string | null {
  const mode = route.currency;
  if (mode === 'none') return null;
  if (mode === 'unless_source' && (own(params, 'charge') || own(params, 'payment_intent'))) return null;
  const field = route.currencyField;
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
 * is malformed. GETs are reads (`<noun>.read`); a write the pinned client does not know is `stripe.write`.
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
    amountField: null,
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
    // An endpoint newer than the table: `amount`, or on v2 an `amount` object, as Stripe's habit is.
    const value = lookup(params, 'amount');
    const object =
      segments[0] === 'v2' && value !== null && typeof value === 'object' && !Array.isArray(value);
    const field = object ? 'amount.value' : 'amount';
    result.objectId = lastIdOf(shape);
    result.amount = readAmount(params, { amount: [field], amountRequired: false });
    result.amountField = result.amount === null ? null : field;
    result.currency = readCurrency(params, {
      currency: 'optional',
      currencyField: object ? 'amount.currency' : 'currency',
    });
    return result;
  }
  const refined = route.refine?.(params);
  result.kind = refined?.kind ?? route.kind;
  result.read = route.read;
  result.irreversible = refined?.irreversible ?? route.irreversible;
  result.acceptsMetadata = route.metadata;
  result.objectId = ids.at(-1) ?? null;
  result.amount = readAmount(params, route);
  result.amountField = route.amount[0] ?? null;
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
    amountField: null,
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
