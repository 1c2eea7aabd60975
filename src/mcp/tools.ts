import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { Params } from '../stripe/params.ts';
import { AXIRU_TOOL } from './axiru.ts';
import { type AirlockCall, type AirlockRequest, CallError } from './call.ts';
import { apiResult, stripeResult } from './results.ts';

export const MCP_SERVER_NAME = 'airlock';
export const MCP_SERVER_VERSION = '0.1.0';
/** Most MCP clients give up on a request after 60 s, so waits default well below that. */
const DEFAULT_WAIT_SECONDS = 30;
const MAX_WAIT_SECONDS = 300;

const id = (prefix: string, what: string) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}_[A-Za-z0-9_]+$`), `must be a ${what} id (${prefix}_…)`)
    .max(255);
const amount = z.number().int().positive().describe('Amount in the smallest currency unit (cents for USD)');
const currency = z
  .string()
  .regex(/^[a-zA-Z]{3}$/, 'must be a three-letter ISO currency code')
  .describe('Three-letter ISO currency code, e.g. usd');
const metadata = z.record(z.string(), z.string().max(500)).optional().describe('Key-value metadata');
const idempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .optional()
  .describe(
    'Optional. The same key returns the same action instead of doing it twice: reuse it if you are unsure a call went through.',
  );
const limit = z.number().int().min(1).max(100).optional().describe('How many to return (1-100)');
const actionId = id('act', 'Airlock action').describe('The Airlock action id (act_…)');

type Shape = z.ZodRawShape;
type Args<S extends Shape> = z.infer<z.ZodObject<S>>;

interface ToolSpec<S extends Shape> {
  name: string;
  title: string;
  description: string;
  input: S;
  annotations: ToolAnnotations;
  run(args: Args<S>, call: AirlockCall): Promise<CallToolResult>;
}

function tool<S extends Shape>(spec: ToolSpec<S>): ToolSpec<S> {
  return spec;
}

/** Drops undefined fields and the tool-only ones, leaving what Stripe should receive. */
function stripeParams(args: Record<string, unknown>, omit: string[] = []): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined || k === 'idempotency_key' || omit.includes(k)) continue;
    out[k] = v as Params[string];
  }
  return out;
}

async function stripe(
  call: AirlockCall,
  method: AirlockRequest['method'],
  path: string,
  args: Record<string, unknown>,
  omit: string[] = [],
): Promise<CallToolResult> {
  const key = typeof args['idempotency_key'] === 'string' ? args['idempotency_key'] : undefined;
  const res = await call({
    method,
    path,
    params: stripeParams(args, omit),
    ...(key ? { idempotencyKey: key } : {}),
  });
  return stripeResult(res);
}

const WRITE: ToolAnnotations = { readOnlyHint: false, destructiveHint: true, openWorldHint: true };
const READ: ToolAnnotations = { readOnlyHint: true, openWorldHint: true };
const HELD_NOTE =
  ' Goes through Airlock: it may be held for a person\'s approval, in which case the result says "HELD" with an action id; do not retry then, call wait_for_action.';

export const TOOLS = [
  tool({
    name: 'create_refund',
    title: 'Create refund',
    description: `Refund a payment (by payment_intent or charge), fully or partly.${HELD_NOTE}`,
    input: {
      payment_intent: id('pi', 'PaymentIntent').optional().describe('The PaymentIntent to refund'),
      charge: id('ch', 'Charge').optional().describe('The Charge to refund (instead of payment_intent)'),
      amount: amount.optional().describe('Amount to refund in cents; the whole remainder when omitted'),
      reason: z.enum(['duplicate', 'fraudulent', 'requested_by_customer']).optional(),
      metadata,
      idempotency_key: idempotencyKey,
    },
    annotations: WRITE,
    async run(args, call) {
      if (!args.payment_intent === !args.charge) {
        throw new ToolInputError('payment_intent', 'give exactly one of payment_intent or charge');
      }
      return stripe(call, 'POST', '/v1/refunds', args);
    },
  }),
  tool({
    name: 'create_payout',
    title: 'Create payout',
    description: `Pay out funds from the Stripe balance to a bank account or card.${HELD_NOTE}`,
    input: {
      amount,
      currency,
      description: z.string().max(1000).optional(),
      destination: z
        .string()
        .max(255)
        .optional()
        .describe('Bank account or card id; the default when omitted'),
      method: z.enum(['standard', 'instant']).optional(),
      statement_descriptor: z.string().max(22).optional(),
      metadata,
      idempotency_key: idempotencyKey,
    },
    annotations: WRITE,
    run: (args, call) => stripe(call, 'POST', '/v1/payouts', args),
  }),
  tool({
    name: 'create_transfer',
    title: 'Create transfer',
    description: `Transfer funds to a connected account.${HELD_NOTE}`,
    input: {
      amount,
      currency,
      destination: id('acct', 'connected account').describe('The connected account (acct_…)'),
      description: z.string().max(1000).optional(),
      transfer_group: z.string().max(255).optional(),
      source_transaction: id('ch', 'Charge').optional(),
      metadata,
      idempotency_key: idempotencyKey,
    },
    annotations: WRITE,
    run: (args, call) => stripe(call, 'POST', '/v1/transfers', args),
  }),
  tool({
    name: 'cancel_subscription',
    title: 'Cancel subscription',
    description: `Cancel a subscription immediately.${HELD_NOTE}`,
    input: {
      subscription: id('sub', 'Subscription').describe('The subscription to cancel'),
      invoice_now: z.boolean().optional(),
      prorate: z.boolean().optional(),
      idempotency_key: idempotencyKey,
    },
    annotations: WRITE,
    run: (args, call) =>
      stripe(call, 'DELETE', `/v1/subscriptions/${args.subscription}`, args, ['subscription']),
  }),
  tool({
    name: 'update_subscription',
    title: 'Update subscription',
    description: `Update a subscription: items, proration, cancel at period end, metadata.${HELD_NOTE}`,
    input: {
      subscription: id('sub', 'Subscription').describe('The subscription to update'),
      proration_behavior: z.enum(['create_prorations', 'none', 'always_invoice']).optional(),
      items: z
        .array(
          z.object({
            id: z.string().max(255).optional().describe('The subscription item to modify'),
            price: z.string().max(255).optional().describe('The price to switch to'),
            quantity: z.number().int().min(1).optional(),
            deleted: z.boolean().optional(),
          }),
        )
        .max(20)
        .optional(),
      cancel_at_period_end: z.boolean().optional(),
      metadata,
      idempotency_key: idempotencyKey,
    },
    annotations: WRITE,
    run: (args, call) =>
      stripe(call, 'POST', `/v1/subscriptions/${args.subscription}`, args, ['subscription']),
  }),
  tool({
    name: 'create_customer',
    title: 'Create customer',
    description: `Create a customer.${HELD_NOTE}`,
    input: {
      name: z.string().min(1).max(256),
      email: z.email().optional(),
      description: z.string().max(1000).optional(),
      metadata,
      idempotency_key: idempotencyKey,
    },
    annotations: { ...WRITE, destructiveHint: false },
    run: (args, call) => stripe(call, 'POST', '/v1/customers', args),
  }),
  tool({
    name: 'list_customers',
    title: 'List customers',
    description: 'List customers, newest first, optionally by email.',
    input: { limit, email: z.string().max(512).optional() },
    annotations: READ,
    run: (args, call) => stripe(call, 'GET', '/v1/customers', args),
  }),
  tool({
    name: 'retrieve_balance',
    title: 'Retrieve balance',
    description: 'Retrieve the Stripe account balance (available and pending, per currency).',
    input: {},
    annotations: READ,
    run: (_args, call) => stripe(call, 'GET', '/v1/balance', {}),
  }),
  tool({
    name: 'list_payment_intents',
    title: 'List payment intents',
    description: 'List PaymentIntents, optionally for one customer.',
    input: { customer: id('cus', 'Customer').optional(), limit },
    annotations: READ,
    run: (args, call) => stripe(call, 'GET', '/v1/payment_intents', args),
  }),
  tool({
    name: 'list_subscriptions',
    title: 'List subscriptions',
    description: 'List subscriptions, optionally by customer, price or status.',
    input: {
      customer: id('cus', 'Customer').optional(),
      price: z.string().max(255).optional(),
      status: z
        .enum([
          'active',
          'past_due',
          'unpaid',
          'canceled',
          'incomplete',
          'incomplete_expired',
          'trialing',
          'all',
        ])
        .optional(),
      limit,
    },
    annotations: READ,
    run: (args, call) => stripe(call, 'GET', '/v1/subscriptions', args),
  }),
  tool({
    name: 'stripe_request',
    title: 'Stripe API request',
    description:
      `Any Stripe API call by method and path (e.g. POST /v1/refunds), with Stripe's parameters.${HELD_NOTE} ` +
      'Only Stripe paths (/v1/…, /v2/…) are reachable.',
    input: {
      method: z.enum(['GET', 'POST', 'DELETE']),
      path: z
        .string()
        .max(300)
        .regex(/^\/v[12]\/[A-Za-z0-9_\-/.]+$/, 'must be a Stripe API path such as /v1/refunds')
        .describe('Stripe API path, e.g. /v1/refunds'),
      params: z
        .record(z.string(), z.unknown())
        .optional()
        .describe('Stripe parameters (nested objects and arrays use Stripe form encoding)'),
      stripe_account: id('acct', 'connected account').optional().describe('Act as a connected account'),
      stripe_context: z
        .string()
        .max(200)
        .regex(/^acct_[A-Za-z0-9]+(\/acct_[A-Za-z0-9]+)*$/, 'must be a Stripe-Context such as acct_123')
        .optional()
        .describe('Stripe-Context: the account path the call acts on; it supersedes stripe_account'),
      idempotency_key: idempotencyKey,
    },
    annotations: WRITE,
    async run(args, call) {
      const key = args.idempotency_key;
      const v2 = args.path.startsWith('/v2/');
      const res = await call({
        method: args.method,
        path: args.path,
        ...(v2 ? { json: args.params ?? {} } : { params: (args.params ?? {}) as Params }),
        ...(key ? { idempotencyKey: key } : {}),
        ...(args.stripe_account ? { stripeAccount: args.stripe_account } : {}),
        ...(args.stripe_context ? { stripeContext: args.stripe_context } : {}),
      });
      return stripeResult(res);
    },
  }),
  tool({
    name: 'get_action',
    title: 'Get Airlock action',
    description: 'Read an Airlock action (its status, decision, approvals and upstream answer) by id.',
    input: { id: actionId },
    annotations: { readOnlyHint: true },
    async run(args, call) {
      return apiResult(await call({ method: 'GET', path: `/api/actions/${args.id}` }));
    },
  }),
  tool({
    name: 'wait_for_action',
    title: 'Wait for Airlock action',
    description:
      'Wait until an action is finished (completed, failed, rejected, blocked, expired or cancelled) or the timeout passes, then return it. ' +
      'Use it after a call was HELD for approval.',
    input: {
      id: actionId,
      timeout_seconds: z
        .number()
        .int()
        .min(1)
        .max(MAX_WAIT_SECONDS)
        .optional()
        .describe(`Seconds to wait (default ${DEFAULT_WAIT_SECONDS}, max ${MAX_WAIT_SECONDS})`),
    },
    annotations: { readOnlyHint: true },
    async run(args, call) {
      const wait = args.timeout_seconds ?? DEFAULT_WAIT_SECONDS;
      const res = await call({
        method: 'GET',
        path: `/api/actions/${args.id}`,
        query: { wait: String(wait) },
        timeoutMs: (wait + 30) * 1000,
      });
      return apiResult(res);
    },
  }),
  tool({
    name: 'cancel_action',
    title: 'Cancel Airlock action',
    description: 'Withdraw your own held action before a person decides it.',
    input: { id: actionId },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
    async run(args, call) {
      return apiResult(await call({ method: 'POST', path: `/api/actions/${args.id}/cancel`, json: {} }));
    },
  }),
  tool({
    name: 'request_decision',
    title: 'Request a decision',
    description:
      'Ask Airlock whether an intended operation is allowed before doing it yourself. Answers allow, review ' +
      '(a person decides; wait_for_action or get_action later) or block. Honour modified_details when present.',
    input: {
      intent: z.object({
        kind: z
          .string()
          .min(1)
          .max(100)
          .describe('What you intend, e.g. refund.create, payout.create, subscription.cancel'),
        amount: amount.optional(),
        currency: currency.optional(),
        metadata,
      }),
      context: z.record(z.string(), z.unknown()).optional().describe('Facts for the reviewer and policy'),
      summary: z.string().max(500).optional(),
      justification: z.string().max(2000).optional(),
      idempotency_key: idempotencyKey,
      wait: z
        .number()
        .int()
        .min(0)
        .max(MAX_WAIT_SECONDS)
        .optional()
        .describe('Seconds to wait for a person when the answer is review'),
    },
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
    async run(args, call) {
      const res = await call({
        method: 'POST',
        path: '/api/decisions',
        json: args,
        timeoutMs: ((args.wait ?? 0) + 30) * 1000,
      });
      return apiResult(res);
    },
  }),
  tool(AXIRU_TOOL),
];

