import { sha256Hex } from '../ids.ts';
import type { ActionRow } from '../store/store.ts';
import { type Classification, classify } from '../stripe/classify.ts';
import {
  type BoundRequest,
  bindRequest,
  encodingFor,
  parseBound,
  withTag,
  withValue,
} from '../stripe/encoding.ts';
import type { Valuation } from '../stripe/lookups.ts';
import { canonicalJson, ParamError, type Params } from '../stripe/params.ts';

/** A classification with the facts Stripe holds filled in, and how a derived amount was found. */
export type Completed = Classification & { valuation?: Valuation };

/** The amount Airlock derived for an action, as stored and as the receipt shows it: the look-up's valuation. */
export type Derived = Valuation;

/** The facts a policy reads from the parameters themselves; they must survive encoding unchanged. */
const PARAM_FACTS = [
  'kind',
  'read',
  'customer',
  'charge',
  'payment_intent',
  'destination',
  'objectId',
] as const;

/**
 * The one encoding of a Stripe call: the caller's parameters, an amount Airlock derived written in explicitly (so
 * Stripe cannot move more than was valued: a full refund becomes a refund of the amount decided), and the action's
 * tag. The bytes are parsed back and classified again; if they would mean anything else, the call is refused.
 */
export function bindUpstream(
  req: { method: string; path: string; params: Params },
  c: Completed,
  actionId: string,
): { request: BoundRequest; derived: Derived | null } {
  let params = req.params;
  let derived: Derived | null = null;
  const v = c.valuation;
  // Only where the look-up says the endpoint takes the amount as "move exactly this" is it written in.
  const field = v?.field ?? null;
  if (v) {
    if (field) {
      params = withValue(
        params,
        field,
        encodingFor(req.method, req.path) === 'json' ? v.amount : String(v.amount),
      );
    }
    derived = { amount: v.amount, currency: v.currency, field, basis: v.basis };
  }
  if (c.acceptsMetadata && !c.read) params = withTag(params, actionId);
  const request = bindRequest(req.method, req.path, params);
  const sent = classify({ method: req.method, path: req.path, params: request.params });
  // Against what the parameters as given say, not a classification handed in with them.
  const stated = classify({ method: req.method, path: req.path, params: req.params });
  const expectedAmount = v && field ? v.amount : stated.amount;
  const same =
    PARAM_FACTS.every((k) => sent[k] === stated[k]) &&
    sent.amount === expectedAmount &&
    sent.currency === stated.currency;
  if (!same) {
    throw new ParamError(
      'parameter_invalid',
      '',
      'The request cannot be encoded so that Stripe reads what Airlock decided on; send it as the official client does.',
    );
  }
  return { request, derived };
}

/** Hash of the canonical request as the caller sent it: what a repeated Idempotency-Key must match. */
export function requestHash(
  method: string,
  path: string,
  params: Params,
  stripeAccount: string | null,
  stripeContext: string | null = null,
): string {
  const context = stripeContext === null ? {} : { stripe_context: stripeContext };
  return sha256Hex(canonicalJson({ method, path, params, stripe_account: stripeAccount, ...context }));
}

/** Hash of the exact bytes sent upstream and the headers that say whose account they act on: what approvals bind to. */
export function boundRequestHash(
  action: Pick<ActionRow, 'method' | 'path' | 'stripe_account' | 'stripe_context' | 'body' | 'derived'>,
): string {
  return sha256Hex(
    canonicalJson({
      method: action.method,
      path: action.path,
      stripe_account: action.stripe_account,
      stripe_context: action.stripe_context,
      body: action.body,
      // A value derived but not written into the bytes (an endpoint without an amount) is part of what was approved.
      ...(action.derived ? { derived: action.derived } : {}),
    }),
  );
}

/** What one approval is given to: this request under this policy version. */
export function boundHash(action: Pick<ActionRow, 'request_hash' | 'policy_version'>): string {
  return sha256Hex(`${action.request_hash}\n${action.policy_version}`);
}

/** Whether the row still holds the request its decision and approvals were made for, in every column dispatch reads. */
export function sendsWhatWasDecided(action: ActionRow): boolean {
  // A Stripe call is sent from its stored bytes: the hash must cover them, and the params shown must be theirs.
  if (action.body !== null) return bodyMatches(action);
  const params = JSON.parse(action.params) as Params;
  if (
    requestHash(action.method, action.path, params, action.stripe_account, action.stripe_context) !==
    action.request_hash
  )
    return false;
  if (action.mode !== 'http') return true;
  // A generic HTTP call is sent from its url, header and body columns; they must say what the hashed params say.
  const body = params['body'] ?? null;
  const expectedBody = body === null ? null : typeof body === 'string' ? body : JSON.stringify(body);
  return (
    params['url'] === action.url &&
    canonicalJson(params['headers'] ?? {}) === canonicalJson(JSON.parse(action.http_headers ?? '{}')) &&
    (expectedBody === action.http_body || (body === null && action.http_body === 'null'))
  );
}

/** Whether the stored bytes are the ones the decision and approvals were made for, and the params column says the same. */
function bodyMatches(action: ActionRow): boolean {
  if (action.body === null) return false;
  if (boundRequestHash(action) !== action.request_hash) return false;
  const encoding = encodingFor(action.method, action.path);
  return (
    canonicalJson(parseBound({ body: action.body, encoding })) === canonicalJson(JSON.parse(action.params))
  );
}
