// Axiru's decisions API (`POST /api/v1/decisions`) answered by Airlock, so a team moves by changing the base URL and
// the key. The request is translated into Airlock's own decisions request and answered by that route in-process:
// one path to the engine, the policy and the ledger, and no second copy of the decision logic.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { DecisionObject } from '../../engine/view.ts';
import { type AirlockError, httpStatus } from '../../errors.ts';
import { isInternal, toAirlockError } from '../errors.ts';

export const AXIRU_DECISIONS_PATH = '/api/v1/decisions';

/** Axiru's intent kinds (several spellings of the app-fee refund) and the Airlock kind each one is decided as. */
export const AXIRU_KINDS = {
  refund: 'refund.create',
  credit: 'credit_note.create',
  adjustment: 'customer_balance_transaction.create',
  payout: 'payout.create',
  transfer: 'transfer.create',
  app_fee_refund: 'application_fee_refund.create',
  'app-fee refund': 'application_fee_refund.create',
  application_fee_refund: 'application_fee_refund.create',
  dispute: 'dispute.close',
} as const satisfies Record<string, string>;
export type AxiruKind = keyof typeof AXIRU_KINDS;

const KIND_NAMES = Object.keys(AXIRU_KINDS) as [AxiruKind, ...AxiruKind[]];

/** The Axiru name a caller reads back for an Airlock kind: the first spelling listed for it. */
const KIND_OF = new Map<string, AxiruKind>();
for (const k of KIND_NAMES) if (!KIND_OF.has(AXIRU_KINDS[k])) KIND_OF.set(AXIRU_KINDS[k], k);

export const AxiruDecisionRequest = z
  .object({
    intent: z
      .object({
        kind: z.enum(KIND_NAMES, { error: `must be one of ${KIND_NAMES.map((k) => `"${k}"`).join(', ')}` }),
        amount_cents: z
          .number({ error: 'must be a whole number of cents' })
          .int('must be a whole number of cents')
          .min(1, 'must be at least 1 cent')
          .max(Number.MAX_SAFE_INTEGER),
        currency: z.string().regex(/^[A-Za-z]{3}$/, 'must be a three-letter ISO currency code such as "USD"'),
        // Recorded with the decision; Airlock fronts one Stripe configuration, so it selects nothing.
        stripe_connection_id: z.string().min(1).max(255).optional(),
        metadata: z.record(z.string().max(40), z.string().max(500)).optional(),
      })
      .strict(),
    context: z
      .object({
        customer_id: z.string().min(1).max(255).optional(),
        customer_tenure_days: z.number().int().min(0).optional(),
        reason_code: z.string().max(100).optional(),
      })
      .catchall(z.unknown())
      .optional(),
    idempotency_key: z.string().min(1).max(255).optional(),
    // Airlock's addition: where the signed decision event is posted once a person decides (Axiru: webhooks).
    callback_url: z.string().min(1).max(2048).optional(),
  })
  .strict();
export type AxiruDecisionRequest = z.input<typeof AxiruDecisionRequest>;

/** The body Airlock's own decisions API takes for the same intent: same kind, same minor units, same customer. */
export function toAirlockDecisionRequest(
  body: z.output<typeof AxiruDecisionRequest>,
): Record<string, unknown> {
  const { intent, context, idempotency_key, callback_url } = body;
  const { customer_id, ...rest } = context ?? {};
  const airlockContext: Record<string, unknown> = { ...rest };
  if (customer_id !== undefined) airlockContext['customer'] = customer_id;
  if (intent.stripe_connection_id !== undefined)
    airlockContext['stripe_connection_id'] = intent.stripe_connection_id;
  return {
    intent: {
      kind: AXIRU_KINDS[intent.kind],
      amount: intent.amount_cents,
      currency: intent.currency,
      ...(intent.metadata ? { metadata: intent.metadata } : {}),
    },
    ...(Object.keys(airlockContext).length > 0 ? { context: airlockContext } : {}),
    ...(idempotency_key !== undefined ? { idempotency_key } : {}),
    ...(callback_url !== undefined ? { callback_url } : {}),
  };
}

const OUTCOME = { allow: 'allow', review: 'review', block: 'deny' } as const;
export type AxiruOutcome = (typeof OUTCOME)[keyof typeof OUTCOME];

