import type { Params, ParamValue } from './params.ts';

/**
 * What Stripe's definition cannot say: what an operation means for money. The generated table
 * (routes.generated.ts) gives every write operation, its amount fields, currency field and metadata; an
 * operation not named here is `<noun>.<verb>` from its path, with those fields as they are.
 */

/** `none`: the endpoint takes no currency (it comes from the charge or invoice). */
export type CurrencyMode = 'none' | 'optional' | 'required' | 'unless_source';

export interface Refined {
  kind: string;
  irreversible: boolean;
}

export interface Semantics {
  /** When Stripe's name for the object is not the one derived from the path. */
  kind?: string;
  /** Replaces the generated amount fields (first present wins); each must be in the params type. */
  amount?: readonly string[];
  /** Stripe refuses the call without it. */
  amountRequired?: boolean;
  currency?: CurrencyMode;
  /** No API call undoes it. A delete always is. */
  irreversible?: boolean;
  /** A POST without side effects, such as a preview. */
  read?: boolean;
  /** For endpoints whose effect depends on a parameter (an update that cancels, an update that submits). */
  refine?: (params: Params) => Refined;
  /** Set on the money writes: why, in one line (it moves money, changes where it goes, or is final). */
  money?: string;
}

/** A parameter Stripe reads as true: anything but absent, empty or false, so doubt classifies as the riskier kind. */
function flagged(value: ParamValue | undefined): boolean {
  return value !== undefined && value !== null && value !== '' && value !== false && value !== 'false';
}

function subscriptionUpdate(params: Params): Refined {
  const cancelAt = params['cancel_at'];
  const cancels =
    flagged(params['cancel_at_period_end']) ||
    (cancelAt !== undefined && cancelAt !== null && cancelAt !== '');
  // Scheduled cancellation can still be undone before it takes effect.
  return { kind: cancels ? 'subscription.cancel' : 'subscription.update', irreversible: false };
}

function disputeUpdate(params: Params): Refined {
  // `submit=true` makes an update final: Stripe sends the evidence to the bank and it can no longer change.
  return flagged(params['submit'])
    ? { kind: 'dispute.submit', irreversible: true }
    : { kind: 'dispute.update', irreversible: false };
}

function creditNoteCreate(params: Params): Refined {
  const refundAmount = params['refund_amount'];
  // A credit note that refunds money cannot take the refund back when voided.
  const refunds =
    (flagged(refundAmount) && refundAmount !== '0' && refundAmount !== 0) ||
    (Object.hasOwn(params, 'refunds') && params['refunds'] !== undefined && params['refunds'] !== null);
  return { kind: 'credit_note.create', irreversible: refunds };
}

// Stripe refuses these without an amount and a currency.
const requiresAmount = { amountRequired: true, currency: 'required' } as const;

