import { StripeApiError } from './errors.ts';

const ACCOUNT_ID = /^acct_[A-Za-z0-9]+$/;

/**
 * The account a request acts on, or null for the platform (the API key's own account). `Stripe-Context` supersedes
 * `Stripe-Account`, as Stripe documents; its value is a path of account ids from the key's account down
 * (`acct_1/acct_1a`), and the request acts on the last one. Any well-formed `acct_` id counts as connected: the
 * sandbox keeps no registry of accounts. A malformed one is refused as Stripe refuses an account the key cannot reach.
 */
export function actingAccount(
  stripeAccount: string | null,
  stripeContext: string | null,
  redactedKey: string,
): string | null {
  const header = stripeContext ?? stripeAccount;
  if (header === null) return null;
  const segments = stripeContext === null ? [header] : header.split('/');
  for (const segment of segments) {
    if (!ACCOUNT_ID.test(segment)) {
      throw new StripeApiError(
        403,
        'invalid_request_error',
        `The provided key '${redactedKey}' does not have access to account '${header}' (or that account does not exist). Application access may have been revoked.`,
        { code: 'account_invalid', stored: false },
      );
    }
  }
  return segments.at(-1) ?? null;
}