const STATUS: Record<string, string> = {
  approved: 'approved',
  awaiting_approval: 'pending_approval',
  rejected: 'rejected',
  blocked: 'denied',
  expired: 'expired',
  cancelled: 'cancelled',
};

export interface AxiruDecision {
  object: 'decision';
  decision_id: string;
  outcome: AxiruOutcome;
  status: string;
  reason_code: string;
  message: string;
  /** The id a reviewer approves or rejects, while and after the decision was held; null when it never was. */
  approval_id: string | null;
  policy_version: string;
  /** True when an advisory (shadow-mode) rule would have answered more strictly than the answer given. */
  advisory: boolean;
  /** What an enforcing policy would have answered; null when no advisory rule took part. */
  advisory_outcome: AxiruOutcome | null;
  risk_score: number | null;
  /** What a reviewer changed when approving (an amount only ever lower); prefer it over your own payload. */
  modified_details: Record<string, unknown> | null;
  decision_note: string | null;
  intent: {
    kind: string;
    amount_cents: number | null;
    currency: string | null;
    metadata: Record<string, string>;
  };
  created_at: string;
  decided_at: string | null;
  expires_at: string | null;
}

/** Whether people were asked: a reviewer's change decides the changed request again, so `outcome` may now be allow. */
function wasHeld(d: DecisionObject): boolean {
  return d.outcome === 'review' || d.approvals.length > 0 || HELD_ENDINGS.has(d.status);
}
const HELD_ENDINGS = new Set(['awaiting_approval', 'rejected', 'expired', 'cancelled']);

/** Airlock's decision object in Axiru's words: `block` is `deny`, amounts are cents, currencies upper case. */
export function toAxiruDecision(d: DecisionObject): AxiruDecision {
  const outcome = OUTCOME[d.outcome];
  const advisoryOutcome = d.shadow_outcome ? OUTCOME[d.shadow_outcome] : null;
  const advisory = d.shadow && advisoryOutcome !== null;
  const changed = d.modified_details;
  let modified: Record<string, unknown> | null = null;
  if (changed) {
    const { amount, ...others } = changed;
    modified = { ...(amount !== undefined ? { amount_cents: amount } : {}), ...others };
  }
  return {
    object: 'decision',
    decision_id: d.id,
    outcome,
    status: STATUS[d.status] ?? d.status,
    reason_code:
      advisory && d.reason_code === 'policy_allow'
        ? `advisory_${advisoryOutcome}`
        : d.reason_code === 'policy_block'
          ? 'policy_deny'
          : d.reason_code,
    message: d.message,
    approval_id: wasHeld(d) ? d.id : null,
    policy_version: d.policy_version,
    advisory,
    advisory_outcome: advisoryOutcome,
    risk_score: d.risk_score,
    modified_details: modified,
    decision_note: d.decision_note,
    intent: {
      kind: KIND_OF.get(d.intent.kind) ?? d.intent.kind,
      amount_cents: d.intent.amount,
      currency: d.intent.currency?.toUpperCase() ?? null,
      metadata: d.intent.metadata,
    },
    created_at: d.created_at,
    decided_at: d.decided_at,
    expires_at: d.expires_at,
  };
}

// --- errors in Axiru's envelope ----------------------------------------------------------------------------------

/** Axiru's error envelope: a snake_case `error`, a `message`, the fields at fault and the request id. */
export interface AxiruError {
  error: string;
  message: string;
  field_errors?: Record<string, string[]>;
  request_id: string;
}

const AXIRU_ERROR: Partial<Record<AirlockError['code'], string>> = {
  parameter_invalid: 'invalid_request',
  parameter_invalid_integer: 'invalid_request',
  parameter_missing: 'invalid_request',
  malformed_body: 'invalid_request',
  body_too_large: 'invalid_request',
  unsupported_media_type: 'invalid_request',
  authentication_required: 'unauthorized',
  invalid_api_key: 'unauthorized',
  api_key_expired: 'unauthorized',
  forbidden: 'forbidden',
  resource_missing: 'not_found',
  idempotency_conflict: 'idempotency_conflict',
  idempotency_error: 'idempotency_conflict',
  rate_limit: 'rate_limited',
  store_unavailable: 'service_unavailable',
  internal_error: 'internal_error',
};

