import { invalidRequest, StripeApiError, unrecognizedUrl } from '../errors.ts';
import { newId } from '../ids.ts';
import { mergeMetadata, optInt, type Params } from '../params.ts';
import type { HandlerContext } from '../router.ts';
import type { SandboxStore, StripeObject } from '../store.ts';

/** Stripe's v2 PayoutIntent (`/v2/money_management/payout_intents`): funds from a FinancialAccount to a payout method. */
const OBJECT = 'v2.money_management.payout_intent';
const COLLECTION = '/v2/money_management/payout_intents';

function invalid(message: string, param: string): StripeApiError {
  return invalidRequest(message, { code: 'invalid_request', param, stored: false });
}

function notFound(id: string): StripeApiError {
  return new StripeApiError(404, 'invalid_request_error', `No such payout intent: '${id}'`, {
    code: 'not_found',
  });
}

function object(p: Params, name: string, required: boolean): Params | undefined {
  const v = p[name];
  if (v === undefined || v === null) {
    if (required) throw invalid(`Missing required param: ${name}.`, name);
    return undefined;
  }
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(`Invalid ${name}: must be an object.`, name);
  return v as Params;
}

function text(p: Params, name: string, param = name): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '')
    throw invalid(`Invalid ${param}: must be a non-empty string.`, param);
  return v;
}

function oneOf<T extends string>(
  p: Params,
  name: string,
  allowed: readonly T[],
  param = name,
): T | undefined {
  const v = text(p, name, param);
  if (v !== undefined && !(allowed as readonly string[]).includes(v)) {
    throw invalid(`Invalid ${param}: must be one of ${allowed.join(', ')}.`, param);
  }
  return v as T | undefined;
}

function currency(p: Params, name: string, param: string): string | undefined {
  const v = text(p, name, param)?.toLowerCase();
  if (v !== undefined && !/^[a-z]{3}$/.test(v)) throw invalid(`Invalid ${param}: ${v}.`, param);
  return v;
}

/** A v2 amount: `{value, currency}`, the value an integer number of minor units sent as a JSON number. */
function amount(p: Params): { value: number; currency: string } {
  const a = object(p, 'amount', true)!;
  const value = a['value'];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalid('Invalid amount.value: must be a positive integer of minor units.', 'amount.value');
  }
  const cur = currency(a, 'currency', 'amount.currency');
  if (cur === undefined) throw invalid('Missing required param: amount.currency.', 'amount.currency');
  return { value, currency: cur };
}

/** `to` as Stripe documents it: a recipient and/or payout method, the currency to send, the method's options. */
function destination(to: Params): Params {
  const out: Params = {};
  for (const key of ['recipient', 'payout_method'] as const) {
    const v = text(to, key, `to.${key}`);
    if (v !== undefined) out[key] = v;
  }
  const cur = currency(to, 'currency', 'to.currency');
  if (cur !== undefined) out['currency'] = cur;
  const options = object(to, 'payout_method_options', false);
  if (options !== undefined) out['payout_method_options'] = options;
  return out;
}

/** The optional fields that create and update share; only those sent are set, as v2 objects omit unset fields. */
function editable(p: Params, target: StripeObject): void {
  for (const key of ['description', 'statement_descriptor'] as const) {
    if (p[key] !== undefined) target[key] = text(p, key);
  }
  const notification = object(p, 'recipient_notification', false);
  if (notification !== undefined) {
    target['recipient_notification'] = {
      setting: oneOf(
        notification,
        'setting',
        ['configured', 'none'] as const,
        'recipient_notification.setting',
      ),
    };
  }
  const schedule = object(p, 'schedule_options', false);
  if (schedule !== undefined) {
    const executeOn = text(schedule, 'execute_on', 'schedule_options.execute_on');
    if (executeOn !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(executeOn)) {
      throw invalid(
        'Invalid schedule_options.execute_on: must be a YYYY-MM-DD date.',
        'schedule_options.execute_on',
      );
    }
    target['schedule_options'] = executeOn === undefined ? {} : { execute_on: executeOn };
  }
  if (p['metadata'] !== undefined) target['metadata'] = mergeMetadata(target['metadata'], p);
  // Fields sent as null are unset, and v2 objects leave unset fields out.
  for (const key of Object.keys(target)) if (target[key] === undefined) delete target[key];
}

