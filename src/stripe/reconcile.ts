import type { ActionRow } from '../store/store.ts';
import { encodeForm, type Params } from './params.ts';
import type { StripeUpstream } from './upstream.ts';

export type Reconciliation =
  | { kind: 'found'; object: Record<string, unknown> }
  | { kind: 'absent' }
  | { kind: 'unknown'; reason: string };

type StripeObject = Record<string, unknown>;

function tagged(o: unknown, id: string): o is StripeObject {
  const m = (o as { metadata?: Record<string, unknown> } | null)?.metadata;
  return typeof m === 'object' && m !== null && m['airlock_action'] === id;
}

/**
 * Where to look for the object an action would have created or changed, tagged metadata[airlock_action]:
 * a list filtered to the action's time (and charge, for refunds), or the object itself for an update.
 */
function lookup(action: ActionRow): { list: string; query: Params } | { object: string } | null {
  const params = JSON.parse(action.params) as Params;
  const since = String(Math.floor(Date.parse(action.created_at) / 1000) - 300);
  const path = action.path;
  let m = path.match(/^\/v1\/charges\/([A-Za-z0-9_]+)\/refunds$/);
  if (m) return { list: '/v1/refunds', query: { charge: m[1]!, limit: '100' } };
  m = path.match(/^\/v1\/(transfers|application_fees)\/([A-Za-z0-9_]+)\/(reversals|refunds)$/);
  if (m) return { list: path, query: { limit: '100' } };
  m = path.match(/^\/v1\/customers\/([A-Za-z0-9_]+)\/balance_transactions$/);
  if (m) return { list: path, query: { limit: '100' } };
  if (path === '/v1/refunds') {
    const query: Params = { limit: '100', created: { gte: since } };
    if (typeof params['charge'] === 'string') query['charge'] = params['charge'];
    else if (typeof params['payment_intent'] === 'string') query['payment_intent'] = params['payment_intent'];
    return { list: path, query };
  }
  m = path.match(/^\/v1\/([a-z_]+)$/);
  if (m) return { list: path, query: { limit: '100', created: { gte: since } } };
  m = path.match(/^\/v1\/([a-z_]+)\/([A-Za-z0-9_]+)$/);
  if (m) return { object: path };
  return null;
}

/**
 * After an attempt whose outcome is unknown, asks Stripe whether the action took effect, by the tag Airlock puts
 * on every object it creates or changes. Read-only, with the upstream key.
 */
export async function reconcile(upstream: StripeUpstream, action: ActionRow): Promise<Reconciliation> {
  if (!action.accepts_metadata)
    return { kind: 'unknown', reason: 'this endpoint takes no metadata to find it by' };
  const where = lookup(action);
  if (!where) return { kind: 'unknown', reason: `no way to look up ${action.path}` };
  try {
    if ('object' in where) {
      const res = await upstream.send({
        method: 'GET',
        path: where.object,
        params: {},
        stripeAccount: action.stripe_account,
        stripeContext: action.stripe_context,
      });
      if (res.status !== 200)
        return { kind: 'unknown', reason: `Stripe answered ${res.status} to the look-up` };
      return tagged(res.body, action.id)
        ? { kind: 'found', object: res.body as StripeObject }
        : { kind: 'absent' };
    }
    let query = where.query;
    for (let page = 0; page < 10; page++) {
      const res = await upstream.send({
        method: 'GET',
        path: where.list,
        params: {},
        rawQuery: encodeForm(query),
        stripeAccount: action.stripe_account,
        stripeContext: action.stripe_context,
      });
      if (res.status !== 200)
        return { kind: 'unknown', reason: `Stripe answered ${res.status} to the look-up` };
      const body = res.body as { data?: unknown[]; has_more?: boolean };
      const data = Array.isArray(body.data) ? body.data : [];
      const hit = data.find((o) => tagged(o, action.id));
      if (hit) return { kind: 'found', object: hit as StripeObject };
      const last = data.at(-1) as { id?: string } | undefined;
      if (!body.has_more || !last?.id) return { kind: 'absent' };
      query = { ...query, starting_after: last.id };
    }
    return { kind: 'unknown', reason: 'too many objects to search' };
  } catch (err) {
    return { kind: 'unknown', reason: `Stripe could not be reached: ${(err as Error).message}` };
  }
}
