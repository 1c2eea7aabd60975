import {
  invalidRequest,
  parameterMissing,
  resourceMissing,
  StripeApiError,
  unexpectedState,
} from '../errors.ts';
import { newId, nowSeconds } from '../ids.ts';
import { baseObject, recordBalance } from '../objects.ts';
import {
  listQuery,
  mergeMetadata,
  optBool,
  optEnum,
  optInt,
  optObject,
  optString,
  type Params,
  requireCurrency,
  requireInt,
  toList,
} from '../params.ts';
import type { HandlerContext, Router } from '../router.ts';
import type { SandboxStore, StripeObject } from '../store.ts';

/** What a test token or payment method does, after Stripe's documented test values. */
interface CardBehaviour {
  brand: string;
  last4: string;
  decline?: { code: string; declineCode: string; message: string };
  dispute?: boolean;
}

const DECLINED = {
  code: 'card_declined',
  declineCode: 'generic_decline',
  message: 'Your card was declined.',
};

function cardBehaviour(token: string): CardBehaviour {
  const name = token.replace(/^(tok_|pm_card_|pm_)/, '');
  switch (name) {
    case 'chargeDeclined':
    case 'visa_chargeDeclined':
      return { brand: 'visa', last4: '0002', decline: DECLINED };
    case 'chargeDeclinedInsufficientFunds':
      return {
        brand: 'visa',
        last4: '9995',
        decline: {
          code: 'card_declined',
          declineCode: 'insufficient_funds',
          message: 'Your card has insufficient funds.',
        },
      };
    case 'chargeDeclinedExpiredCard':
      return {
        brand: 'visa',
        last4: '0069',
        decline: { code: 'expired_card', declineCode: 'expired_card', message: 'Your card has expired.' },
      };
    case 'createDispute':
      return { brand: 'visa', last4: '0259', dispute: true };
    case 'pendingRefund':
      return { brand: 'visa', last4: '7726' };
    // Stripe's 4000 0000 0000 5126: refunds answer succeeded, then fail asynchronously.
    case 'refundFail':
      return { brand: 'visa', last4: '5126' };
    case 'mastercard':
      return { brand: 'mastercard', last4: '4444' };
    case 'amex':
      return { brand: 'amex', last4: '8431' };
    default:
      return { brand: 'visa', last4: '4242' };
  }
}

function activeCustomer(store: SandboxStore, id: string | undefined): string | null {
  if (id === undefined) return null;
  const customer = store.get('customer', id, 'customer');
  if (customer['deleted']) throw resourceMissing('customer', id, 'customer');
  return id;
}

interface ChargeInput {
  amount: number;
  currency: string;
  customer: string | null;
  paymentMethod: string;
  capture: boolean;
  paymentIntent: string | null;
  params: Params;
}

