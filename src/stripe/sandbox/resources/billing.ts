import { invalidRequest, parameterMissing, resourceMissing } from '../errors.ts';
import { newId, nowSeconds } from '../ids.ts';
import { baseObject } from '../objects.ts';
import {
  listQuery,
  mergeMetadata,
  optArray,
  optBool,
  optInt,
  optObject,
  optString,
  type Params,
  requireCurrency,
  requireInt,
  requireString,
  toList,
} from '../params.ts';
import type { Router } from '../router.ts';
import type { SandboxStore, StripeObject } from '../store.ts';
import { child, children, list, updateFields } from './payments.ts';

const CUSTOMER_FIELDS = ['description', 'email', 'name', 'phone', 'preferred_locales'];
const MONTH = 30 * 86_400;

function createCustomer(store: SandboxStore, p: Params): StripeObject {
  const customer: StripeObject = {
    ...baseObject('cus', 'customer'),
    address: optObject(p, 'address') ?? null,
    balance: optInt(p, 'balance', Number.MIN_SAFE_INTEGER) ?? 0,
    currency: null,
    default_source: null,
    delinquent: false,
    description: optString(p, 'description') ?? null,
    discount: null,
    email: optString(p, 'email') ?? null,
    invoice_prefix: newId('x').slice(2, 10).toUpperCase(),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: null,
      footer: null,
      rendering_options: null,
    },
    metadata: mergeMetadata({}, p),
    name: optString(p, 'name') ?? null,
    next_invoice_sequence: 1,
    phone: optString(p, 'phone') ?? null,
    preferred_locales: [],
    shipping: null,
    tax_exempt: 'none',
    test_clock: null,
  };
  return store.insert(customer);
}

function customerBalanceTransaction(store: SandboxStore, customerId: string, p: Params): StripeObject {
  const customer = liveCustomer(store, customerId, 'id');
  const amount = requireInt(p, 'amount', Number.MIN_SAFE_INTEGER);
  const currency = requireCurrency(p);
  if (customer['currency'] && customer['currency'] !== currency) {
    throw invalidRequest(
      `The currency ${currency} does not match the customer's currency ${customer['currency']}.`,
      { param: 'currency' },
    );
  }
  const ending = (customer['balance'] as number) + amount;
  const txn: StripeObject = {
    ...baseObject('cbtxn', 'customer_balance_transaction'),
    amount,
    credit_note: null,
    currency,
    customer: customerId,
    description: optString(p, 'description') ?? null,
    ending_balance: ending,
    invoice: null,
    metadata: mergeMetadata({}, p),
    type: 'adjustment',
  };
  store.insert(txn);
  customer['balance'] = ending;
  customer['currency'] = currency;
  store.save(customer);
  return txn;
}

function liveCustomer(store: SandboxStore, id: string, param: string): StripeObject {
  const customer = store.get('customer', id, param);
  if (customer['deleted']) throw resourceMissing('customer', id, param);
  return customer;
}

interface ItemInput {
  id?: string;
  price?: string;
  price_data?: Params;
  quantity?: number;
  deleted?: boolean;
  metadata?: Params;
}

function priceObject(
  price: string | undefined,
  priceData: Params | undefined,
  currency: string,
): StripeObject {
  const data = priceData ?? {};
  const recurring = (data['recurring'] as Params | undefined) ?? { interval: 'month' };
  return {
    id: price ?? newId('price'),
    object: 'price',
    active: true,
    currency: optString(data, 'currency')?.toLowerCase() ?? currency,
    livemode: false,
    product: optString(data, 'product') ?? null,
    recurring: {
      interval: optString(recurring, 'interval') ?? 'month',
      interval_count: 1,
      usage_type: 'licensed',
    },
    type: 'recurring',
    unit_amount: optInt(data, 'unit_amount') ?? 0,
  };
}

function subscriptionItem(
  subscriptionId: string,
  input: ItemInput,
  index: number,
  start: number,
): StripeObject {
  if (!input.price && !input.price_data) throw parameterMissing(`items[${index}][price]`);
  const price = priceObject(input.price, input.price_data, 'usd');
  return {
    ...baseObject('si', 'subscription_item'),
    current_period_end: start + MONTH,
    current_period_start: start,
    metadata: mergeMetadata({}, { metadata: input.metadata }),
    price,
    quantity: input.quantity ?? 1,
    subscription: subscriptionId,
  };
}