function create(store: SandboxStore, p: Params): StripeObject {
  const value = amount(p);
  const from = object(p, 'from', true)!;
  const financialAccount = text(from, 'financial_account', 'from.financial_account');
  if (financialAccount === undefined) {
    throw invalid('Missing required param: from.financial_account.', 'from.financial_account');
  }
  const to = destination(object(p, 'to', true)!);
  const confirmation = oneOf(p, 'confirmation_method', ['automatic', 'manual'] as const) ?? 'automatic';
  const now = new Date().toISOString();
  // Automatic intents go straight to processing (the documented create answer); manual ones wait to be confirmed.
  const manual = confirmation === 'manual';
  const intent: StripeObject = {
    id: newId('poi_test'),
    object: OBJECT,
    amount: value,
    confirmation_method: confirmation,
    created: now,
    from: {
      currency: currency(from, 'currency', 'from.currency') ?? value.currency,
      financial_account: financialAccount,
    },
    livemode: false,
    status: manual ? 'requires_action' : 'processing',
    status_transitions: manual ? { requires_action_at: now } : { processing_at: now },
    to,
  };
  if (manual) intent['next_action'] = { type: 'confirm', confirm: {} };
  editable(p, intent);
  return store.insert(intent);
}

function get(store: SandboxStore, id: string): StripeObject {
  const intent = store.find(id);
  if (!intent || intent.object !== OBJECT) throw notFound(id);
  return intent;
}

function update(store: SandboxStore, intent: StripeObject, p: Params): StripeObject {
  if (!['pending', 'requires_action'].includes(intent['status'] as string)) {
    throw invalidRequest(
      `This PayoutIntent can no longer be updated: its status is ${intent['status']}. Only PayoutIntents that are pending or require action can be.`,
      { code: 'payout_intent_not_editable' },
    );
  }
  editable(p, intent);
  const to = object(p, 'to', false);
  if (to !== undefined) intent['to'] = { ...(intent['to'] as Params), ...destination(to) };
  return store.save(intent);
}

function confirm(store: SandboxStore, intent: StripeObject): StripeObject {
  if (intent['status'] !== 'requires_action') {
    throw invalidRequest(
      `This PayoutIntent cannot be confirmed: its status is ${intent['status']}, not requires_action.`,
      { code: 'payout_intent_not_confirmable' },
    );
  }
  intent['status'] = 'pending';
  delete intent['next_action'];
  return store.save(intent);
}

function cancel(store: SandboxStore, intent: StripeObject): StripeObject {
  if (!['pending', 'requires_action', 'processing'].includes(intent['status'] as string)) {
    throw invalidRequest(`This PayoutIntent cannot be canceled: its status is ${intent['status']}.`, {
      code: 'not_cancelable',
    });
  }
  intent['status'] = 'canceled';
  delete intent['next_action'];
  intent['status_transitions'] = {
    ...(intent['status_transitions'] as Params),
    canceled_at: new Date().toISOString(),
  };
  return store.save(intent);
}

/** v2 list: newest first, `limit` (at most 100), `page` naming where the next page starts. */
function list(store: SandboxStore, p: Params): unknown {
  const limit = optInt(p, 'limit', 1) ?? 10;
  if (limit > 100) throw invalid('Invalid limit: must be at most 100.', 'limit');
  const after = typeof p['page'] === 'string' && p['page'] !== '' ? p['page'] : undefined;
  const page = store.page(OBJECT, { limit, startingAfter: after });
  const last = page.data.at(-1)?.id;
  return {
    data: page.data,
    next_page_url: page.hasMore && last ? `${COLLECTION}?limit=${limit}&page=${last}` : null,
    previous_page_url: null,
  };
}

/** Answers `/v2/money_management/payout_intents[/:id[/action]]`, or undefined for any other path. */
export function handlePayoutIntents(ctx: HandlerContext): unknown {
  if (ctx.path !== COLLECTION && !ctx.path.startsWith(`${COLLECTION}/`)) return undefined;
  const { store, params: p, method } = ctx;
  const [id, action, ...rest] = ctx.path.slice(COLLECTION.length + 1).split('/');
  if (rest.length > 0) throw unrecognizedUrl(method, ctx.path);
  if (id === undefined || id === '') {
    if (method === 'POST') return create(store, p);
    if (method === 'GET') return list(store, p);
  } else if (action === undefined) {
    if (method === 'GET') return get(store, id);
    if (method === 'POST') return update(store, get(store, id), p);
  } else if (method === 'POST' && action === 'confirm') {
    return confirm(store, get(store, id));
  } else if (method === 'POST' && action === 'cancel') {
    return cancel(store, get(store, id));
  }
  throw unrecognizedUrl(method, ctx.path);
}