/** Creates a charge (succeeded or failed); a decline is returned, not thrown, so the failed charge is kept. */
function createCharge(
  store: SandboxStore,
  input: ChargeInput,
): { charge: StripeObject; decline?: StripeApiError } {
  const card = cardBehaviour(input.paymentMethod);
  const base = baseObject('ch', 'charge');
  const paymentMethodId = /^pm_[A-Za-z0-9]{24}$/.test(input.paymentMethod)
    ? input.paymentMethod
    : newId('pm');
  const p = input.params;
  const declined = card.decline !== undefined;
  const charge: StripeObject = {
    ...base,
    amount: input.amount,
    amount_captured: !declined && input.capture ? input.amount : 0,
    amount_refunded: 0,
    application_fee: null,
    application_fee_amount: optInt(p, 'application_fee_amount') ?? null,
    balance_transaction: null,
    billing_details: { address: null, email: null, name: null, phone: null },
    calculated_statement_descriptor: 'SANDBOX',
    captured: !declined && input.capture,
    currency: input.currency,
    customer: input.customer,
    description: optString(p, 'description') ?? null,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: declined ? card.decline!.code : null,
    failure_message: declined ? card.decline!.message : null,
    fraud_details: {},
    metadata: mergeMetadata({}, p),
    on_behalf_of: optString(p, 'on_behalf_of') ?? null,
    outcome: declined
      ? {
          network_status: 'declined_by_network',
          reason: card.decline!.declineCode,
          risk_level: 'normal',
          seller_message: 'The bank did not return any further details with this decline.',
          type: 'issuer_declined',
        }
      : {
          network_status: 'approved_by_network',
          reason: null,
          risk_level: 'normal',
          seller_message: 'Payment complete.',
          type: 'authorized',
        },
    paid: !declined,
    payment_intent: input.paymentIntent,
    payment_method: paymentMethodId,
    payment_method_details: {
      type: 'card',
      card: {
        brand: card.brand,
        country: 'US',
        exp_month: 12,
        exp_year: new Date().getUTCFullYear() + 3,
        funding: 'credit',
        last4: card.last4,
        network: card.brand,
      },
    },
    receipt_email: optString(p, 'receipt_email') ?? null,
    receipt_url: null,
    refunded: false,
    review: null,
    shipping: null,
    source_transfer: null,
    statement_descriptor: optString(p, 'statement_descriptor') ?? null,
    statement_descriptor_suffix: optString(p, 'statement_descriptor_suffix') ?? null,
    status: declined ? 'failed' : 'succeeded',
    transfer_data: null,
    transfer_group: optString(p, 'transfer_group') ?? null,
  };
  if (charge['captured']) {
    charge['balance_transaction'] = recordBalance(store, 'charge', input.amount, input.currency, base.id);
  }
  if (card.dispute && !declined) {
    const dispute = baseObject('dp', 'dispute');
    store.insert({
      ...dispute,
      amount: input.amount,
      balance_transactions: [],
      charge: base.id,
      currency: input.currency,
      evidence: {},
      evidence_details: {
        due_by: dispute.created + 7 * 86_400,
        has_evidence: false,
        past_due: false,
        submission_count: 0,
      },
      is_charge_refundable: false,
      metadata: {},
      payment_intent: input.paymentIntent,
      reason: 'fraudulent',
      status: 'needs_response',
    });
    charge['disputed'] = true;
  }
  store.insert(charge);
  if (!declined) return { charge };
  const decline = new StripeApiError(402, 'card_error', card.decline!.message, {
    code: card.decline!.code,
    extra: { decline_code: card.decline!.declineCode, charge: base.id },
  });
  return { charge, decline };
}

/** An uncaptured charge whose PaymentIntent was canceled: its authorisation is released. */
function released(store: SandboxStore, charge: StripeObject): boolean {
  if (charge['captured'] || typeof charge['payment_intent'] !== 'string') return false;
  return store.find(charge['payment_intent'])?.['status'] === 'canceled';
}

/**
 * Captures an authorized charge, wholly or in part. As of API version 2025-03-31.basil the uncaptured remainder is
 * released without a Refund: `amount_refunded` and `refunded` are left as they were, `amount_captured` says what
 * was captured, and refunds can return at most that.
 */
function captureCharge(store: SandboxStore, charge: StripeObject, amount: number | undefined): StripeObject {
  if (charge['captured']) {
    throw unexpectedState(`Charge ${charge.id} has already been captured.`, 'charge_already_captured');
  }
  if (charge['refunded']) {
    throw unexpectedState(
      `Charge ${charge.id} has already been refunded and can no longer be captured.`,
      'charge_already_refunded',
    );
  }
  if (released(store, charge)) {
    throw unexpectedState(
      `Charge ${charge.id} can no longer be captured: its PaymentIntent was canceled and the authorization released.`,
      'charge_expired_for_capture',
    );
  }
  const total = charge['amount'] as number;
  const captured = amount ?? total;
  if (captured > total) {
    throw invalidRequest(
      `The amount to capture (${captured}) must be less than or equal to the authorized amount (${total}).`,
      { code: 'amount_too_large', param: 'amount' },
    );
  }
  charge['captured'] = true;
  charge['amount_captured'] = captured;
  charge['balance_transaction'] = recordBalance(
    store,
    'charge',
    captured,
    charge['currency'] as string,
    charge.id,
  );
  return store.save(charge);
}

