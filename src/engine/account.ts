// Whose Stripe account a call acts on, as the policy, the velocity windows and the idempotency scope read it.
import type { AccountScope } from '../stripe/lookups.ts';
import type { Submission } from './types.ts';

/** The account a call acts on: Stripe-Context's (which Stripe lets supersede Stripe-Account), else Stripe-Account. */
export function effectiveAccount(stripeAccount: string | null, stripeContext: string | null): string | null {
  if (stripeContext) {
    const accounts = stripeContext.match(/acct_[A-Za-z0-9]+/g);
    // A context that names no account is still not the platform: policies see it as it is.
    return accounts?.at(-1) ?? stripeContext;
  }
  return stripeAccount;
}

export function onAccountOf(sub: Pick<Submission, 'stripeAccount' | 'stripeContext'>): string | null {
  return effectiveAccount(sub.stripeAccount, sub.stripeContext ?? null);
}

export function scopeOf(sub: Pick<Submission, 'stripeAccount' | 'stripeContext'>): AccountScope {
  return { stripeAccount: sub.stripeAccount, stripeContext: sub.stripeContext ?? null };
}
