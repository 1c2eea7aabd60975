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

/** The amount Airlock derived for an action, as the receipt shows it. */
export interface Derived {
  amount: number;
  currency: string | null;
  /** The parameter it was written into; null when the endpoint takes none (checked again before dispatch). */
  field: string | null;
  basis: string;
}

/** Where an endpoint takes its amount, for a reviewer's lower amount: the classifier's answer for this route. */
export function amountFieldOf(c: Classification): string | null {
  return c.amountField;
}

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

/** Whether the stored bytes are the ones the decision and approvals were made for, and the params column says the same. */
export function bodyMatches(action: ActionRow, hash: (a: ActionRow) => string): boolean {
  if (action.body === null) return false;
  if (hash(action) !== action.request_hash) return false;
  const encoding = encodingFor(action.method, action.path);
  return (
    canonicalJson(parseBound({ body: action.body, encoding })) === canonicalJson(JSON.parse(action.params))
  );
}