function refundableCharge(store: SandboxStore, p: Params): StripeObject {
  const chargeId = optString(p, 'charge');
  const intentId = optString(p, 'payment_intent');
  if (chargeId !== undefined) return store.get('charge', chargeId, 'charge');
  if (intentId === undefined) {
    throw invalidRequest(
      'One of the following params should be provided for this request: charge or payment_intent.',
      {
        code: 'parameter_missing',
        param: 'charge',
        stored: false,
      },
    );
  }
  const intent = store.get('payment_intent', intentId, 'payment_intent');
  const latest = intent['latest_charge'];
  const charge = typeof latest === 'string' ? store.find(latest) : undefined;
  if (charge?.['status'] !== 'succeeded') {
    throw invalidRequest(`This PaymentIntent (${intentId}) does not have a successful charge to refund.`, {
      code: 'charge_not_refundable',
      param: 'payment_intent',
    });
  }
  return charge!;
}

/** Charges made with the pendingRefund test card (last4 7726) get refunds that start pending, as Stripe's do. */
function refundsStartPending(charge: StripeObject): boolean {
  const details = charge['payment_method_details'] as { card?: { last4?: string } } | undefined;
  return details?.card?.last4 === '7726';
}

function formatAmount(amount: number, currency: string): string {
  return currency === 'usd' ? `$${(amount / 100).toFixed(2)}` : `${amount} ${currency}`;
}

function createRefund(store: SandboxStore, charge: StripeObject, p: Params): StripeObject {
  if (charge['status'] !== 'succeeded') {
    throw invalidRequest(`Charge ${charge.id} has a status of ${charge['status']} and cannot be refunded.`, {
      code: 'charge_not_refundable',
    });
  }
  if (charge['disputed']) {
    throw invalidRequest(`Charge ${charge.id} has been charged back; cannot issue a refund.`, {
      code: 'charge_disputed',
    });
  }
  if (released(store, charge)) {
    throw invalidRequest(
      `Charge ${charge.id} cannot be refunded: its PaymentIntent was canceled and the authorization released.`,
      { code: 'charge_not_refundable' },
    );
  }
  // A captured charge refunds what was captured; refunding an uncaptured one releases its authorization.
  const refundable = (charge['captured'] ? charge['amount_captured'] : charge['amount']) as number;
  const refunded = charge['amount_refunded'] as number;
  const remaining = refundable - refunded;
  const currency = charge['currency'] as string;
  if (remaining <= 0) {
    throw invalidRequest(`Charge ${charge.id} has already been refunded.`, {
      code: 'charge_already_refunded',
    });
  }
  const amount = optInt(p, 'amount', 1) ?? remaining;
  if (amount > remaining) {
    throw invalidRequest(
      `Refund amount (${formatAmount(amount, currency)}) is greater than unrefunded amount on charge (${formatAmount(remaining, currency)})`,
      { code: 'amount_too_large', param: 'amount' },
    );
  }
  const reason = optEnum(p, 'reason', ['duplicate', 'fraudulent', 'requested_by_customer'] as const) ?? null;
  const metadata = mergeMetadata({}, p);
  const base = baseObject('re', 'refund');
  const pending = refundsStartPending(charge);
  const refund: StripeObject = {
    ...base,
    amount,
    balance_transaction: charge['captured']
      ? recordBalance(store, 'refund', -amount, currency, base.id)
      : null,
    charge: charge.id,
    currency,
    destination_details: { type: 'card', card: { type: 'refund', reference_status: 'pending' } },
    metadata,
    payment_intent: charge['payment_intent'] ?? null,
    reason,
    receipt_number: null,
    source_transfer_reversal: null,
    status: pending ? 'pending' : 'succeeded',
    transfer_reversal: null,
  };
  store.insert(refund);
  charge['amount_refunded'] = refunded + amount;
  charge['refunded'] = refunded + amount === refundable;
  store.save(charge);
  return refund;
}

function intentStatusError(intent: StripeObject, action: string, allowed: string[]): StripeApiError {
  return unexpectedState(
    `You cannot ${action} this PaymentIntent because it has a status of ${intent['status']}. ` +
      `Only a PaymentIntent with one of the following statuses may be ${action === 'confirm' ? 'confirmed' : `${action}ed`}: ${allowed.join(', ')}.`,
    'payment_intent_unexpected_state',
  );
}