function readItems(p: Params): ItemInput[] {
  return (optArray(p, 'items') ?? []).map((raw, i) => {
    if (!raw || typeof raw !== 'object') {
      throw invalidRequest('Invalid array', { param: `items[${i}]`, stored: false });
    }
    const item = raw as Params;
    return {
      id: optString(item, 'id'),
      price: optString(item, 'price'),
      price_data: optObject(item, 'price_data'),
      quantity: optInt(item, 'quantity', 0),
      deleted: optBool(item, 'deleted'),
      metadata: optObject(item, 'metadata'),
    };
  });
}

function itemsTotal(items: StripeObject[]): number {
  return items.reduce((sum, item) => {
    const price = item['price'] as { unit_amount: number };
    return sum + price.unit_amount * (item['quantity'] as number);
  }, 0);
}

function createSubscription(store: SandboxStore, p: Params): StripeObject {
  const customerId = requireString(p, 'customer');
  liveCustomer(store, customerId, 'customer');
  const inputs = readItems(p);
  if (inputs.length === 0) throw parameterMissing('items');
  const base = baseObject('sub', 'subscription');
  const start = base.created;
  const items = inputs.map((input, i) => subscriptionItem(base.id, input, i, start));
  const currency = (items[0]!['price'] as { currency: string }).currency;
  const trialDays = optInt(p, 'trial_period_days', 0);
  const trialEnd = trialDays ? start + trialDays * 86_400 : null;
  const cancelAtPeriodEnd = optBool(p, 'cancel_at_period_end') ?? false;
  const subscription: StripeObject = {
    ...base,
    billing_cycle_anchor: start,
    cancel_at: cancelAtPeriodEnd ? start + MONTH : (optInt(p, 'cancel_at') ?? null),
    cancel_at_period_end: cancelAtPeriodEnd,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, reason: null },
    collection_method: optString(p, 'collection_method') ?? 'charge_automatically',
    currency,
    customer: customerId,
    days_until_due: optInt(p, 'days_until_due') ?? null,
    default_payment_method: optString(p, 'default_payment_method') ?? null,
    description: optString(p, 'description') ?? null,
    ended_at: null,
    items: {
      object: 'list',
      data: items,
      has_more: false,
      url: `/v1/subscription_items?subscription=${base.id}`,
    },
    latest_invoice: null,
    metadata: mergeMetadata({}, p),
    start_date: start,
    status: trialEnd ? 'trialing' : 'active',
    trial_end: trialEnd,
    trial_start: trialEnd ? start : null,
  };
  const invoice = createInvoiceObject(store, customerId, currency, base.id, {});
  addInvoiceLine(invoice, trialEnd ? 0 : itemsTotal(items), currency, 'Subscription creation');
  payInvoice(invoice);
  store.insert(invoice);
  subscription['latest_invoice'] = invoice.id;
  return store.insert(subscription);
}

function updateSubscription(store: SandboxStore, sub: StripeObject, p: Params): StripeObject {
  if (sub['status'] === 'canceled') {
    throw invalidRequest(`A canceled subscription can only update its cancellation_details and metadata.`, {
      code: 'resource_invalid_state',
    });
  }
  const itemList = sub['items'] as { data: StripeObject[] };
  readItems(p).forEach((input, i) => {
    if (input.id) {
      const existing = itemList.data.find((item) => item.id === input.id);
      if (!existing) throw resourceMissing('subscription_item', input.id, `items[${i}][id]`);
      if (input.deleted) {
        itemList.data = itemList.data.filter((item) => item.id !== input.id);
        return;
      }
      if (input.quantity !== undefined) existing['quantity'] = input.quantity;
      if (input.price || input.price_data)
        existing['price'] = priceObject(input.price, input.price_data, 'usd');
      existing['metadata'] = mergeMetadata(existing['metadata'], { metadata: input.metadata });
    } else {
      itemList.data.push(subscriptionItem(sub.id, input, i, sub['start_date'] as number));
    }
  });
  const cancelAtPeriodEnd = optBool(p, 'cancel_at_period_end');
  if (cancelAtPeriodEnd !== undefined) {
    sub['cancel_at_period_end'] = cancelAtPeriodEnd;
    const firstItem = itemList.data[0];
    sub['cancel_at'] = cancelAtPeriodEnd ? ((firstItem?.['current_period_end'] as number) ?? null) : null;
    sub['canceled_at'] = cancelAtPeriodEnd ? nowSeconds() : null;
  }
  if (p['cancel_at'] !== undefined) sub['cancel_at'] = optInt(p, 'cancel_at') ?? null;
  const details = optObject(p, 'cancellation_details');
  if (details) sub['cancellation_details'] = { ...(sub['cancellation_details'] as object), ...details };
  for (const key of ['description', 'default_payment_method', 'collection_method']) {
    if (p[key] !== undefined) sub[key] = optString(p, key) ?? null;
  }
  sub['metadata'] = mergeMetadata(sub['metadata'], p);
  return store.save(sub);
}

