import { invalidRequest, resourceMissing } from '../errors.ts';
import { newId, nowSeconds } from '../ids.ts';
import { baseObject, recordBalance } from '../objects.ts';
import {
  mergeMetadata,
  optEnum,
  optInt,
  optString,
  type Params,
  requireCurrency,
  requireInt,
  requireString,
} from '../params.ts';
import type { HandlerContext, Router } from '../router.ts';
import type { SandboxStore, StripeObject } from '../store.ts';
import { child, children, list, updateFields } from './payments.ts';

const DAY = 86_400;

export function createPayout(store: SandboxStore, p: Params): StripeObject {
  const amount = requireInt(p, 'amount', 1);
  const currency = requireCurrency(p);
  const base = baseObject('po', 'payout');
  return store.insert({
    ...base,
    amount,
    arrival_date: base.created + 2 * DAY,
    automatic: false,
    balance_transaction: recordBalance(store, 'payout', -amount, currency, base.id),
    currency,
    description: optString(p, 'description') ?? null,
    destination: optString(p, 'destination') ?? 'ba_sandbox_default',
    failure_balance_transaction: null,
    failure_code: null,
    failure_message: null,
    metadata: mergeMetadata({}, p),
    method: optEnum(p, 'method', ['standard', 'instant'] as const) ?? 'standard',
    original_payout: null,
    reconciliation_status: 'not_applicable',
    reversed_by: null,
    source_type: optString(p, 'source_type') ?? 'card',
    statement_descriptor: optString(p, 'statement_descriptor') ?? null,
    status: 'pending',
    type: 'bank_account',
  });
}

function cancelPayout(store: SandboxStore, payout: StripeObject): StripeObject {
  if (payout['status'] !== 'pending') {
    throw invalidRequest(
      `Payouts can only be canceled while they are pending; ${payout.id} is ${payout['status']}.`,
      {
        code: 'payout_not_cancelable',
      },
    );
  }
  payout['status'] = 'canceled';
  payout['failure_balance_transaction'] = recordBalance(
    store,
    'payout_cancel',
    payout['amount'] as number,
    payout['currency'] as string,
    payout.id,
  );
  return store.save(payout);
}

// Stripe only reverses paid payouts; sandbox payouts never settle, so pending ones may be reversed too.
function reversePayout(store: SandboxStore, payout: StripeObject, p: Params): StripeObject {
  if (!['pending', 'paid'].includes(payout['status'] as string) || payout['reversed_by']) {
    throw invalidRequest(`Payout ${payout.id} cannot be reversed (status ${payout['status']}).`, {
      code: 'payout_reconciliation_not_ready',
    });
  }
  const amount = payout['amount'] as number;
  const currency = payout['currency'] as string;
  const base = baseObject('po', 'payout');
  const reversal = store.insert({
    ...payout,
    ...base,
    amount,
    balance_transaction: recordBalance(store, 'payout', amount, currency, base.id),
    metadata: mergeMetadata({}, p),
    original_payout: payout.id,
    reversed_by: null,
    status: 'pending',
  });
  payout['reversed_by'] = reversal.id;
  store.save(payout);
  return reversal;
}

function reversalsList(transferId: string, data: StripeObject[]) {
  return {
    object: 'list',
    data: data.slice(0, 10),
    has_more: data.length > 10,
    total_count: data.length,
    url: `/v1/transfers/${transferId}/reversals`,
  };
}

function createTransfer(store: SandboxStore, p: Params): StripeObject {
  const amount = requireInt(p, 'amount', 1);
  const currency = requireCurrency(p);
  const destination = requireString(p, 'destination');
  const base = baseObject('tr', 'transfer');
  return store.insert({
    ...base,
    amount,
    amount_reversed: 0,
    balance_transaction: recordBalance(store, 'transfer', -amount, currency, base.id),
    currency,
    description: optString(p, 'description') ?? null,
    destination,
    destination_payment: newId('py'),
    metadata: mergeMetadata({}, p),
    reversals: reversalsList(base.id, []),
    reversed: false,
    source_transaction: optString(p, 'source_transaction') ?? null,
    source_type: optString(p, 'source_type') ?? 'card',
    transfer_group: optString(p, 'transfer_group') ?? null,
  });
}

