// Errors the SDK throws. Each has a stable `code`; the wire errors keep the server's code, type and param.

export type SdkErrorCode = 'airlock_unavailable' | 'webhook_invalid' | 'wait_timeout' | 'invalid_response';

/** Airlock answered with an error (4xx, or a 5xx other than its store being down). */
export class AirlockApiError extends Error {
  readonly status: number;
  /** The server's stable error code, e.g. `parameter_invalid`, `forbidden`, `idempotency_conflict`. */
  readonly code: string;
  readonly type: string;
  readonly param: string | undefined;
  readonly actionId: string | undefined;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const e = errorOf(body);
    super(e?.message ?? `Airlock answered HTTP ${status}`);
    this.name = 'AirlockApiError';
    this.status = status;
    this.code = e?.code ?? `http_${status}`;
    this.type = e?.type ?? 'api_error';
    this.param = e?.param;
    this.actionId = e?.airlock_action;
    this.body = body;
  }
}

/**
 * Airlock could not be reached, did not answer in time, or could not record the request: the action was not
 * executed by this call, and the caller must not perform it some other way (fail closed).
 */
export class AirlockUnavailableError extends Error {
  readonly code = 'airlock_unavailable' as const;
  /** True when the request never reached Airlock (connection refused, DNS); false when the outcome is unknown. */
  readonly certain: boolean;
  /** Retrying with this key returns the same action, never a second one. */
  readonly idempotencyKey: string | undefined;
  constructor(message: string, opts: { certain: boolean; idempotencyKey?: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = 'AirlockUnavailableError';
    this.certain = opts.certain;
    this.idempotencyKey = opts.idempotencyKey;
  }
}

export type WebhookErrorReason =
  | 'missing_signature'
  | 'malformed_signature'
  | 'signature_mismatch'
  | 'timestamp_out_of_tolerance'
  | 'malformed_body';

export class WebhookVerificationError extends Error {
  readonly code = 'webhook_invalid' as const;
  readonly reason: WebhookErrorReason;
  constructor(reason: WebhookErrorReason, message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
    this.reason = reason;
  }
}

/** `wait()` reached its deadline before the action or decision settled. The last state read is attached. */
export class AirlockWaitTimeoutError extends Error {
  readonly code = 'wait_timeout' as const;
  readonly last: unknown;
  constructor(message: string, last: unknown) {
    super(message);
    this.name = 'AirlockWaitTimeoutError';
    this.last = last;
  }
}

interface WireError {
  type?: string;
  code?: string;
  message?: string;
  param?: string;
  airlock_action?: string;
}

export function errorOf(body: unknown): WireError | null {
  if (body && typeof body === 'object' && 'error' in body) {
    const e = (body as { error: unknown }).error;
    if (e && typeof e === 'object') return e as WireError;
  }
  return null;
}