/** Keyed `METHOD /path` with `*` for ids, as in the generated table (the route-table test checks each key). */
export const OVERLAY: Readonly<Record<string, Semantics>> = {
  // --- money, as the hand-kept table had it ---
  'POST /v1/refunds': {
    // Refunds of a charge are in the charge's currency; only customer-balance refunds name one.
    currency: 'unless_source',
    irreversible: true,
    money: 'sends money back to the customer',
  },
  'POST /v1/payouts': { ...requiresAmount, irreversible: true, money: 'sends the balance to a bank account' },
  'POST /v1/payouts/*/reverse': { irreversible: true, money: 'pulls a paid-out amount back' },
  'POST /v1/transfers': { currency: 'required', money: 'moves balance to a connected account' },
  'POST /v1/transfers/*/reversals': { irreversible: true, money: 'takes a transfer back from the account' },
  'POST /v1/application_fees/*/refunds': { irreversible: true, money: 'gives a platform fee back' },
  'POST /v1/charges': { money: 'charges a payment method' },
  'POST /v1/charges/*/capture': { money: 'captures an authorised charge' },
  'POST /v1/payment_intents': { ...requiresAmount, money: 'collects a payment' },
  'POST /v1/payment_intents/*/confirm': { money: 'charges the payment method' },
  'POST /v1/payment_intents/*/capture': { money: 'captures an authorised payment' },
  'POST /v1/payment_intents/*/increment_authorization': {
    amountRequired: true,
    money: 'holds more on the card',
  },
  'POST /v1/payment_intents/*/cancel': { irreversible: true },
  'POST /v1/payment_intents/*/apply_customer_balance': { money: "pays from the customer's cash balance" },
  'POST /v1/subscriptions/*': { refine: subscriptionUpdate },
  'DELETE /v1/subscriptions/*': { kind: 'subscription.cancel' },
  'POST /v1/invoices/create_preview': { kind: 'invoice.preview', read: true },
  'POST /v1/invoices/*/pay': { money: 'charges the customer for the invoice' },
  'POST /v1/invoices/*/void': { irreversible: true },
  // A finalized invoice cannot return to draft.
  'POST /v1/invoices/*/finalize': { irreversible: true },
  'POST /v1/credit_notes': { refine: creditNoteCreate, money: 'credits or refunds part of an invoice' },
  'POST /v1/credit_notes/*/void': { irreversible: true },
  'POST /v1/customers/*/balance_transactions': {
    ...requiresAmount,
    money: 'changes what the customer owes or is owed',
  },
  'POST /v1/disputes/*': { refine: disputeUpdate },
  // Closing concedes the dispute.
  'POST /v1/disputes/*/close': { irreversible: true, money: 'concedes the disputed amount' },
  'POST /v1/topups': { ...requiresAmount, money: 'pulls money from a bank into the balance' },
  'POST /v1/treasury/outbound_payments': {
    ...requiresAmount,
    irreversible: true,
    money: 'sends money from a financial account to a third party',
  },
  'POST /v1/treasury/outbound_transfers': {
    ...requiresAmount,
    money: "sends money from a financial account to the account holder's bank",
  },
  'POST /v1/treasury/inbound_transfers': {
    ...requiresAmount,
    money: 'debits a bank account into a financial account',
  },
  'POST /v1/setup_intents/*/cancel': { irreversible: true },
  'POST /v1/checkout/sessions/*/expire': { irreversible: true },
  'POST /v2/money_management/outbound_payments': {
    ...requiresAmount,
    irreversible: true,
    money: 'sends money from a financial account to a third party',
  },

  // --- money writes the hand-kept table did not name (each was `stripe.write`) ---
  'POST /v1/terminal/readers/*/refund_payment': {
    irreversible: true,
    money: 'refunds a card-present payment',
  },
  'POST /v1/terminal/readers/*/process_payment_intent': { money: 'charges the card on the reader' },
  'POST /v1/terminal/readers/*/confirm_payment_intent': { money: 'charges the card collected on the reader' },
  'POST /v1/issuing/authorizations/*/approve': {
    irreversible: true,
    money: 'lets a card spend the amount; an approval cannot be withdrawn',
  },
  'POST /v1/issuing/authorizations/*/decline': { irreversible: true, money: 'refuses a card spend for good' },
  'POST /v1/treasury/credit_reversals': { irreversible: true, money: 'sends a received credit back' },
  'POST /v1/treasury/debit_reversals': { irreversible: true, money: 'pulls a received debit back' },
  'POST /v1/treasury/financial_accounts/*/close': { irreversible: true, money: 'closes a financial account' },
  'POST /v1/climate/orders': { money: 'buys carbon removal from the balance' },
  'POST /v1/accounts/*/external_accounts': { irreversible: true, money: 'changes where payouts go' },
  'POST /v1/accounts/*/external_accounts/*': { irreversible: true, money: 'changes where payouts go' },
  'DELETE /v1/accounts/*/external_accounts/*': { irreversible: true, money: 'changes where payouts go' },
  'POST /v1/accounts/*/reject': { irreversible: true, money: 'rejects a connected account for good' },
  'POST /v1/reviews/*/approve': { irreversible: true, money: 'releases a payment Radar held' },
  'POST /v1/issuing/disputes/*/submit': {
    irreversible: true,
    money: 'submits a card dispute; it cannot change after',
  },
  'POST /v1/invoices/*/attach_payment': { irreversible: true, money: 'settles an invoice with a payment' },
  'POST /v1/billing/credit_grants/*/void': { irreversible: true, money: "voids a customer's billing credit" },
  'POST /v2/money_management/payout_intents': {
    ...requiresAmount,
    irreversible: true,
    money: 'sends money to a recipient',
  },
  'POST /v2/money_management/payout_intents/*/confirm': { irreversible: true, money: 'releases a payout' },
  'POST /v2/money_management/inbound_transfers': {
    ...requiresAmount,
    money: 'debits a bank account into a financial account',
  },
  'POST /v2/money_management/recipient_verifications/*/acknowledge': {
    irreversible: true,
    money: 'lets a payout go to a recipient whose name did not match',
  },
  'POST /v2/core/accounts/*/close': { irreversible: true, money: 'closes an account' },
  'POST /v2/core/vault/us_bank_accounts': {
    irreversible: true,
    money: 'adds a bank account money can go to',
  },
  'POST /v2/core/vault/us_bank_accounts/*': {
    irreversible: true,
    money: 'changes a bank account money goes to',
  },
  'POST /v2/core/vault/gb_bank_accounts': {
    irreversible: true,
    money: 'adds a bank account money can go to',
  },
  // The client names this method after its collection, so the derived verb would be wrong.
  'POST /v2/test_helpers/money_management/recipient_verifications': {
    kind: 'v2.test_helpers.money_management.recipient_verification.create',
  },
  // Not money, but final.
  'POST /v1/identity/verification_sessions/*/redact': { irreversible: true },
  'POST /v1/financial_connections/accounts/*/disconnect': { irreversible: true },
};