function createTransferReversal(store: SandboxStore, transfer: StripeObject, p: Params): StripeObject {
  const total = transfer['amount'] as number;
  const reversed = transfer['amount_reversed'] as number;
  const remaining = total - reversed;
  const currency = transfer['currency'] as string;
  if (remaining <= 0) {
    throw invalidRequest(`Transfer ${transfer.id} has already been fully reversed.`, {
      code: 'transfer_already_reversed',
    });
  }
  const amount = optInt(p, 'amount', 1) ?? remaining;
  if (amount > remaining) {
    throw invalidRequest(
      `Transfer reversal amount (${amount}) is greater than the amount remaining on the transfer (${remaining}).`,
      { code: 'amount_too_large', param: 'amount' },
    );
  }
  const base = baseObject('trr', 'transfer_reversal');
  const reversal = store.insert({
    ...base,
    amount,
    balance_transaction: recordBalance(store, 'transfer_refund', amount, currency, base.id),
    currency,
    destination_payment_refund: newId('pyr'),
    metadata: mergeMetadata({}, p),
    source_refund: null,
    transfer: transfer.id,
  });
  transfer['amount_reversed'] = reversed + amount;
  transfer['reversed'] = reversed + amount === total;
  const existing = (transfer['reversals'] as { data: StripeObject[] }).data;
  transfer['reversals'] = reversalsList(transfer.id, [reversal, ...existing]);
  store.save(transfer);
  return reversal;
}

interface GenericSpec {
  path: string;
  prefix: string;
  object: string;
  required?: string[];
  defaults?: Record<string, unknown>;
  /** Action name → the statuses it may leave and the one it sets. */
  actions?: Record<string, { from: string[]; to: string }>;
  filters?: string[];
}

/** A resource whose create stores its parameters as given: enough for endpoints Airlock only gates. */
function generic(r: Router, spec: GenericSpec): void {
  const { path, prefix, object } = spec;
  r.post(path, ({ store, params: p }) => {
    for (const name of spec.required ?? []) requireString(p, name);
    const fields: Params = {};
    for (const [key, value] of Object.entries(p)) {
      if (key !== 'expand' && key !== 'metadata') fields[key] = value;
    }
    if (p['amount'] !== undefined) fields['amount'] = requireInt(p, 'amount', 1);
    if (p['currency'] !== undefined) fields['currency'] = requireCurrency(p);
    return store.insert({
      ...baseObject(prefix, object),
      ...spec.defaults,
      ...fields,
      metadata: mergeMetadata({}, p),
    });
  });
  r.get(path, (ctx) => list(ctx, object, path, spec.filters ?? []));
  r.get(`${path}/:id`, ({ store, args }) => store.get(object, args[0]!));
  r.post(`${path}/:id`, ({ store, args, params: p }) => {
    const obj = store.get(object, args[0]!);
    for (const [key, value] of Object.entries(p)) {
      if (key !== 'expand' && key !== 'metadata' && key !== 'amount' && key !== 'currency') obj[key] = value;
    }
    obj['metadata'] = mergeMetadata(obj['metadata'], p);
    return store.save(obj);
  });
  for (const [action, { from, to }] of Object.entries(spec.actions ?? {})) {
    r.post(`${path}/:id/${action}`, ({ store, args }) => {
      const obj = store.get(object, args[0]!);
      if (!from.includes(obj['status'] as string)) {
        throw invalidRequest(`This ${object} cannot be ${to} because it has a status of ${obj['status']}.`, {
          code: 'resource_invalid_state',
        });
      }
      obj['status'] = to;
      obj[`${to}_at`] = nowSeconds();
      return store.save(obj);
    });
  }
}

function feeRefundsPath(ctx: HandlerContext): string {
  return `/v1/application_fees/${ctx.args[0]}/refunds`;
}

