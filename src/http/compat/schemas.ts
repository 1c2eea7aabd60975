// The compatible shapes' request schemas, written once: their routes validate with them, the OpenAPI document is
// generated from them and the SDK's helpers take their types from them.
import { z } from 'zod';

export const CHEQPOINT_BASE = '/api/cheqpoint/v1';

/**
 * Cheqpoint's action names and the Airlock kind each one is. A name not listed is refused rather than guessed, so
 * no spelling can reach the policy as a kind its rules do not know.
 */
export const CHEQPOINT_ACTIONS = {
  issue_refund: 'refund.create',
  create_payout: 'payout.create',
  cancel_payout: 'payout.cancel',
  create_transfer: 'transfer.create',
  reverse_transfer: 'transfer_reversal.create',
  cancel_subscription: 'subscription.cancel',
  update_subscription: 'subscription.update',
  delete_customer: 'customer.delete',
  capture_charge: 'charge.capture',
  create_payment_intent: 'payment_intent.create',
  void_invoice: 'invoice.void',
} as const satisfies Record<string, string>;
export type CheqpointAction = keyof typeof CHEQPOINT_ACTIONS;

const ACTION_NAMES = Object.keys(CHEQPOINT_ACTIONS) as [CheqpointAction, ...CheqpointAction[]];
const MAX_TIMEOUT_MS = 300_000;
export const DEFAULT_TIMEOUT_MS = 30_000;

const CheqpointDetails = z
  .object({
    charge_id: z.string().min(1).max(255).optional(),
    // Stripe's minor units, whatever the currency (yen for JPY): what the policy reads as :amount:.
    amount_cents: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    currency: z
      .string()
      .regex(/^[A-Za-z]{3}$/, 'a three-letter ISO currency code, such as USD or usd')
      .optional(),
    reason: z.string().max(500).optional(),
    customer_id: z.string().min(1).max(255).optional(),
    metadata: z.record(z.string().max(40), z.string().max(500)).optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    // An amount without its currency cannot be valued in USD, and a rule on :amount_in_usd: would not see it.
    if (d.amount_cents !== undefined && d.currency === undefined)
      ctx.addIssue({ code: 'custom', path: ['currency'], message: 'required with amount_cents' });
  });

const cheqpointFields = {
  action: z.enum(ACTION_NAMES, {
    error: () => `one of ${ACTION_NAMES.join(', ')}`,
  }),
  summary: z.string().max(500).optional(),
  details: CheqpointDetails,
  justification: z.string().max(2000).optional(),
  idempotencyKey: z.string().min(1).max(255).optional(),
};

/** `requestSync`: answers once decided, or `pending` after `timeoutMs`. */
export const CheqpointSyncRequest = z
  .object({
    ...cheqpointFields,
    timeoutMs: z.number().int().min(0).max(MAX_TIMEOUT_MS).optional(),
    callbackUrl: z.string().min(1).max(2048).optional(),
  })
  .strict();
export type CheqpointSyncRequest = z.input<typeof CheqpointSyncRequest>;

/** `requestAsync`: answers at once; the final decision is POSTed to `callbackUrl`. */
export const CheqpointAsyncRequest = z
  .object({ ...cheqpointFields, callbackUrl: z.string().min(1).max(2048) })
  .strict();
export type CheqpointAsyncRequest = z.input<typeof CheqpointAsyncRequest>;

export const CheqpointStatusQuery = z
  .object({ timeoutMs: z.coerce.number().int().min(0).max(MAX_TIMEOUT_MS).optional() })
  .strict();

export const SAFEFETCH_BASE = '/api/safefetch/v1';

// At most 194 characters, so that `email:` and the address fit the actions API's 200 per notify entry.
const email = z
  .string()
  .min(3)
  .max(194)
  .regex(/^[^\s@]+@[^\s@]+$/, 'an email address');

export const SafeFetchRequest = z
  .object({
    url: z.string().min(1).max(2048),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).optional(),
    headers: z.record(z.string().min(1).max(100), z.string().max(4096)).optional(),
    body: z.unknown().optional(),
    approve: z.boolean().optional(),
    sync: z.boolean().optional(),
    notify: z
      .object({ email: z.union([email, z.array(email).min(1).max(20)]) })
      .strict()
      .optional(),
    callback: z.string().min(1).max(2048).optional(),
    idempotency_key: z.string().min(1).max(255).optional(),
  })
  .strict();
export type SafeFetchRequest = z.input<typeof SafeFetchRequest>;

/** SafeFetch's approve: a note and, for a call with an amount, a lower one (`modified_details.amount`, minor units). */
export const SafeFetchApproveBody = z
  .object({
    note: z.string().max(2000).optional(),
    modified_details: z
      .object({ amount: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) })
      .strict()
      .optional(),
  })
  .strict();
export type SafeFetchApproveBody = z.input<typeof SafeFetchApproveBody>;
