import { describe, expect, it } from 'vitest';
import { type Classification, classify, isValidStripePath, ParamError } from '../../src/stripe/classify.ts';
import { type Params, parseForm } from '../../src/stripe/params.ts';

const NOTHING: Omit<Classification, 'kind'> = {
  read: false,
  amount: null,
  amountField: null,
  currency: null,
  customer: null,
  charge: null,
  payment_intent: null,
  destination: null,
  objectId: null,
  acceptsMetadata: false,
  irreversible: false,
};

type Row = [method: string, path: string, body: string, expected: Partial<Classification> & { kind: string }];

function run(method: string, path: string, body: string | Params): Classification {
  const params = typeof body === 'string' ? parseForm(body) : body;
  return classify({ method, path, params });
}

// Every field is compared, so a fact the classifier invents where the request names none fails too.
const WRITES: Row[] = [
  // refunds
  [
    'POST',
    '/v1/refunds',
    'charge=ch_1&amount=60000',
    {
      kind: 'refund.create',
      amount: 60000,
      amountField: 'amount',
      charge: 'ch_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/refunds',
    'payment_intent=pi_1',
    {
      kind: 'refund.create',
      amountField: 'amount',
      payment_intent: 'pi_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/refunds',
    'customer=cus_1&origin=customer_balance&amount=700&currency=EUR',
    {
      kind: 'refund.create',
      amount: 700,
      amountField: 'amount',
      currency: 'eur',
      customer: 'cus_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  ['POST', '/v1/refunds/re_1/cancel', '', { kind: 'refund.cancel', objectId: 're_1' }],
  [
    'POST',
    '/v1/refunds/re_1',
    'metadata[a]=b',
    { kind: 'refund.update', objectId: 're_1', acceptsMetadata: true },
  ],
  // payouts
  [
    'POST',
    '/v1/payouts',
    'amount=250000&currency=usd&destination=ba_1',
    {
      kind: 'payout.create',
      amount: 250000,
      amountField: 'amount',
      currency: 'usd',
      destination: 'ba_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/payouts/po_1',
    'metadata[a]=b',
    { kind: 'payout.update', objectId: 'po_1', acceptsMetadata: true },
  ],
  ['POST', '/v1/payouts/po_1/cancel', '', { kind: 'payout.cancel', objectId: 'po_1' }],
  [
    'POST',
    '/v1/payouts/po_1/reverse',
    '',
    { kind: 'payout.reverse', objectId: 'po_1', acceptsMetadata: true, irreversible: true },
  ],
  // transfers
  [
    'POST',
    '/v1/transfers',
    'amount=1000&currency=usd&destination=acct_1',
    {
      kind: 'transfer.create',
      amount: 1000,
      amountField: 'amount',
      currency: 'usd',
      destination: 'acct_1',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/transfers/tr_1/reversals',
    'amount=400',
    {
      kind: 'transfer_reversal.create',
      amount: 400,
      amountField: 'amount',
      objectId: 'tr_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/transfers/tr_1/reversals/trr_1',
    'metadata[a]=b',
    { kind: 'transfer_reversal.update', objectId: 'trr_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/application_fees/fee_1/refunds',
    'amount=30',
    {
      kind: 'application_fee_refund.create',
      amount: 30,
      amountField: 'amount',
      objectId: 'fee_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  // charges
  [
    'POST',
    '/v1/charges',
    'amount=2000&currency=usd&customer=cus_1&source=card_1',
    {
      kind: 'charge.create',
      amount: 2000,
      amountField: 'amount',
      currency: 'usd',
      customer: 'cus_1',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/charges',
    'amount=2000&currency=usd&destination[account]=acct_9',
    {
      kind: 'charge.create',
      amount: 2000,
      amountField: 'amount',
      currency: 'usd',
      destination: 'acct_9',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/charges/ch_1/capture',
    'amount=1500',
    { kind: 'charge.capture', amount: 1500, amountField: 'amount', charge: 'ch_1', objectId: 'ch_1' },
  ],
  [
    'POST',
    '/v1/charges/ch_1/capture',
    '',
    { kind: 'charge.capture', amountField: 'amount', charge: 'ch_1', objectId: 'ch_1' },
  ],
  [
    'POST',
    '/v1/charges/ch_1/refunds',
    'amount=500',
    {
      kind: 'refund.create',
      amount: 500,
      amountField: 'amount',
      charge: 'ch_1',
      objectId: 'ch_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/charges/ch_1/refund',
    '',
    {
      kind: 'refund.create',
      amountField: 'amount',
      charge: 'ch_1',
      objectId: 'ch_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/charges/ch_1',
    'metadata[a]=b',
    { kind: 'charge.update', charge: 'ch_1', objectId: 'ch_1', acceptsMetadata: true },
  ],
  // payment intents
  [
    'POST',
    '/v1/payment_intents',
    'amount=5000&currency=GBP&customer=cus_1&transfer_data[destination]=acct_2',
    {
      kind: 'payment_intent.create',
      amount: 5000,
      amountField: 'amount',
      currency: 'gbp',
      customer: 'cus_1',
      destination: 'acct_2',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/payment_intents/pi_1',
    'amount=7000',
    {
      kind: 'payment_intent.update',
      amount: 7000,
      amountField: 'amount',
      payment_intent: 'pi_1',
      objectId: 'pi_1',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/payment_intents/pi_1/confirm',
    'payment_method=pm_card_visa',
    {
      kind: 'payment_intent.confirm',
      amountField: 'amount_to_confirm',
      payment_intent: 'pi_1',
      objectId: 'pi_1',
    },
  ],
  [
    'POST',
    '/v1/payment_intents/pi_1/capture',
    'amount_to_capture=4200',
    {
      kind: 'payment_intent.capture',
      amount: 4200,
      amountField: 'amount_to_capture',
      payment_intent: 'pi_1',
      objectId: 'pi_1',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/payment_intents/pi_1/increment_authorization',
    'amount=9000',
    {
      kind: 'payment_intent.increment_authorization',
      amount: 9000,
      amountField: 'amount',
      payment_intent: 'pi_1',
      objectId: 'pi_1',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/payment_intents/pi_1/cancel',
    'cancellation_reason=duplicate',
    { kind: 'payment_intent.cancel', payment_intent: 'pi_1', objectId: 'pi_1', irreversible: true },
  ],
  // subscriptions
  [
    'POST',
    '/v1/subscriptions/sub_1',
    'cancel_at_period_end=true',
    { kind: 'subscription.cancel', objectId: 'sub_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/subscriptions/sub_1',
    'cancel_at=1900000000',
    { kind: 'subscription.cancel', objectId: 'sub_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/subscriptions/sub_1',
    'cancel_at_period_end=false',
    { kind: 'subscription.update', objectId: 'sub_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/subscriptions/sub_1',
    'cancel_at=',
    { kind: 'subscription.update', objectId: 'sub_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/subscriptions/sub_1',
    'items[0][price]=price_2',
    { kind: 'subscription.update', objectId: 'sub_1', acceptsMetadata: true },
  ],
  [
    'DELETE',
    '/v1/subscriptions/sub_1',
    '',
    { kind: 'subscription.cancel', objectId: 'sub_1', irreversible: true },
  ],
  ['POST', '/v1/subscriptions/sub_1/resume', '', { kind: 'subscription.resume', objectId: 'sub_1' }],
  ['POST', '/v1/subscriptions/sub_1/pause', '', { kind: 'subscription.pause', objectId: 'sub_1' }],
  [
    'POST',
    '/v1/subscriptions',
    'customer=cus_1',
    { kind: 'subscription.create', customer: 'cus_1', acceptsMetadata: true },
  ],
  // invoices
  ['POST', '/v1/invoices/in_1/pay', '', { kind: 'invoice.pay', objectId: 'in_1' }],
  ['POST', '/v1/invoices/in_1/void', '', { kind: 'invoice.void', objectId: 'in_1', irreversible: true }],
  [
    'POST',
    '/v1/invoices/in_1/mark_uncollectible',
    '',
    { kind: 'invoice.mark_uncollectible', objectId: 'in_1' },
  ],
  [
    'POST',
    '/v1/invoices/in_1/finalize',
    '',
    { kind: 'invoice.finalize', objectId: 'in_1', irreversible: true },
  ],
  ['DELETE', '/v1/invoices/in_1', '', { kind: 'invoice.delete', objectId: 'in_1', irreversible: true }],
  [
    'POST',
    '/v1/invoices',
    'customer=cus_1',
    { kind: 'invoice.create', customer: 'cus_1', acceptsMetadata: true },
  ],
  // credit notes
  [
    'POST',
    '/v1/credit_notes',
    'invoice=in_1&amount=300',
    { kind: 'credit_note.create', amount: 300, amountField: 'amount', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/credit_notes',
    'invoice=in_1&refund_amount=800',
    {
      kind: 'credit_note.create',
      amount: 800,
      amountField: 'amount',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  // customers
  [
    'POST',
    '/v1/customers/cus_1/balance_transactions',
    'amount=1500&currency=USD',
    {
      kind: 'customer_balance_transaction.create',
      amount: 1500,
      amountField: 'amount',
      currency: 'usd',
      customer: 'cus_1',
      objectId: 'cus_1',
      acceptsMetadata: true,
    },
  ],
  [
    'DELETE',
    '/v1/customers/cus_1',
    '',
    { kind: 'customer.delete', customer: 'cus_1', objectId: 'cus_1', irreversible: true },
  ],
  ['POST', '/v1/customers', 'email=a%40b.c', { kind: 'customer.create', acceptsMetadata: true }],
  [
    'POST',
    '/v1/customers/cus_1',
    'name=Ada',
    { kind: 'customer.update', customer: 'cus_1', objectId: 'cus_1', acceptsMetadata: true },
  ],
  // disputes
  [
    'POST',
    '/v1/disputes/dp_1',
    'evidence[uncategorized_text]=shipped',
    { kind: 'dispute.update', objectId: 'dp_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/disputes/dp_1',
    'submit=true',
    { kind: 'dispute.submit', objectId: 'dp_1', acceptsMetadata: true, irreversible: true },
  ],
  [
    'POST',
    '/v1/disputes/dp_1',
    'submit=false',
    { kind: 'dispute.update', objectId: 'dp_1', acceptsMetadata: true },
  ],
  ['POST', '/v1/disputes/dp_1/close', '', { kind: 'dispute.close', objectId: 'dp_1', irreversible: true }],
  // top-ups and treasury
  [
    'POST',
    '/v1/topups',
    'amount=100000&currency=usd',
    { kind: 'topup.create', amount: 100000, amountField: 'amount', currency: 'usd', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/treasury/outbound_payments',
    'financial_account=fa_1&amount=20000&currency=usd&customer=cus_1',
    {
      kind: 'treasury.outbound_payment.create',
      amount: 20000,
      amountField: 'amount',
      currency: 'usd',
      customer: 'cus_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/treasury/outbound_transfers',
    'financial_account=fa_1&amount=30000&currency=usd',
    {
      kind: 'treasury.outbound_transfer.create',
      amount: 30000,
      amountField: 'amount',
      currency: 'usd',
      acceptsMetadata: true,
    },
  ],
  // plain resources
  ['POST', '/v1/products', 'name=Widget', { kind: 'product.create', acceptsMetadata: true }],
  [
    'POST',
    '/v1/prices',
    'product=prod_1&unit_amount=500&currency=usd',
    {
      kind: 'price.create',
      amount: 500,
      amountField: 'unit_amount',
      currency: 'usd',
      acceptsMetadata: true,
    },
  ],
  ['DELETE', '/v1/products/prod_1', '', { kind: 'product.delete', objectId: 'prod_1', irreversible: true }],
  [
    'POST',
    '/v1/invoiceitems',
    'customer=cus_1&amount=250&currency=usd',
    {
      kind: 'invoiceitem.create',
      amount: 250,
      amountField: 'amount',
      currency: 'usd',
      customer: 'cus_1',
      acceptsMetadata: true,
    },
  ],
  [
    'POST',
    '/v1/checkout/sessions',
    'mode=payment',
    { kind: 'checkout.session.create', acceptsMetadata: true },
  ],
  ['POST', '/v1/ephemeral_keys', 'customer=cus_1', { kind: 'ephemeral_key.create', customer: 'cus_1' }],
  // unknown writes
  ['POST', '/v1/quotes/qt_1/unknown_action', '', { kind: 'stripe.write', objectId: 'qt_1' }],
  ['POST', '/v1/brand_new_things', 'amount=10', { kind: 'stripe.write', amount: 10, amountField: 'amount' }],
  ['POST', '/v1/brand_new_things', 'name=x', { kind: 'stripe.write' }],
  ['DELETE', '/v1/prices/price_1', '', { kind: 'stripe.write', objectId: 'price_1' }],
  ['PUT', '/v1/refunds', 'charge=ch_1', { kind: 'stripe.write', charge: 'ch_1' }],
  ['POST', '/v2/core/brand_new_things', '', { kind: 'stripe.write' }],
  // every endpoint of the pinned client has a kind, v2 and sub-collections too
  ['POST', '/v2/core/accounts', '', { kind: 'v2.core.account.create', acceptsMetadata: true }],
  [
    'POST',
    '/v1/customers/cus_1/sources',
    'source=tok_1',
    { kind: 'customer_source.create', customer: 'cus_1', objectId: 'cus_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/terminal/readers/tmr_1/refund_payment',
    'charge=ch_1&amount=1200',
    {
      kind: 'terminal.reader.refund_payment',
      amount: 1200,
      amountField: 'amount',
      charge: 'ch_1',
      objectId: 'tmr_1',
      acceptsMetadata: true,
      irreversible: true,
    },
  ],
  [
    'POST',
    '/v1/coupons',
    'amount_off=500&currency=usd&duration=once',
    { kind: 'coupon.create', amount: 500, amountField: 'amount_off', currency: 'usd', acceptsMetadata: true },
  ],
  // `amount` is not a coupon update's parameter: Stripe refuses it, so it is nothing to value.
  [
    'POST',
    '/v1/coupons/co_1',
    'amount=abc',
    { kind: 'coupon.update', objectId: 'co_1', acceptsMetadata: true },
  ],
  [
    'POST',
    '/v1/accounts/acct_1/external_accounts',
    'external_account=btok_1',
    { kind: 'external_account.create', objectId: 'acct_1', acceptsMetadata: true, irreversible: true },
  ],
];

describe('classify: writes', () => {
  it.each(WRITES)('%s %s %s', (method, path, body, expected) => {
    expect(run(method, path, body)).toEqual({ ...NOTHING, ...expected });
  });

  it('accepts the method in any case', () => {
    expect(run('post', '/v1/refunds', 'charge=ch_1').kind).toBe('refund.create');
  });

  it('takes the charge named in the path over one in the params', () => {
    expect(run('POST', '/v1/charges/ch_path/refunds', 'charge=ch_param').charge).toBe('ch_path');
  });

  it('ignores a currency on a charge refund, which Stripe takes from the charge', () => {
    const refund = run('POST', '/v1/refunds', 'charge=ch_1&amount=60000&currency=jpy');
    expect(refund.currency).toBeNull();
    expect(refund.amount).toBe(60000);
  });

  it('treats any non-false cancel_at_period_end as a cancellation', () => {
    expect(run('POST', '/v1/subscriptions/sub_1', 'cancel_at_period_end=1').kind).toBe('subscription.cancel');
    expect(run('POST', '/v1/subscriptions/sub_1', { cancel_at_period_end: true }).kind).toBe(
      'subscription.cancel',
    );
    expect(run('POST', '/v1/subscriptions/sub_1', { cancel_at_period_end: false }).kind).toBe(
      'subscription.update',
    );
  });

  it('classifies a v2 outbound payment with its JSON amount', () => {
    const result = run('POST', '/v2/money_management/outbound_payments', {
      amount: { value: 12345, currency: 'USD' },
      from: { financial_account: 'fa_1', currency: 'usd' },
    });
    expect(result).toEqual({
      ...NOTHING,
      kind: 'v2.money_management.outbound_payment.create',
      amount: 12345,
      amountField: 'amount.value',
      currency: 'usd',
      acceptsMetadata: true,
      irreversible: true,
    });
  });

  it('treats an invoice preview as a read', () => {
    expect(run('POST', '/v1/invoices/create_preview', 'customer=cus_1')).toEqual({
      ...NOTHING,
      kind: 'invoice.preview',
      read: true,
      customer: 'cus_1',
    });
  });

  it('does not read inherited properties as params', () => {
    const params = Object.create({ amount: '999999', charge: 'ch_inherited' }) as Params;
    params['payment_intent'] = 'pi_1';
    const result = classify({ method: 'POST', path: '/v1/refunds', params });
    expect(result.amount).toBeNull();
    expect(result.charge).toBeNull();
    expect(result.payment_intent).toBe('pi_1');
  });
});

const READS: Row[] = [
  ['GET', '/v1/charges/ch_1', '', { kind: 'charge.read', charge: 'ch_1', objectId: 'ch_1' }],
  ['GET', '/v1/charges', 'customer=cus_1&limit=3', { kind: 'charge.read', customer: 'cus_1' }],
  ['GET', '/v1/refunds', '', { kind: 'refund.read' }],
  ['GET', '/v1/refunds/re_1', '', { kind: 'refund.read', objectId: 're_1' }],
  ['GET', '/v1/balance', '', { kind: 'balance.read' }],
  ['GET', '/v1/balance_transactions', '', { kind: 'balance_transaction.read' }],
  [
    'GET',
    '/v1/payment_intents/pi_1',
    '',
    { kind: 'payment_intent.read', payment_intent: 'pi_1', objectId: 'pi_1' },
  ],
  ['GET', '/v1/customers/search', 'query=email', { kind: 'customer.read' }],
  [
    'GET',
    '/v1/customers/cus_1/balance_transactions',
    '',
    { kind: 'customer_balance_transaction.read', customer: 'cus_1', objectId: 'cus_1' },
  ],
  ['GET', '/v1/charges/ch_1/refunds', '', { kind: 'refund.read', charge: 'ch_1', objectId: 'ch_1' }],
  ['GET', '/v1/transfers/tr_1/reversals/trr_1', '', { kind: 'transfer_reversal.read', objectId: 'trr_1' }],
  ['GET', '/v1/invoices/upcoming', 'customer=cus_1', { kind: 'invoice.read', customer: 'cus_1' }],
  ['GET', '/v1/invoices/in_1/lines', '', { kind: 'invoice_line_item.read', objectId: 'in_1' }],
  [
    'GET',
    '/v1/treasury/outbound_payments/obp_1',
    '',
    { kind: 'treasury.outbound_payment.read', objectId: 'obp_1' },
  ],
  ['GET', '/v1/checkout/sessions', '', { kind: 'checkout.session.read' }],
  ['GET', '/v1/accounts/acct_1/capabilities', '', { kind: 'capability.read', objectId: 'acct_1' }],
  ['GET', '/v1/subscriptions/sub_1', '', { kind: 'subscription.read', objectId: 'sub_1' }],
  ['GET', '/v1/account', '', { kind: 'account.read' }],
  ['GET', '/v2/core/accounts/acct_1', '', { kind: 'v2.core.account.read', objectId: 'acct_1' }],
  ['GET', '/v2/core/events', '', { kind: 'v2.core.event.read' }],
  // A read never carries money facts, whatever its query says.
  ['GET', '/v1/charges', 'amount=abc&currency=1', { kind: 'charge.read' }],
];

describe('classify: reads', () => {
  it.each(READS)('%s %s %s', (method, path, body, expected) => {
    expect(run(method, path, body)).toEqual({ ...NOTHING, read: true, ...expected });
  });
});

describe('classify: amounts', () => {
  const BAD_AMOUNTS: [string, string | Params][] = [
    ['negative', 'amount=-5'],
    ['decimal', 'amount=10.5'],
    ['exponent', 'amount=1e3'],
    ['hex', 'amount=0x10'],
    ['empty', 'amount='],
    ['spaced', 'amount=+5'],
    ['an array', 'amount[0]=5'],
    ['repeated', 'amount=5&amount=500000'],
    ['an object', 'amount[value]=5'],
    ['above 2^53', 'amount=9007199254740993'],
    ['huge', `amount=${'9'.repeat(400)}`],
    ['a JSON float', { amount: 1.5 }],
    ['a negative JSON number', { amount: -1 }],
    ['an unsafe JSON number', { amount: 2 ** 53 }],
    ['JSON infinity', { amount: Number.POSITIVE_INFINITY }],
    ['a JSON boolean', { amount: true }],
  ];

  it.each(BAD_AMOUNTS)('rejects an amount that is %s with parameter_invalid_integer', (_, body) => {
    const params = typeof body === 'string' ? parseForm(`charge=ch_1&${body}`) : { charge: 'ch_1', ...body };
    const error = catchError(() => classify({ method: 'POST', path: '/v1/refunds', params }));
    expect(error).toBeInstanceOf(ParamError);
    expect(error).toMatchObject({ code: 'parameter_invalid_integer', param: 'amount' });
  });

  it('names the field it rejects', () => {
    const error = catchError(() => run('POST', '/v1/payment_intents/pi_1/capture', 'amount_to_capture=-1'));
    expect(error).toMatchObject({ code: 'parameter_invalid_integer', param: 'amount_to_capture' });
    const nested = catchError(() =>
      run('POST', '/v2/money_management/outbound_payments', { amount: { value: 12.5, currency: 'usd' } }),
    );
    expect(nested).toMatchObject({ code: 'parameter_invalid_integer', param: 'amount.value' });
  });

  it('rejects a bad refund_amount on a credit note even when amount is fine', () => {
    const error = catchError(() => run('POST', '/v1/credit_notes', 'invoice=in_1&amount=5&refund_amount=x'));
    expect(error).toMatchObject({ code: 'parameter_invalid_integer', param: 'refund_amount' });
  });

  it('accepts zero', () => {
    expect(run('POST', '/v1/refunds', 'charge=ch_1&amount=0').amount).toBe(0);
    expect(Object.is(run('POST', '/v1/refunds', { charge: 'ch_1', amount: -0 }).amount, 0)).toBe(true);
  });

  it('accepts the largest safe integer and leading zeros', () => {
    expect(run('POST', '/v1/refunds', 'charge=ch_1&amount=9007199254740991').amount).toBe(
      Number.MAX_SAFE_INTEGER,
    );
    expect(run('POST', '/v1/refunds', 'charge=ch_1&amount=0042').amount).toBe(42);
  });

  it('accepts JSON integers', () => {
    expect(run('POST', '/v1/payouts', { amount: 500, currency: 'usd' }).amount).toBe(500);
  });

  it('requires the amount Stripe requires for money-out creates', () => {
    const error = catchError(() => run('POST', '/v1/payouts', 'currency=usd'));
    expect(error).toMatchObject({ code: 'parameter_missing', param: 'amount' });
  });

  it('leaves the amount null for a full refund', () => {
    expect(run('POST', '/v1/refunds', 'charge=ch_1').amount).toBeNull();
  });

  it('says where a full refund takes the amount Airlock derives', () => {
    expect(run('POST', '/v1/refunds', 'charge=ch_1')).toMatchObject({ amount: null, amountField: 'amount' });
    expect(run('POST', '/v1/payment_intents/pi_1/capture', '')).toMatchObject({
      amount: null,
      amountField: 'amount_to_capture',
    });
  });

  it('ignores an amount an endpoint does not take', () => {
    expect(run('POST', '/v1/customers', 'amount=5000')).toMatchObject({ amount: null, amountField: null });
  });

  it('reads a v2 amount value given as a JSON integer or a digit string', () => {
    for (const value of [4200, '4200']) {
      const c = run('POST', '/v2/money_management/payout_intents', { amount: { value, currency: 'USD' } });
      expect(c).toMatchObject({ amount: 4200, amountField: 'amount.value', currency: 'usd' });
    }
  });

  it.each([['12.5'], [-3], ['1e3'], [true]])('rejects the v2 amount value %j', (value) => {
    const error = catchError(() =>
      run('POST', '/v2/money_management/payout_intents', { amount: { value, currency: 'usd' } }),
    );
    expect(error).toMatchObject({ code: 'parameter_invalid_integer', param: 'amount.value' });
  });

  it('rejects a v2 amount without a three-letter currency', () => {
    const path = '/v2/money_management/inbound_transfers';
    expect(catchError(() => run('POST', path, { amount: { value: 1, currency: 'dollars' } }))).toMatchObject({
      code: 'parameter_invalid',
      param: 'amount.currency',
    });
    expect(catchError(() => run('POST', path, { amount: { value: 1 } }))).toMatchObject({
      code: 'parameter_missing',
      param: 'amount.currency',
    });
  });

  it('reads an amount object on a v2 endpoint newer than the table', () => {
    const c = run('POST', '/v2/money_management/brand_new_things', {
      amount: { value: '99', currency: 'gbp' },
    });
    expect(c).toMatchObject({
      kind: 'stripe.write',
      amount: 99,
      amountField: 'amount.value',
      currency: 'gbp',
    });
  });
});

describe('classify: currency', () => {
  it('lower-cases the currency', () => {
    expect(run('POST', '/v1/payouts', 'amount=1&currency=USD').currency).toBe('usd');
    expect(run('POST', '/v1/transfers', 'amount=1&currency=Eur&destination=acct_1').currency).toBe('eur');
  });

  it.each([['us'], ['usdd'], ['u$d'], ['123'], ['']])(
    'rejects currency %j with parameter_invalid',
    (currency) => {
      const error = catchError(() => run('POST', '/v1/payouts', `amount=1&currency=${currency}`));
      expect(error).toBeInstanceOf(ParamError);
      expect(error).toMatchObject({ code: 'parameter_invalid', param: 'currency' });
    },
  );

  it('rejects a currency that is not a string', () => {
    const error = catchError(() => run('POST', '/v1/charges', 'amount=1&currency[0]=usd'));
    expect(error).toMatchObject({ code: 'parameter_invalid', param: 'currency' });
  });

  it('requires a currency on a payout', () => {
    const error = catchError(() => run('POST', '/v1/payouts', 'amount=1'));
    expect(error).toMatchObject({ code: 'parameter_missing', param: 'currency' });
  });
});

describe('paths', () => {
  it.each([
    '/v1/refunds',
    '/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15/refunds',
    '/v1/accounts/acct_1/capabilities/card_payments',
    '/v2/core/accounts/acct_1',
    '/v1/files/file-1.pdf',
  ])('accepts %s', (path) => {
    expect(isValidStripePath(path)).toBe(true);
  });

  it.each([
    ['traversal', '/v1/../admin'],
    ['traversal inside', '/v1/charges/../../etc'],
    ['a dot segment', '/v1/./refunds'],
    ['an empty segment', '/v1//refunds'],
    ['a trailing slash', '/v1/refunds/'],
    ['an encoded slash', '/v1/charges/ch_1%2F..%2Frefunds'],
    ['a space', '/v1/charges/ch 1'],
    ['a query', '/v1/refunds?x=1'],
    ['a backslash', '/v1/refunds\\x'],
    ['a non-ASCII letter', '/v1/réfunds'],
    ['no version', '/refunds'],
    ['an unknown version', '/v3/refunds'],
    ['a bare version', '/v1'],
    ['no leading slash', 'v1/refunds'],
    ['a full URL', 'https://api.stripe.com/v1/refunds'],
    ['a too-long path', `/v1/${'a'.repeat(600)}`],
  ])('rejects %s', (_, path) => {
    expect(isValidStripePath(path)).toBe(false);
  });

  it('classifies an invalid path as an unknown write, without naming anything in it', () => {
    expect(run('POST', '/v1/../refunds', 'amount=5')).toEqual({ ...NOTHING, kind: 'stripe.write' });
    expect(run('GET', '/v1/charges/../x', '')).toEqual({ ...NOTHING, kind: 'stripe.read', read: true });
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}
