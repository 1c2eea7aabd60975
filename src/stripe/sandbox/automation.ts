import { invalidRequest } from './errors.ts';
import { recordBalance } from './objects.ts';
import type { SandboxStore, StripeObject } from './store.ts';

/** Stripe's reasons a refund fails after it was accepted. */
export const REFUND_FAILURE_REASONS = [
  'charge_for_pending_refund_disputed',
  'declined',
  'expired_or_canceled_card',
  'insufficient_funds',
  'lost_or_stolen_card',
  'merchant_request',
  'unknown',
] as const;

/** Stripe's payout failure codes, with the messages it gives. */
export const PAYOUT_FAILURES: Record<string, string> = {
  account_closed: 'The bank account has been closed.',
  account_frozen: 'The bank account has been frozen.',
  bank_account_restricted:
    'The bank account has restrictions on either the type or number of payouts allowed.',
  could_not_process: 'The bank could not process this payout.',
  insufficient_funds: 'Your Stripe account has insufficient funds to cover the payout.',
  invalid_account_number: 'The routing number seems correct, but the account number is invalid.',
  no_account: 'The bank account details on file are probably incorrect.',
};

/** Whether refunds of this charge fail after they succeed: Stripe's test card 4000 0000 0000 5126 (refundFail). */
export function refundsFailLater(charge: StripeObject | undefined): boolean {
  const details = charge?.['payment_method_details'] as { card?: { last4?: string } } | undefined;
  return details?.card?.last4 === '5126';
}

/** A refund that was accepted fails: its amount returns to the charge's refundable remainder and the balance. */
export function failRefund(store: SandboxStore, refund: StripeObject, reason: string): StripeObject {
  if (refund['status'] !== 'succeeded' && refund['status'] !== 'pending') {
    throw invalidRequest(
      `Refund ${refund.id} has a status of ${refund['status']}: only a succeeded or pending refund can fail.`,
      {
        code: 'refund_cannot_fail',
      },
    );
  }
  const amount = refund['amount'] as number;
  const charge = store.find(refund['charge'] as string);
  if (charge) {
    charge['amount_refunded'] = Math.max(0, (charge['amount_refunded'] as number) - amount);
    charge['refunded'] = false;
    store.save(charge);
  }
  refund['failure_balance_transaction'] = refund['balance_transaction']
    ? recordBalance(store, 'refund_failure', amount, refund['currency'] as string, refund.id)
    : null;
  refund['failure_reason'] = reason;
  refund['status'] = 'failed';
  return store.save(refund);
}

/** A pending payout arrives. */
export function payPayout(store: SandboxStore, payout: StripeObject): StripeObject {
  if (payout['status'] !== 'pending' && payout['status'] !== 'in_transit') {
    throw invalidRequest(
      `Payout ${payout.id} has a status of ${payout['status']}: only a pending payout can be paid.`,
      {
        code: 'payout_not_pending',
      },
    );
  }
  payout['status'] = 'paid';
  return store.save(payout);
}

/** A payout fails, pending or already paid (banks return paid payouts days later): the amount returns. */
export function failPayout(store: SandboxStore, payout: StripeObject, code: string): StripeObject {
  if (!['pending', 'in_transit', 'paid'].includes(payout['status'] as string)) {
    throw invalidRequest(`Payout ${payout.id} has a status of ${payout['status']}: it cannot fail.`, {
      code: 'payout_cannot_fail',
    });
  }
  payout['failure_balance_transaction'] = recordBalance(
    store,
    'payout_failure',
    payout['amount'] as number,
    payout['currency'] as string,
    payout.id,
  );
  payout['failure_code'] = code;
  payout['failure_message'] = PAYOUT_FAILURES[code] ?? 'The payout failed.';
  payout['status'] = 'failed';
  return store.save(payout);
}