// Airlock's field names in its own errors, as the Axiru caller named them.
const FIELD_OF: Record<string, string> = {
  'intent.amount': 'intent.amount_cents',
  'context.customer': 'context.customer_id',
  'context.stripe_connection_id': 'intent.stripe_connection_id',
};

function axiruField(param: string): string {
  return FIELD_OF[param] ?? param;
}

function axiruErrorFrom(
  code: string,
  message: string,
  param: string | undefined,
  requestId: string,
): AxiruError {
  const field = param ? axiruField(param) : undefined;
  const text = field && param && message.startsWith(`${param}: `) ? message.slice(param.length + 2) : message;
  return {
    error: AXIRU_ERROR[code as AirlockError['code']] ?? code,
    message: field ? `${field}: ${text}` : message,
    ...(field ? { field_errors: { [field]: [text] } } : {}),
    request_id: requestId,
  };
}

/** Every problem of an Axiru body, keyed by the dotted field name, as Zod reports them. */
function fieldErrors(error: z.ZodError): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const issue of error.issues) {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
    for (const key of keys) {
      const field = [...issue.path.map(String), ...(key ? [key] : [])].join('.') || '(body)';
      const text =
        issue.code === 'unrecognized_keys'
          ? 'unknown field: Airlock does not accept it here'
          : issue.code === 'invalid_type' && issue.input === undefined
            ? 'is required'
            : issue.message;
      out[field] = [...(out[field] ?? []), text];
    }
  }
  return out;
}

function sendAxiruError(reply: FastifyReply, status: number, body: AxiruError): FastifyReply {
  return reply.code(status).send(body);
}

// --- routes ------------------------------------------------------------------------------------------------------

interface InnerAnswer {
  status: number;
  body: unknown;
  retryAfter: string | undefined;
}

const WaitQuery = z.object({ wait: z.coerce.number().int().min(0).max(300).optional() }).strict();

/**
 * Axiru's routes. Registered as a Fastify plugin so that its errors, including a body that is not JSON, answer in
 * Axiru's envelope while the rest of /api keeps Stripe's.
 */