/** A tool argument the schema alone cannot check; reported as a tool error naming the field. */
export class ToolInputError extends Error {
  readonly param: string;
  constructor(param: string, message: string) {
    super(`Invalid arguments: ${param}: ${message}`);
    this.name = 'ToolInputError';
    this.param = param;
  }
}

function failure(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured, isError: true };
}

/** An MCP server whose every tool goes through `call`: the one engine, reached over Airlock's own HTTP surfaces. */
export function createMcpServer(call: AirlockCall): McpServer {
  const server = new McpServer(
    { name: MCP_SERVER_NAME, version: MCP_SERVER_VERSION },
    {
      instructions:
        'Stripe and Airlock tools. Every money-moving call is checked by policy and may be held for a person. ' +
        'A HELD result is not an error: do not retry the call; use wait_for_action with the action id. ' +
        'No tool can approve or reject; only people can.',
    },
  );
  for (const spec of TOOLS as ToolSpec<Shape>[]) {
    server.registerTool(
      spec.name,
      {
        title: spec.title,
        description: spec.description,
        inputSchema: spec.input,
        annotations: spec.annotations,
      },
      async (args: Args<Shape>) => {
        try {
          return await spec.run(args, call);
        } catch (err) {
          if (err instanceof ToolInputError) {
            return failure(err.message, { status: 'invalid_arguments', param: err.param });
          }
          if (err instanceof CallError) return failure(err.message, { status: err.code });
          throw err;
        }
      },
    );
  }
  return server;
}
