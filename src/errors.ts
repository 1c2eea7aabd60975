// Errors with stable string codes, each with its HTTP status (`httpStatus`, below), so every surface that answers
// over HTTP (the JSON API, the dashboard's pages) gives a code the same status. The JSON body's shape is
// http/errors.ts's, nowhere else.

export type ErrorCode =
  | 'approval_required'
  | 'action_blocked'
  | 'action_rejected'
  | 'action_expired'
  | 'action_cancelled'
  | 'action_in_progress'
  | 'upstream_unreachable'
  | 'upstream_not_allowed'
  | 'authentication_required'
  | 'invalid_api_key'
  | 'api_key_expired'
  | 'forbidden'
  | 'resource_missing'
  | 'parameter_invalid'
  | 'parameter_invalid_integer'
  | 'parameter_missing'
  | 'idempotency_error'
  | 'idempotency_conflict'
  | 'invalid_transition'
  | 'already_decided'
  | 'self_approval'
  | 'store_unavailable'
  | 'internal_error'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'malformed_body'
  | 'unknown_path'
  | 'policy_invalid'
  | 'config_invalid'
  | 'csrf_invalid'
  | 'link_invalid'
  | 'link_expired'
  | 'link_used'
  | 'rate_limit';

/** The HTTP status of each code, for every surface: the API's JSON errors and the dashboard's pages. */
const HTTP_STATUS: Record<ErrorCode, number> = {
  approval_required: 403,
  action_blocked: 403,
  action_rejected: 403,
  action_expired: 403,
  action_cancelled: 403,
  action_in_progress: 409,
  upstream_unreachable: 502,
  upstream_not_allowed: 403,
  authentication_required: 401,
  invalid_api_key: 401,
  api_key_expired: 401,
  forbidden: 403,
  resource_missing: 404,
  parameter_invalid: 400,
  parameter_invalid_integer: 400,
  parameter_missing: 400,
  idempotency_error: 400,
  idempotency_conflict: 409,
  invalid_transition: 409,
  already_decided: 409,
  self_approval: 403,
  store_unavailable: 503,
  internal_error: 500,
  body_too_large: 413,
  unsupported_media_type: 415,
  malformed_body: 400,
  unknown_path: 404,
  policy_invalid: 500,
  config_invalid: 500,
  csrf_invalid: 403,
  link_invalid: 403,
  link_expired: 410,
  link_used: 409,
  rate_limit: 429,
};

export function httpStatus(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

export class AirlockError extends Error {
  readonly code: ErrorCode;
  readonly param: string | undefined;
  readonly actionId: string | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    opts: { param?: string; actionId?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'AirlockError';
    this.code = code;
    this.param = opts.param;
    this.actionId = opts.actionId;
  }
}

/** A guarded transition found the row in another status than the one it expected to leave. */
export class TransitionConflict extends AirlockError {
  readonly expected: string;
  readonly actual: string | null;
  constructor(actionId: string, expected: string, actual: string | null) {
    super('invalid_transition', `Action ${actionId} is ${actual ?? 'missing'}, not ${expected}`, {
      actionId,
    });
    this.expected = expected;
    this.actual = actual;
  }
}

export class StoreUnavailable extends AirlockError {
  constructor(cause: unknown) {
    super('store_unavailable', 'The action store is unavailable; nothing was forwarded', { cause });
  }
}
