import { newId, nowSeconds } from './ids.ts';
import type { SandboxStore, StripeObject } from './store.ts';

/** The fields every Stripe object shares. */
export function baseObject(prefix: string, object: string): StripeObject & { created: number } {
  return { id: newId(prefix), object, created: nowSeconds(), livemode: false };
}

export type BalanceTransactionType =
  | 'charge'
  | 'refund'
  | 'refund_failure'
  | 'payout'
  | 'payout_cancel'
  | 'payout_failure'
  | 'transfer'
  | 'transfer_refund'
  | 'topup'
  | 'application_fee_refund'
  | 'adjustment';

/** Records money moving through the account balance, and returns the balance transaction's id. */
export function recordBalance(
  store: SandboxStore,
  type: BalanceTransactionType,
  amount: number,
  currency: string,
  source: string,
): string {
  const txn = baseObject('txn', 'balance_transaction');
  store.insert({
    ...txn,
    amount,
    available_on: (txn.created as number) + 2 * 86_400,
    currency,
    description: null,
    exchange_rate: null,
    fee: 0,
    fee_details: [],
    net: amount,
    reporting_category: type,
    source,
    status: 'available',
    type,
  });
  return txn.id;
}
