import type { FastifyReply } from 'fastify';
import { AirlockError, type ErrorCode } from '../errors.ts';
import { asStoreError } from '../store/store.ts';
import { ParamError } from '../stripe/classify.ts';
import { RateLimited } from './rate-limit.ts';

interface WireError {
  status: number;
  type: 'invalid_request_error' | 'api_error' | 'idempotency_error';
  shouldRetry?: boolean;
}

// The one table from error codes to HTTP. Bodies always take Stripe's shape, which the official client parses.
const WIRE: Record<ErrorCode, WireError> = {
  approval_required: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  action_blocked: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  action_rejected: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  action_expired: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  action_cancelled: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  action_in_progress: { status: 409, type: 'invalid_request_error', shouldRetry: true },
  upstream_unreachable: { status: 502, type: 'api_error', shouldRetry: false },
  upstream_not_allowed: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  authentication_required: { status: 401, type: 'invalid_request_error' },
  invalid_api_key: { status: 401, type: 'invalid_request_error' },
  api_key_expired: { status: 401, type: 'invalid_request_error' },
  forbidden: { status: 403, type: 'invalid_request_error', shouldRetry: false },
  resource_missing: { status: 404, type: 'invalid_request_error' },
  parameter_invalid: { status: 400, type: 'invalid_request_error' },
  parameter_invalid_integer: { status: 400, type: 'invalid_request_error' },
  parameter_missing: { status: 400, type: 'invalid_request_error' },
  idempotency_error: { status: 400, type: 'idempotency_error' },
  idempotency_conflict: { status: 409, type: 'idempotency_error' },
  invalid_transition: { status: 409, type: 'invalid_request_error' },
  already_decided: { status: 409, type: 'invalid_request_error' },
  self_approval: { status: 403, type: 'invalid_request_error' },
  store_unavailable: { status: 503, type: 'api_error', shouldRetry: false },
  // A bug: the same request would likely fail the same way, so clients are told not to retry it blindly.
  internal_error: { status: 500, type: 'api_error', shouldRetry: false },
  body_too_large: { status: 413, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  malformed_body: { status: 400, type: 'invalid_request_error' },
  unknown_path: { status: 404, type: 'invalid_request_error' },
  policy_invalid: { status: 500, type: 'api_error' },
  config_invalid: { status: 500, type: 'api_error' },
  csrf_invalid: { status: 403, type: 'invalid_request_error' },
  link_invalid: { status: 403, type: 'invalid_request_error' },
  link_expired: { status: 410, type: 'invalid_request_error' },
  link_used: { status: 409, type: 'invalid_request_error' },
  rate_limit: { status: 429, type: 'invalid_request_error' },
};

/** The HTTP status for an error code, for surfaces that answer in HTML rather than JSON (the dashboard). */
export function httpStatus(code: ErrorCode): number {
  return WIRE[code].status;
}

/** Turns anything thrown by a handler (ours, Fastify's, the driver's) into a specific answer; never a crash. */
export function toAirlockError(err: unknown): AirlockError {
  if (err instanceof AirlockError) return err;
  if (err instanceof ParamError) return new AirlockError(err.code, err.message, { param: err.param });
  const fe = err as { statusCode?: number; code?: string; message?: string };
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AirlockError('body_too_large', 'Request body is larger than this server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AirlockError(
        'unsupported_media_type',
        'Unsupported Content-Type: send application/x-www-form-urlencoded (v1) or application/json (v2 and /api)',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // Fastify's parser gives the same error for a prototype-poisoning key in otherwise valid JSON.
      return new AirlockError(
        'malformed_body',
        'The request body is not valid JSON, or holds a forbidden key ("__proto__", "constructor.prototype")',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AirlockError('malformed_body', 'Content-Length does not match the body');
  }
  if (fe.statusCode === 400 && fe.message) return new AirlockError('malformed_body', fe.message);
  if (fe.statusCode === 413)
    return new AirlockError('body_too_large', 'Request body is larger than this server accepts');
  if (fe.statusCode === 415)
    return new AirlockError('unsupported_media_type', fe.message ?? 'Unsupported Content-Type');
  // A driver failure that reached here unwrapped still means the store, not a bug: fail closed as an outage.
  const stored = asStoreError(err);
  if (stored instanceof AirlockError) return stored;
  return new AirlockError(
    'internal_error',
    'Airlock failed unexpectedly on this request; it is logged under the Request-Id of this response',
    { cause: err },
  );
}

export function sendError(reply: FastifyReply, error: AirlockError): FastifyReply {
  const wire = WIRE[error.code];
  if (wire.shouldRetry !== undefined) reply.header('Stripe-Should-Retry', String(wire.shouldRetry));
  if (error.actionId) reply.header('Airlock-Action', error.actionId);
  if (error instanceof RateLimited) reply.header('Retry-After', String(error.retryAfterSeconds));
  return reply.code(wire.status).send({
    error: {
      type: wire.type,
      code: error.code,
      message: error.message,
      ...(error.param ? { param: error.param } : {}),
      ...(error.actionId ? { airlock_action: error.actionId } : {}),
    },
  });
}

export function isInternal(error: AirlockError): boolean {
  return WIRE[error.code].status >= 500;
}