function confirmIntent(store: SandboxStore, intent: StripeObject, p: Params): StripeObject {
  const allowed = ['requires_payment_method', 'requires_confirmation'];
  if (!allowed.includes(intent['status'] as string)) throw intentStatusError(intent, 'confirm', allowed);
  const paymentMethod = optString(p, 'payment_method') ?? (intent['payment_method'] as string | null);
  if (!paymentMethod) {
    throw unexpectedState(
      "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the " +
        'PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method.',
      'payment_intent_unexpected_state',
    );
  }
  const captureMethod = optEnum(p, 'capture_method', CAPTURE_METHODS) ?? (intent['capture_method'] as string);
  const manual = captureMethod === 'manual';
  const { charge, decline } = createCharge(store, {
    amount: intent['amount'] as number,
    currency: intent['currency'] as string,
    customer: intent['customer'] as string | null,
    paymentMethod,
    capture: !manual,
    paymentIntent: intent.id,
    params: { metadata: intent['metadata'], description: intent['description'] ?? undefined },
  });
  intent['capture_method'] = captureMethod;
  intent['latest_charge'] = charge.id;
  intent['payment_method'] = charge['payment_method'];
  if (decline) {
    intent['status'] = 'requires_payment_method';
    intent['last_payment_error'] = decline.body().error;
    store.save(intent);
    throw new StripeApiError(402, 'card_error', decline.message, {
      code: decline.code,
      extra: { ...decline.extra, payment_intent: intent },
    });
  }
  intent['last_payment_error'] = null;
  if (manual) {
    intent['status'] = 'requires_capture';
    intent['amount_capturable'] = intent['amount'];
  } else {
    intent['status'] = 'succeeded';
    intent['amount_received'] = intent['amount'];
  }
  return store.save(intent);
}

const CAPTURE_METHODS = ['automatic', 'automatic_async', 'manual'] as const;

function createIntent(store: SandboxStore, p: Params): StripeObject {
  const amount = requireInt(p, 'amount', 1);
  const currency = requireCurrency(p);
  const customer = activeCustomer(store, optString(p, 'customer'));
  const paymentMethod = optString(p, 'payment_method') ?? null;
  const base = baseObject('pi', 'payment_intent');
  const intent: StripeObject = {
    ...base,
    amount,
    amount_capturable: 0,
    amount_received: 0,
    application_fee_amount: optInt(p, 'application_fee_amount') ?? null,
    automatic_payment_methods: null,
    canceled_at: null,
    cancellation_reason: null,
    capture_method: optEnum(p, 'capture_method', CAPTURE_METHODS) ?? 'automatic_async',
    client_secret: `${base.id}_secret_${newId('x').slice(2)}`,
    confirmation_method: 'automatic',
    currency,
    customer,
    description: optString(p, 'description') ?? null,
    last_payment_error: null,
    latest_charge: null,
    metadata: mergeMetadata({}, p),
    next_action: null,
    on_behalf_of: optString(p, 'on_behalf_of') ?? null,
    payment_method: paymentMethod,
    payment_method_types: ['card'],
    receipt_email: optString(p, 'receipt_email') ?? null,
    setup_future_usage: null,
    shipping: null,
    statement_descriptor: optString(p, 'statement_descriptor') ?? null,
    status: paymentMethod ? 'requires_confirmation' : 'requires_payment_method',
    transfer_data: optObject(p, 'transfer_data') ?? null,
    transfer_group: optString(p, 'transfer_group') ?? null,
  };
  store.insert(intent);
  return optBool(p, 'confirm') ? confirmIntent(store, intent, {}) : intent;
}

