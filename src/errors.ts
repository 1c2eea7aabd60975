// Errors with stable string codes. HTTP status and body shapes are decided in http/errors.ts, nowhere else.

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