export async function registerAxiru(app: FastifyInstance, opts: { log: Logger }): Promise<void> {
  app.setErrorHandler((err, request, reply) => {
    const error = toAirlockError(err);
    if (isInternal(error))
      opts.log.error(
        { err, request_id: request.id, method: request.method, url: request.url },
        error.message,
      );
    if (error.code === 'rate_limit' && 'retryAfterSeconds' in error)
      reply.header('Retry-After', String(error.retryAfterSeconds));
    return sendAxiruError(
      reply,
      httpStatus(error.code),
      axiruErrorFrom(error.code, error.message, error.param, request.id),
    );
  });

  /** Asks Airlock's own decisions API, with the caller's credential and request id. */
  async function ask(request: FastifyRequest, method: 'GET' | 'POST', url: string, body?: unknown) {
    const res = await app.inject({
      method,
      url,
      headers: {
        ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
        'request-id': request.id,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    const retryAfter = res.headers['retry-after'];
    let parsed: unknown = null;
    try {
      parsed = res.body ? JSON.parse(res.body) : null;
    } catch {
      // Every /api answer is JSON; anything else is reported as Airlock failing, below.
    }
    return {
      status: res.statusCode,
      body: parsed,
      retryAfter: retryAfter === undefined ? undefined : String(retryAfter),
    } satisfies InnerAnswer;
  }

  function answer(request: FastifyRequest, reply: FastifyReply, inner: InnerAnswer) {
    if (inner.status >= 200 && inner.status < 300) return toAxiruDecision(inner.body as DecisionObject);
    const e = (inner.body as { error?: { code?: string; message?: string; param?: string } } | null)?.error;
    if (inner.retryAfter) reply.header('Retry-After', inner.retryAfter);
    return sendAxiruError(
      reply,
      inner.status,
      axiruErrorFrom(e?.code ?? 'internal_error', e?.message ?? 'Airlock failed', e?.param, request.id),
    );
  }

  app.post(AXIRU_DECISIONS_PATH, async (request, reply) => {
    const parsed = AxiruDecisionRequest.safeParse(request.body ?? {});
    if (!parsed.success) {
      const field_errors = fieldErrors(parsed.error);
      const [field, problems] = Object.entries(field_errors)[0]!;
      return sendAxiruError(reply, 400, {
        error: 'invalid_request',
        message: `${field}: ${problems[0]}`,
        field_errors,
        request_id: request.id,
      });
    }
    return answer(
      request,
      reply,
      await ask(request, 'POST', '/api/decisions', toAirlockDecisionRequest(parsed.data)),
    );
  });

  app.get<{ Params: { id: string } }>(`${AXIRU_DECISIONS_PATH}/:id`, async (request, reply) => {
    const q = WaitQuery.safeParse(request.query ?? {});
    if (!q.success) {
      const field_errors = fieldErrors(q.error);
      const [field, problems] = Object.entries(field_errors)[0]!;
      return sendAxiruError(reply, 400, {
        error: 'invalid_request',
        message: `${field}: ${problems[0]}`,
        field_errors,
        request_id: request.id,
      });
    }
    const id = encodeURIComponent(request.params.id);
    const wait = q.data.wait ? `?wait=${q.data.wait}` : '';
    return answer(request, reply, await ask(request, 'GET', `/api/decisions/${id}${wait}`));
  });
}

// --- the OpenAPI description, from the same schema the route validates with ------------------------------------

const ref = (name: string) => ({
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } },
});
const nullable = (type: string) => ({ type: [type, 'null'] });

/** Axiru's route in /api/openapi.json: its schemas and paths, merged in by src/http/openapi.ts. */
export function axiruOpenApi(): { schemas: Record<string, unknown>; paths: Record<string, unknown> } {
  const request = z.toJSONSchema(AxiruDecisionRequest, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  delete request['$schema'];
  const outcome = { enum: ['allow', 'review', 'deny'] };
  const errors = Object.fromEntries(
    [
      ['400', 'invalid_request: field_errors names each field'],
      ['401', 'unauthorized'],
      ['403', 'forbidden'],
      ['404', 'not_found'],
      ['409', 'idempotency_conflict'],
      ['429', 'rate_limited'],
    ].map(([status, description]) => [status, { description, ...ref('AxiruError') }]),
  );
  return {
    schemas: {
      AxiruDecisionRequest: request,
      AxiruDecision: {
        type: 'object',
        required: [
          'decision_id',
          'outcome',
          'status',
          'reason_code',
          'message',
          'approval_id',
          'policy_version',
        ],
        properties: {
          object: { const: 'decision' },
          decision_id: { type: 'string' },
          outcome,
          status: { enum: [...new Set(Object.values(STATUS))] },
          reason_code: { type: 'string' },
          message: { type: 'string' },
          approval_id: nullable('string'),
          policy_version: { type: 'string' },
          advisory: { type: 'boolean' },
          advisory_outcome: { anyOf: [outcome, { type: 'null' }] },
          risk_score: nullable('number'),
          modified_details: nullable('object'),
          decision_note: nullable('string'),
          intent: { type: 'object' },
          created_at: { type: 'string', format: 'date-time' },
          decided_at: nullable('string'),
          expires_at: nullable('string'),
        },
      },
      AxiruError: {
        type: 'object',
        required: ['error', 'message', 'request_id'],
        properties: {
          error: { type: 'string' },
          message: { type: 'string' },
          field_errors: {
            type: 'object',
            additionalProperties: { type: 'array', items: { type: 'string' } },
          },
          request_id: { type: 'string' },
        },
      },
    },
    paths: {
      [AXIRU_DECISIONS_PATH]: {
        post: {
          operationId: 'createAxiruDecision',
          summary:
            "Axiru's decision call, decided as POST /api/decisions (agent key); see docs/migrate/axiru.md",
          requestBody: { required: true, ...ref('AxiruDecisionRequest') },
          responses: {
            '200': { description: 'The decision, in Axiru’s shape', ...ref('AxiruDecision') },
            ...errors,
          },
        },
      },
      [`${AXIRU_DECISIONS_PATH}/{id}`]: {
        get: {
          operationId: 'getAxiruDecision',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            {
              name: 'wait',
              in: 'query',
              required: false,
              schema: { type: 'integer', minimum: 0, maximum: 300 },
            },
          ],
          responses: {
            '200': { description: 'The decision, in Axiru’s shape', ...ref('AxiruDecision') },
            ...errors,
          },
        },
      },
    },
  };
}
