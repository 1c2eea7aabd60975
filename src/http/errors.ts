import type { FastifyReply } from 'fastify';
import { AirlockError, type ErrorCode, httpStatus } from '../errors.ts';
import { asStoreError } from '../store/store.ts';
import { ParamError } from '../stripe/classify.ts';
import { RateLimited } from './rate-limit.ts';

interface WireError {
  type: 'invalid_request_error' | 'api_error' | 'idempotency_error';
  shouldRetry?: boolean;
}

// The one table from error codes to the JSON body (the status is `httpStatus`, in ../errors.ts). Bodies always take
// Stripe's shape, which the official client parses.
const WIRE: Record<ErrorCode, WireError> = {
  approval_required: { type: 'invalid_request_error', shouldRetry: false },
  action_blocked: { type: 'invalid_request_error', shouldRetry: false },
  action_rejected: { type: 'invalid_request_error', shouldRetry: false },
  action_expired: { type: 'invalid_request_error', shouldRetry: false },
  action_cancelled: { type: 'invalid_request_error', shouldRetry: false },
  action_in_progress: { type: 'invalid_request_error', shouldRetry: true },
  upstream_unreachable: { type: 'api_error', shouldRetry: false },
  upstream_not_allowed: { type: 'invalid_request_error', shouldRetry: false },
  authentication_required: { type: 'invalid_request_error' },
  invalid_api_key: { type: 'invalid_request_error' },
  api_key_expired: { type: 'invalid_request_error' },
  forbidden: { type: 'invalid_request_error', shouldRetry: false },
  resource_missing: { type: 'invalid_request_error' },
  parameter_invalid: { type: 'invalid_request_error' },
  parameter_invalid_integer: { type: 'invalid_request_error' },
  parameter_missing: { type: 'invalid_request_error' },
  idempotency_error: { type: 'idempotency_error' },
  idempotency_conflict: { type: 'idempotency_error' },
  invalid_transition: { type: 'invalid_request_error' },
  already_decided: { type: 'invalid_request_error' },
  self_approval: { type: 'invalid_request_error' },
  store_unavailable: { type: 'api_error', shouldRetry: false },
  // A bug: the same request would likely fail the same way, so clients are told not to retry it blindly.
  internal_error: { type: 'api_error', shouldRetry: false },
  body_too_large: { type: 'invalid_request_error' },
  unsupported_media_type: { type: 'invalid_request_error' },
  malformed_body: { type: 'invalid_request_error' },
  unknown_path: { type: 'invalid_request_error' },
  policy_invalid: { type: 'api_error' },
  config_invalid: { type: 'api_error' },
  csrf_invalid: { type: 'invalid_request_error' },
  link_invalid: { type: 'invalid_request_error' },
  link_expired: { type: 'invalid_request_error' },
  link_used: { type: 'invalid_request_error' },
  rate_limit: { type: 'invalid_request_error' },
};

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
  const status = httpStatus(error.code);
  if (wire.shouldRetry !== undefined) reply.header('Stripe-Should-Retry', String(wire.shouldRetry));
  if (error.actionId) reply.header('Airlock-Action', error.actionId);
  if (error instanceof RateLimited) reply.header('Retry-After', String(error.retryAfterSeconds));
  return reply.code(status).send({
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
  return httpStatus(error.code) >= 500;
}