function updateIntent(store: SandboxStore, intent: StripeObject, p: Params): StripeObject {
  const locked = ['succeeded', 'canceled', 'requires_capture', 'processing'].includes(
    intent['status'] as string,
  );
  const amount = optInt(p, 'amount', 1);
  const payment = ['amount', 'currency', 'payment_method', 'capture_method'].filter(
    (k) => p[k] !== undefined,
  );
  if (locked && payment.length > 0) {
    throw unexpectedState(
      `You cannot update ${payment[0]} on this PaymentIntent because it has a status of ${intent['status']}.`,
      'payment_intent_unexpected_state',
      payment[0],
    );
  }
  if (amount !== undefined) intent['amount'] = amount;
  if (p['currency'] !== undefined) intent['currency'] = requireCurrency(p);
  if (p['customer'] !== undefined) intent['customer'] = activeCustomer(store, optString(p, 'customer'));
  const captureMethod = optEnum(p, 'capture_method', CAPTURE_METHODS);
  if (captureMethod) intent['capture_method'] = captureMethod;
  const paymentMethod = optString(p, 'payment_method');
  if (paymentMethod) {
    intent['payment_method'] = paymentMethod;
    if (intent['status'] === 'requires_payment_method') intent['status'] = 'requires_confirmation';
  }
  for (const key of ['description', 'receipt_email', 'statement_descriptor', 'transfer_group']) {
    if (p[key] !== undefined) intent[key] = optString(p, key) ?? null;
  }
  intent['metadata'] = mergeMetadata(intent['metadata'], p);
  return store.save(intent);
}

function captureIntent(store: SandboxStore, intent: StripeObject, p: Params): StripeObject {
  if (intent['status'] !== 'requires_capture')
    throw intentStatusError(intent, 'capture', ['requires_capture']);
  const capturable = intent['amount_capturable'] as number;
  const amount = optInt(p, 'amount_to_capture', 1) ?? capturable;
  if (amount > capturable) {
    throw invalidRequest(
      `The amount to capture (${amount}) must be less than or equal to the amount capturable (${capturable}).`,
      { code: 'amount_too_large', param: 'amount_to_capture' },
    );
  }
  const charge = store.get('charge', intent['latest_charge'] as string);
  captureCharge(store, charge, amount);
  intent['status'] = 'succeeded';
  intent['amount_capturable'] = 0;
  intent['amount_received'] = amount;
  intent['metadata'] = mergeMetadata(intent['metadata'], p);
  return store.save(intent);
}

function cancelIntent(store: SandboxStore, intent: StripeObject, p: Params): StripeObject {
  const allowed = [
    'requires_payment_method',
    'requires_capture',
    'requires_confirmation',
    'requires_action',
    'processing',
  ];
  if (!allowed.includes(intent['status'] as string)) throw intentStatusError(intent, 'cancel', allowed);
  const reason =
    optEnum(p, 'cancellation_reason', [
      'duplicate',
      'fraudulent',
      'requested_by_customer',
      'abandoned',
    ] as const) ?? null;
  // Cancelling releases an authorization without a Refund (2025-03-31.basil): the charge keeps amount_refunded 0
  // and refunded false, and can then be neither captured nor refunded.
  intent['status'] = 'canceled';
  intent['canceled_at'] = nowSeconds();
  intent['cancellation_reason'] = reason;
  intent['amount_capturable'] = 0;
  return store.save(intent);
}

function incrementAuthorization(store: SandboxStore, intent: StripeObject, p: Params): StripeObject {
  if (intent['status'] !== 'requires_capture') {
    throw intentStatusError(intent, 'increment the authorization of', ['requires_capture']);
  }
  const amount = requireInt(p, 'amount', 1);
  if (amount <= (intent['amount'] as number)) {
    throw invalidRequest('The amount must be greater than the currently authorized amount.', {
      code: 'parameter_invalid_integer',
      param: 'amount',
      stored: false,
    });
  }
  const charge = store.get('charge', intent['latest_charge'] as string);
  charge['amount'] = amount;
  store.save(charge);
  intent['amount'] = amount;
  intent['amount_capturable'] = amount;
  intent['metadata'] = mergeMetadata(intent['metadata'], p);
  return store.save(intent);
}

function updateFields(store: SandboxStore, obj: StripeObject, p: Params, fields: string[]): StripeObject {
  for (const key of fields) {
    if (p[key] !== undefined) obj[key] = optString(p, key) ?? null;
  }
  obj['metadata'] = mergeMetadata(obj['metadata'], p);
  return store.save(obj);
}