function cancelSubscription(store: SandboxStore, sub: StripeObject, p: Params): StripeObject {
  if (sub['status'] === 'canceled') {
    throw resourceMissing('subscription', sub.id);
  }
  const now = nowSeconds();
  sub['status'] = 'canceled';
  sub['canceled_at'] = now;
  sub['ended_at'] = now;
  const details = optObject(p, 'cancellation_details');
  sub['cancellation_details'] = {
    comment: null,
    feedback: null,
    ...(details ?? {}),
    reason: 'cancellation_requested',
  };
  return store.save(sub);
}

function createInvoiceObject(
  store: SandboxStore,
  customerId: string,
  currency: string,
  subscription: string | null,
  p: Params,
): StripeObject {
  const base = baseObject('in', 'invoice');
  const customer = store.find(customerId);
  return {
    ...base,
    account_country: 'US',
    amount_due: 0,
    amount_paid: 0,
    amount_remaining: 0,
    attempt_count: 0,
    attempted: false,
    auto_advance: optBool(p, 'auto_advance') ?? false,
    collection_method: optString(p, 'collection_method') ?? 'charge_automatically',
    currency,
    customer: customerId,
    customer_email: customer?.['email'] ?? null,
    customer_name: customer?.['name'] ?? null,
    days_until_due: optInt(p, 'days_until_due') ?? null,
    description: optString(p, 'description') ?? null,
    due_date: optInt(p, 'due_date') ?? null,
    ending_balance: null,
    footer: optString(p, 'footer') ?? null,
    hosted_invoice_url: null,
    invoice_pdf: null,
    lines: { object: 'list', data: [], has_more: false, url: `/v1/invoices/${base.id}/lines` },
    metadata: mergeMetadata({}, p),
    number: null,
    paid: false,
    period_end: base.created,
    period_start: base.created,
    starting_balance: 0,
    status: 'draft',
    status_transitions: { finalized_at: null, marked_uncollectible_at: null, paid_at: null, voided_at: null },
    subscription,
    subtotal: 0,
    total: 0,
  };
}

function addInvoiceLine(invoice: StripeObject, amount: number, currency: string, description: string | null) {
  const lines = invoice['lines'] as { data: StripeObject[] };
  lines.data.push({
    id: newId('il'),
    object: 'line_item',
    amount,
    currency,
    description,
    invoice: invoice.id,
    livemode: false,
    metadata: {},
    quantity: 1,
  });
  const total = lines.data.reduce((sum, line) => sum + (line['amount'] as number), 0);
  invoice['subtotal'] = total;
  invoice['total'] = total;
  invoice['amount_due'] = total;
  invoice['amount_remaining'] = total;
}

function finalizeInvoice(invoice: StripeObject): void {
  invoice['status'] = 'open';
  invoice['number'] = `${invoice.id.slice(3, 11).toUpperCase()}-0001`;
  invoice['hosted_invoice_url'] = `https://invoice.stripe.com/i/sandbox/${invoice.id}`;
  (invoice['status_transitions'] as Record<string, unknown>)['finalized_at'] = nowSeconds();
}

function payInvoice(invoice: StripeObject): void {
  if (invoice['status'] === 'draft') finalizeInvoice(invoice);
  invoice['status'] = 'paid';
  invoice['paid'] = true;
  invoice['attempted'] = true;
  invoice['attempt_count'] = (invoice['attempt_count'] as number) + 1;
  invoice['amount_paid'] = invoice['amount_due'];
  invoice['amount_remaining'] = 0;
  (invoice['status_transitions'] as Record<string, unknown>)['paid_at'] = nowSeconds();
}

function invoiceInState(invoice: StripeObject, allowed: string[], message: string): void {
  if (!allowed.includes(invoice['status'] as string)) {
    throw invalidRequest(message.replace('%s', String(invoice['status'])), {
      code: 'invoice_not_editable',
    });
  }
}