export function registerMoney(r: Router): void {
  r.post('/v1/payouts', ({ store, params: p }) => createPayout(store, p));
  r.get('/v1/payouts', (ctx) => list(ctx, 'payout', '/v1/payouts', ['status', 'destination']));
  r.get('/v1/payouts/:id', ({ store, args }) => store.get('payout', args[0]!));
  r.post('/v1/payouts/:id', ({ store, args, params: p }) =>
    updateFields(store, store.get('payout', args[0]!), p, []),
  );
  r.post('/v1/payouts/:id/cancel', ({ store, args }) => cancelPayout(store, store.get('payout', args[0]!)));
  r.post('/v1/payouts/:id/reverse', ({ store, args, params: p }) =>
    reversePayout(store, store.get('payout', args[0]!), p),
  );

  r.post('/v1/transfers', ({ store, params: p }) => createTransfer(store, p));
  r.get('/v1/transfers', (ctx) => list(ctx, 'transfer', '/v1/transfers', ['destination', 'transfer_group']));
  r.get('/v1/transfers/:id', ({ store, args }) => store.get('transfer', args[0]!));
  r.post('/v1/transfers/:id', ({ store, args, params: p }) =>
    updateFields(store, store.get('transfer', args[0]!), p, ['description']),
  );
  r.post('/v1/transfers/:id/reversals', ({ store, args, params: p }) =>
    createTransferReversal(store, store.get('transfer', args[0]!), p),
  );
  r.get('/v1/transfers/:id/reversals', (ctx) => {
    ctx.store.get('transfer', ctx.args[0]!);
    return children(ctx, 'transfer_reversal', 'transfer', `/v1/transfers/${ctx.args[0]}/reversals`);
  });
  r.get('/v1/transfers/:id/reversals/:rev', ({ store, args }) =>
    child(store, 'transfer_reversal', args[1]!, 'transfer', args[0]!),
  );
  r.post('/v1/transfers/:id/reversals/:rev', ({ store, args, params: p }) =>
    updateFields(store, child(store, 'transfer_reversal', args[1]!, 'transfer', args[0]!), p, []),
  );

  r.post('/v1/application_fees/:id/refunds', ({ store, args, params: p }) => {
    const amount = optInt(p, 'amount', 1);
    const base = baseObject('fr', 'fee_refund');
    return store.insert({
      ...base,
      amount: amount ?? 0,
      balance_transaction: null,
      currency: 'usd',
      fee: args[0]!,
      metadata: mergeMetadata({}, p),
    });
  });
  r.get('/v1/application_fees/:id/refunds', (ctx) => children(ctx, 'fee_refund', 'fee', feeRefundsPath(ctx)));
  r.get('/v1/application_fees/:id/refunds/:refund', ({ store, args }) =>
    child(store, 'fee_refund', args[1]!, 'fee', args[0]!),
  );
  r.post('/v1/application_fees/:id/refunds/:refund', ({ store, args, params: p }) =>
    updateFields(store, child(store, 'fee_refund', args[1]!, 'fee', args[0]!), p, []),
  );
  r.get('/v1/application_fees/:id', ({ args }) => {
    throw resourceMissing('application_fee', args[0]!);
  });

  generic(r, {
    path: '/v1/topups',
    prefix: 'tu',
    object: 'topup',
    required: ['amount', 'currency'],
    defaults: { description: null, status: 'pending' },
    actions: { cancel: { from: ['pending'], to: 'canceled' } },
    filters: ['status'],
  });
  generic(r, {
    path: '/v1/credit_notes',
    prefix: 'cn',
    object: 'credit_note',
    required: ['invoice'],
    defaults: { memo: null, reason: null, status: 'issued', type: 'pre_payment' },
    actions: { void: { from: ['issued'], to: 'void' } },
    filters: ['invoice', 'customer'],
  });
  generic(r, {
    path: '/v1/treasury/outbound_payments',
    prefix: 'obp',
    object: 'treasury.outbound_payment',
    required: ['financial_account', 'amount', 'currency'],
    defaults: { cancelable: true, description: null, status: 'processing' },
    actions: { cancel: { from: ['processing'], to: 'canceled' } },
    filters: ['financial_account', 'status'],
  });
  generic(r, {
    path: '/v1/treasury/outbound_transfers',
    prefix: 'obt',
    object: 'treasury.outbound_transfer',
    required: ['financial_account', 'amount', 'currency'],
    defaults: { cancelable: true, description: null, status: 'processing' },
    actions: { cancel: { from: ['processing'], to: 'canceled' } },
    filters: ['financial_account', 'status'],
  });
}
