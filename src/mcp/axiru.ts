// Axiru's MCP tool name and payload, so an agent configured for Axiru keeps its tool call. It posts the payload to
// Airlock's Axiru-shaped decisions route, which validates it and answers in Axiru's words.
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { AirlockCall, AirlockResponse } from './call.ts';

export const AXIRU_TOOL_NAME = 'axiru.decisions.create';

// Loose on purpose: the route checks every field and names the one at fault in Axiru's `field_errors`, which an
// agent reads; the schema here tells the model what to send.
const input = {
  intent: z
    .object({
      kind: z
        .string()
        .max(64)
        .describe(
          'refund, credit, adjustment, payout, transfer, app_fee_refund or dispute (what you intend to do)',
        ),
      amount_cents: z.number().describe('Amount in cents (the smallest currency unit)'),
      currency: z.string().max(3).describe('Three-letter ISO currency code, e.g. USD'),
      stripe_connection_id: z.string().max(255).optional(),
      metadata: z.record(z.string(), z.unknown()).optional().describe('e.g. {"order_id": "ord_123"}'),
    })
    .passthrough(),
  context: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('customer_id, customer_tenure_days, reason_code: facts for the policy and the reviewer'),
  idempotency_key: z
    .string()
    .max(255)
    .optional()
    .describe('The same key returns the same decision instead of asking twice'),
};

function result(text: string, structured: Record<string, unknown>, isError: boolean): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured, isError };
}

const NEXT: Record<string, string> = {
  allow: 'You may proceed.',
  review:
    'Held for a person: do NOT proceed and do not ask again; the decision will be approved or rejected by a reviewer.',
  deny: 'Denied: do NOT proceed and do not retry.',
};

/** Axiru's answer, with one line an agent can act on first; an Axiru error names its fields. */
export function axiruResult(res: AirlockResponse): CallToolResult {
  const body = (res.body ?? {}) as Record<string, unknown>;
  if (res.status >= 200 && res.status < 300) {
    const outcome = String(body['outcome']);
    const advisory =
      body['advisory'] === true ? ` (advisory: an enforcing policy would ${body['advisory_outcome']})` : '';
    return result(
      `Decision ${body['decision_id']}: ${outcome}${advisory}. ${NEXT[outcome] ?? ''}\n${JSON.stringify(body, null, 2)}`,
      body,
      false,
    );
  }
  const fields = body['field_errors'] ? ` Fields: ${JSON.stringify(body['field_errors'])}` : '';
  return result(`Error ${res.status} ${body['error'] ?? ''}: ${body['message'] ?? ''}${fields}`, body, true);
}

const annotations: ToolAnnotations = { readOnlyHint: false, destructiveHint: false, idempotentHint: true };

export const AXIRU_TOOL = {
  name: AXIRU_TOOL_NAME,
  title: 'Axiru: create a decision',
  description:
    "Axiru's decision call, answered by Airlock: ask whether an intended refund, credit, adjustment, payout, " +
    'transfer, app-fee refund or dispute may go ahead before doing it. Answers allow, review (a person decides) ' +
    'or deny. When a reviewer approves with modified_details, use those over your own payload.',
  input,
  annotations,
  async run(args: z.infer<z.ZodObject<typeof input>>, call: AirlockCall): Promise<CallToolResult> {
    return axiruResult(await call({ method: 'POST', path: '/api/v1/decisions', json: args }));
  },
};