/** Paths Stripe still serves that the pinned client no longer calls, each like a generated endpoint. */
export const LEGACY: Readonly<Record<string, Semantics & { like: string; kind: string }>> = {
  'POST /v1/charges/*/refunds': {
    like: 'POST /v1/refunds',
    kind: 'refund.create',
    currency: 'none',
    irreversible: true,
    money: 'sends money back to the customer',
  },
  // The singular form.
  'POST /v1/charges/*/refund': {
    like: 'POST /v1/refunds',
    kind: 'refund.create',
    currency: 'none',
    irreversible: true,
    money: 'sends money back to the customer',
  },
  'POST /v1/charges/*/refunds/*': { like: 'POST /v1/refunds/*', kind: 'refund.update' },
  'POST /v1/charges/*/dispute': {
    like: 'POST /v1/disputes/*',
    kind: 'dispute.update',
    refine: disputeUpdate,
  },
  'POST /v1/charges/*/dispute/close': {
    like: 'POST /v1/disputes/*/close',
    kind: 'dispute.close',
    irreversible: true,
    money: 'concedes the disputed amount',
  },
};

/**
 * Stripe events that record money moving (or a customer's standing changing for good), with the action kind that
 * would have made them through Airlock. One that Airlock did not make is an outside event (docs/stripe-events.md).
 * Each names the creation of the movement only, so one refund is one event however many updates follow.
 */
export const MONEY_EVENTS = {
  'refund.created': 'refund.create',
  'payout.created': 'payout.create',
  'transfer.created': 'transfer.create',
  'transfer.reversed': 'transfer_reversal.create',
  'charge.captured': 'charge.capture',
  'customer.subscription.deleted': 'subscription.cancel',
  'customer.deleted': 'customer.delete',
  'application_fee.refunded': 'application_fee_refund.create',
  'v2.money_management.outbound_payment.created': 'v2.outbound_payment.create',
  'v2.money_management.outbound_transfer.created': 'v2.outbound_transfer.create',
} as const satisfies Record<string, string>;

export type MoneyEventType = keyof typeof MONEY_EVENTS;

export function isMoneyEvent(type: string): type is MoneyEventType {
  return Object.hasOwn(MONEY_EVENTS, type);
}
