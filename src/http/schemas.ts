// Request schemas for the /api surface, written once: the server validates with them, the SDK takes its types from
// them, and the OpenAPI document is generated from them.
import { z } from 'zod';

const money = {
  amount: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, 'a three-letter ISO currency code')
    .transform((c) => c.toLowerCase())
    .optional(),
};

const kind = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/, 'a dotted lower-case name such as refund.create')
  .max(64);

export const CreateActionRequest = z
  .object({
    url: z.string().min(1).max(2048),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
    headers: z.record(z.string().min(1).max(100), z.string().max(4096)).optional(),
    body: z.unknown().optional(),
    // Claims only: the operator's declared route and the body give the facts policy decides on.
    kind: kind.optional().describe("a claim; on a declared route it must be the route's kind"),
    amount: money.amount.describe("a claim; on a declared route it must equal the body's amount"),
    currency: money.currency.describe("a claim; on a declared route it must equal the body's currency"),
    approve: z.boolean().optional(),
    notify: z.array(z.string().min(1).max(200)).max(20).optional(),
    callback: z.string().min(1).max(2048).optional(),
    idempotency_key: z.string().min(1).max(255).optional(),
    wait: z.number().int().min(0).max(300).optional(),
    summary: z.string().max(500).optional(),
  })
  .strict();
export type CreateActionRequest = z.input<typeof CreateActionRequest>;

export const DecisionIntent = z
  .object({
    kind,
    ...money,
    metadata: z.record(z.string().max(40), z.string().max(500)).optional(),
  })
  .strict();

export const CreateDecisionRequest = z
  .object({
    intent: DecisionIntent,
    context: z.record(z.string().max(100), z.unknown()).optional(),
    summary: z.string().max(500).optional(),
    justification: z.string().max(2000).optional(),
    idempotency_key: z.string().min(1).max(255).optional(),
    callback_url: z.string().min(1).max(2048).optional(),
    wait: z.number().int().min(0).max(300).optional(),
  })
  .strict();
export type CreateDecisionRequest = z.input<typeof CreateDecisionRequest>;

export const ApprovalChangesSchema = z
  .object({
    amount: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    reason: z.string().max(500).optional(),
    metadata: z.record(z.string().max(40), z.string().max(500)).optional(),
  })
  .strict();

export const DecideRequest = z
  .object({ note: z.string().max(2000).optional(), changes: ApprovalChangesSchema.optional() })
  .strict();
export type DecideRequest = z.input<typeof DecideRequest>;

export const RejectRequest = z.object({ note: z.string().max(2000).optional() }).strict();
export type RejectRequest = z.input<typeof RejectRequest>;

export const WaitQuery = z.object({ wait: z.coerce.number().int().min(0).max(300).optional() }).strict();

// The admin API (admin tokens only): the kill switch and key revocation, as `airlock freeze` and friends.
const agentName = z.string().min(1).max(200);

export const FreezeRequest = z
  .object({
    agent: agentName.optional().describe('freeze only this agent; without it, every agent'),
    reason: z.string().max(500).optional(),
  })
  .strict();
export type FreezeRequest = z.input<typeof FreezeRequest>;

export const UnfreezeRequest = z
  .object({
    agent: agentName.optional().describe('lift this agent’s freeze; without it, the freeze on everyone'),
  })
  .strict();
export type UnfreezeRequest = z.input<typeof UnfreezeRequest>;

export type { ActionObject, DecisionObject } from '../engine/view.ts';