export function registerBilling(r: Router): void {
  r.post('/v1/customers', ({ store, params: p }) => createCustomer(store, p));
  r.get('/v1/customers', (ctx) => list(ctx, 'customer', '/v1/customers', ['email']));
  r.get('/v1/customers/:id', ({ store, args }) => {
    const customer = store.get('customer', args[0]!);
    return customer['deleted'] ? { id: customer.id, object: 'customer', deleted: true } : customer;
  });
  r.post('/v1/customers/:id', ({ store, args, params: p }) => {
    const customer = liveCustomer(store, args[0]!, 'id');
    if (p['balance'] !== undefined) customer['balance'] = optInt(p, 'balance', Number.MIN_SAFE_INTEGER) ?? 0;
    if (p['address'] !== undefined) customer['address'] = optObject(p, 'address') ?? null;
    return updateFields(store, customer, p, CUSTOMER_FIELDS);
  });
  r.delete('/v1/customers/:id', ({ store, args }) => {
    const customer = liveCustomer(store, args[0]!, 'id');
    store.save({ id: customer.id, object: 'customer', deleted: true });
    return { id: customer.id, object: 'customer', deleted: true };
  });
  r.post('/v1/customers/:id/balance_transactions', ({ store, args, params: p }) =>
    customerBalanceTransaction(store, args[0]!, p),
  );
  r.get('/v1/customers/:id/balance_transactions', (ctx) => {
    liveCustomer(ctx.store, ctx.args[0]!, 'id');
    return children(
      ctx,
      'customer_balance_transaction',
      'customer',
      `/v1/customers/${ctx.args[0]}/balance_transactions`,
    );
  });
  r.get('/v1/customers/:id/balance_transactions/:txn', ({ store, args }) =>
    child(store, 'customer_balance_transaction', args[1]!, 'customer', args[0]!),
  );
  r.post('/v1/customers/:id/balance_transactions/:txn', ({ store, args, params: p }) =>
    updateFields(store, child(store, 'customer_balance_transaction', args[1]!, 'customer', args[0]!), p, [
      'description',
    ]),
  );

  r.post('/v1/subscriptions', ({ store, params: p }) => createSubscription(store, p));
  r.get('/v1/subscriptions', (ctx) => {
    const q = listQuery(ctx.params);
    const status = optString(ctx.params, 'status');
    q.filters = [];
    // Stripe leaves canceled subscriptions out unless asked for them.
    if (status === undefined) q.filters.push({ field: 'status', value: 'canceled', not: true });
    else if (status !== 'all') q.filters.push({ field: 'status', value: status });
    const customer = optString(ctx.params, 'customer');
    if (customer !== undefined) q.filters.push({ field: 'customer', value: customer });
    return toList('/v1/subscriptions', ctx.store.page('subscription', q));
  });
  r.get('/v1/subscriptions/:id', ({ store, args }) => store.get('subscription', args[0]!));
  r.post('/v1/subscriptions/:id', ({ store, args, params: p }) =>
    updateSubscription(store, store.get('subscription', args[0]!), p),
  );
  r.delete('/v1/subscriptions/:id', ({ store, args, params: p }) =>
    cancelSubscription(store, store.get('subscription', args[0]!), p),
  );
  r.post('/v1/subscriptions/:id/resume', ({ store, args }) => {
    const sub = store.get('subscription', args[0]!);
    if (sub['status'] !== 'paused') {
      throw invalidRequest('Only a paused subscription can be resumed.', { code: 'resource_invalid_state' });
    }
    sub['status'] = 'active';
    return store.save(sub);
  });

  r.post('/v1/invoiceitems', ({ store, params: p }) => {
    const customerId = requireString(p, 'customer');
    liveCustomer(store, customerId, 'customer');
    const currency = requireCurrency(p);
    const quantity = optInt(p, 'quantity', 1) ?? 1;
    const unit = optInt(p, 'unit_amount', Number.MIN_SAFE_INTEGER);
    const amount =
      optInt(p, 'amount', Number.MIN_SAFE_INTEGER) ?? (unit !== undefined ? unit * quantity : undefined);
    if (amount === undefined) throw parameterMissing('amount');
    const invoiceId = optString(p, 'invoice') ?? null;
    const item: StripeObject = {
      ...baseObject('ii', 'invoiceitem'),
      amount,
      currency,
      customer: customerId,
      date: nowSeconds(),
      description: optString(p, 'description') ?? null,
      invoice: invoiceId,
      metadata: mergeMetadata({}, p),
      quantity,
    };
    if (invoiceId) {
      const invoice = store.get('invoice', invoiceId, 'invoice');
      invoiceInState(invoice, ['draft'], 'You can only add invoice items to draft invoices; this one is %s.');
      addInvoiceLine(invoice, amount, currency, item['description'] as string | null);
      store.save(invoice);
    }
    return store.insert(item);
  });
  r.get('/v1/invoiceitems/:id', ({ store, args }) => store.get('invoiceitem', args[0]!));

  r.post('/v1/invoices', ({ store, params: p }) => {
    const customerId = requireString(p, 'customer');
    const customer = liveCustomer(store, customerId, 'customer');
    const currency =
      optString(p, 'currency')?.toLowerCase() ?? (customer['currency'] as string | null) ?? 'usd';
    const invoice = createInvoiceObject(store, customerId, currency, optString(p, 'subscription') ?? null, p);
    return store.insert(invoice);
  });
  r.get('/v1/invoices', (ctx) =>
    list(ctx, 'invoice', '/v1/invoices', ['customer', 'subscription', 'status']),
  );
  r.get('/v1/invoices/:id', ({ store, args }) => store.get('invoice', args[0]!));
  r.post('/v1/invoices/:id', ({ store, args, params: p }) => {
    const invoice = store.get('invoice', args[0]!);
    const draftOnly = ['auto_advance', 'collection_method', 'days_until_due', 'due_date'].filter(
      (k) => p[k] !== undefined,
    );
    if (draftOnly.length > 0 && invoice['status'] !== 'draft') {
      invoiceInState(
        invoice,
        ['draft'],
        `You can only update ${draftOnly[0]} on draft invoices; this one is %s.`,
      );
    }
    if (p['auto_advance'] !== undefined) invoice['auto_advance'] = optBool(p, 'auto_advance');
    for (const key of ['days_until_due', 'due_date']) {
      if (p[key] !== undefined) invoice[key] = optInt(p, key) ?? null;
    }
    return updateFields(store, invoice, p, ['description', 'footer', 'collection_method']);
  });
  r.delete('/v1/invoices/:id', ({ store, args }) => {
    const invoice = store.get('invoice', args[0]!);
    invoiceInState(invoice, ['draft'], 'You can only delete draft invoices; this one is %s.');
    store.save({ id: invoice.id, object: 'invoice', deleted: true });
    return { id: invoice.id, object: 'invoice', deleted: true };
  });
  r.post('/v1/invoices/:id/finalize', ({ store, args, params: p }) => {
    const invoice = store.get('invoice', args[0]!);
    invoiceInState(
      invoice,
      ['draft'],
      "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
    );
    if (p['auto_advance'] !== undefined) invoice['auto_advance'] = optBool(p, 'auto_advance');
    finalizeInvoice(invoice);
    return store.save(invoice);
  });
  r.post('/v1/invoices/:id/pay', ({ store, args }) => {
    const invoice = store.get('invoice', args[0]!);
    if (invoice['status'] === 'paid') {
      throw invalidRequest('Invoice is already paid', { code: 'invoice_already_paid' });
    }
    invoiceInState(invoice, ['draft', 'open', 'uncollectible'], 'You cannot pay an invoice with status %s.');
    payInvoice(invoice);
    return store.save(invoice);
  });
  r.post('/v1/invoices/:id/void', ({ store, args }) => {
    const invoice = store.get('invoice', args[0]!);
    invoiceInState(
      invoice,
      ['open', 'uncollectible'],
      'You can only pass in open or uncollectible invoices to this endpoint; this one is %s.',
    );
    invoice['status'] = 'void';
    (invoice['status_transitions'] as Record<string, unknown>)['voided_at'] = nowSeconds();
    return store.save(invoice);
  });
  r.post('/v1/invoices/:id/mark_uncollectible', ({ store, args }) => {
    const invoice = store.get('invoice', args[0]!);
    invoiceInState(invoice, ['open'], 'You can only mark open invoices as uncollectible; this one is %s.');
    invoice['status'] = 'uncollectible';
    (invoice['status_transitions'] as Record<string, unknown>)['marked_uncollectible_at'] = nowSeconds();
    return store.save(invoice);
  });
  r.get('/v1/invoices/:id/lines', ({ store, args }) => {
    const invoice = store.get('invoice', args[0]!);
    return invoice['lines'];
  });
}