/** An object under its parent's path (`/v1/charges/ch_1/refunds/re_1`): missing unless it belongs to that parent. */
function child(
  store: SandboxStore,
  type: string,
  id: string,
  parentField: string,
  parentId: string,
): StripeObject {
  const obj = store.get(type, id);
  if (obj[parentField] !== parentId) throw resourceMissing(type, id);
  return obj;
}

/** The list of the children of the parent in the path (`GET /v1/charges/ch_1/refunds`). */
function children(ctx: HandlerContext, type: string, parentField: string, url: string) {
  const q = listQuery(ctx.params);
  q.filters = [{ field: parentField, value: ctx.args[0]! }];
  return toList(url, ctx.store.page(type, q));
}

function list(ctx: HandlerContext, type: string, url: string, filterFields: string[]) {
  const q = listQuery(ctx.params);
  q.filters = filterFields.flatMap((field) => {
    const value = optString(ctx.params, field);
    return value === undefined ? [] : [{ field, value }];
  });
  return toList(url, ctx.store.page(type, q));
}

export function registerPayments(r: Router): void {
  r.post('/v1/charges', ({ store, params: p }) => {
    const amount = requireInt(p, 'amount', 1);
    const currency = requireCurrency(p);
    const customer = activeCustomer(store, optString(p, 'customer'));
    const source = optString(p, 'source') ?? optString(p, 'payment_method');
    if (source === undefined && customer === null) throw parameterMissing('source');
    const { charge, decline } = createCharge(store, {
      amount,
      currency,
      customer,
      paymentMethod: source ?? 'tok_visa',
      capture: optBool(p, 'capture') ?? true,
      paymentIntent: null,
      params: p,
    });
    if (decline) throw decline;
    return charge;
  });
  r.get('/v1/charges', (ctx) => list(ctx, 'charge', '/v1/charges', ['customer', 'payment_intent']));
  r.get('/v1/charges/:id', ({ store, args }) => store.get('charge', args[0]!));
  r.post('/v1/charges/:id', ({ store, args, params: p }) =>
    updateFields(store, store.get('charge', args[0]!), p, ['description', 'receipt_email', 'transfer_group']),
  );
  r.post('/v1/charges/:id/capture', ({ store, args, params: p }) => {
    const charge = store.get('charge', args[0]!);
    captureCharge(store, charge, optInt(p, 'amount', 1));
    if (typeof charge['payment_intent'] === 'string') {
      const intent = store.find(charge['payment_intent']);
      if (intent && intent['status'] === 'requires_capture') {
        intent['status'] = 'succeeded';
        intent['amount_capturable'] = 0;
        intent['amount_received'] = charge['amount_captured'];
        store.save(intent);
      }
    }
    charge['metadata'] = mergeMetadata(charge['metadata'], p);
    return store.save(charge);
  });
  r.post('/v1/charges/:id/refunds', ({ store, args, params: p }) =>
    createRefund(store, store.get('charge', args[0]!), p),
  );
  r.get('/v1/charges/:id/refunds', (ctx) => {
    ctx.store.get('charge', ctx.args[0]!);
    return children(ctx, 'refund', 'charge', `/v1/charges/${ctx.args[0]}/refunds`);
  });
  r.get('/v1/charges/:id/refunds/:refund', ({ store, args }) =>
    child(store, 'refund', args[1]!, 'charge', args[0]!),
  );

  r.post('/v1/refunds', ({ store, params: p }) => createRefund(store, refundableCharge(store, p), p));
  r.get('/v1/refunds', (ctx) => list(ctx, 'refund', '/v1/refunds', ['charge', 'payment_intent']));
  r.get('/v1/refunds/:id', ({ store, args }) => store.get('refund', args[0]!));
  r.post('/v1/refunds/:id', ({ store, args, params: p }) =>
    updateFields(store, store.get('refund', args[0]!), p, []),
  );
  r.post('/v1/refunds/:id/cancel', ({ store, args }) => {
    const refund = store.get('refund', args[0]!);
    if (refund['status'] !== 'pending' && refund['status'] !== 'requires_action') {
      throw unexpectedState(
        `Refund ${refund.id} cannot be canceled because it has a status of ${refund['status']}. ` +
          'Only refunds with a status of pending or requires_action can be canceled.',
        'refund_cannot_be_canceled',
      );
    }
    const charge = store.get('charge', refund['charge'] as string);
    charge['amount_refunded'] = (charge['amount_refunded'] as number) - (refund['amount'] as number);
    charge['refunded'] = false;
    store.save(charge);
    if (refund['balance_transaction']) {
      recordBalance(
        store,
        'refund_failure',
        refund['amount'] as number,
        refund['currency'] as string,
        refund.id,
      );
    }
    refund['status'] = 'canceled';
    return store.save(refund);
  });

  r.post('/v1/payment_intents', ({ store, params: p }) => createIntent(store, p));
  r.get('/v1/payment_intents', (ctx) => list(ctx, 'payment_intent', '/v1/payment_intents', ['customer']));
  r.get('/v1/payment_intents/:id', ({ store, args }) => store.get('payment_intent', args[0]!));
  r.post('/v1/payment_intents/:id', ({ store, args, params: p }) =>
    updateIntent(store, store.get('payment_intent', args[0]!), p),
  );
  r.post('/v1/payment_intents/:id/confirm', ({ store, args, params: p }) => {
    const intent = store.get('payment_intent', args[0]!);
    intent['metadata'] = mergeMetadata(intent['metadata'], p);
    return confirmIntent(store, intent, p);
  });
  r.post('/v1/payment_intents/:id/capture', ({ store, args, params: p }) =>
    captureIntent(store, store.get('payment_intent', args[0]!), p),
  );
  r.post('/v1/payment_intents/:id/cancel', ({ store, args, params: p }) =>
    cancelIntent(store, store.get('payment_intent', args[0]!), p),
  );
  r.post('/v1/payment_intents/:id/increment_authorization', ({ store, args, params: p }) =>
    incrementAuthorization(store, store.get('payment_intent', args[0]!), p),
  );

  r.get('/v1/disputes', (ctx) => list(ctx, 'dispute', '/v1/disputes', ['charge', 'payment_intent']));
  r.get('/v1/disputes/:id', ({ store, args }) => store.get('dispute', args[0]!));
  r.post('/v1/disputes/:id', ({ store, args, params: p }) => {
    const dispute = store.get('dispute', args[0]!);
    const evidence = optObject(p, 'evidence');
    if (evidence) {
      dispute['evidence'] = { ...(dispute['evidence'] as object), ...evidence };
      (dispute['evidence_details'] as Record<string, unknown>)['has_evidence'] = true;
    }
    if (optBool(p, 'submit') && String(dispute['status']).endsWith('needs_response')) {
      dispute['status'] = 'under_review';
      const details = dispute['evidence_details'] as Record<string, number>;
      details['submission_count'] = (details['submission_count'] ?? 0) + 1;
    }
    dispute['metadata'] = mergeMetadata(dispute['metadata'], p);
    return store.save(dispute);
  });
  r.post('/v1/disputes/:id/close', ({ store, args }) => {
    const dispute = store.get('dispute', args[0]!);
    if (!['needs_response', 'warning_needs_response'].includes(dispute['status'] as string)) {
      throw invalidRequest(`This dispute is already closed or under review (status ${dispute['status']}).`, {
        code: 'dispute_already_closed',
      });
    }
    dispute['status'] = dispute['status'] === 'warning_needs_response' ? 'warning_closed' : 'lost';
    return store.save(dispute);
  });

  r.get('/v1/balance', ({ store }) => {
    const rows = store.balances();
    const available = (rows.length > 0 ? rows : [{ currency: 'usd', amount: 0 }]).map((row) => ({
      amount: row.amount,
      currency: row.currency,
      source_types: { card: row.amount },
    }));
    return {
      object: 'balance',
      available,
      connect_reserved: available.map((a) => ({ amount: 0, currency: a.currency })),
      livemode: false,
      pending: available.map((a) => ({ amount: 0, currency: a.currency, source_types: { card: 0 } })),
    };
  });
  r.get('/v1/balance_transactions', (ctx) =>
    list(ctx, 'balance_transaction', '/v1/balance_transactions', ['source', 'type', 'currency']),
  );
  r.get('/v1/balance_transactions/:id', ({ store, args }) => store.get('balance_transaction', args[0]!));
}

export { activeCustomer, child, children, list, updateFields };
