/** A Stripe-shaped error answer. `stored: false` marks validation failures, which Stripe never saves under an idempotency key. */
export type StripeErrorType =
  | 'invalid_request_error'
  | 'api_error'
  | 'card_error'
  | 'idempotency_error'
  | 'authentication_error';

export interface StripeErrorOptions {
  code?: string;
  param?: string;
  /** Extra fields of the error object (decline_code, charge, payment_intent, …). */
  extra?: Record<string, unknown>;
  /** Whether an idempotency record keeps this answer; false for parameter validation failures. */
  stored?: boolean;
}

export class StripeApiError extends Error {
  readonly status: number;
  readonly type: StripeErrorType;
  readonly code: string | undefined;
  readonly param: string | undefined;
  readonly extra: Record<string, unknown>;
  readonly stored: boolean;

  constructor(status: number, type: StripeErrorType, message: string, opts: StripeErrorOptions = {}) {
    super(message);
    this.name = 'StripeApiError';
    this.status = status;
    this.type = type;
    this.code = opts.code;
    this.param = opts.param;
    this.extra = opts.extra ?? {};
    this.stored = opts.stored ?? true;
  }

  body(): { error: Record<string, unknown> } {
    const error: Record<string, unknown> = { type: this.type, message: this.message };
    if (this.code !== undefined) {
      error['code'] = this.code;
      error['doc_url'] = `https://stripe.com/docs/error-codes/${this.code.replaceAll('_', '-')}`;
    }
    if (this.param !== undefined) error['param'] = this.param;
    Object.assign(error, this.extra);
    return { error };
  }
}

export function invalidRequest(message: string, opts: StripeErrorOptions = {}): StripeApiError {
  return new StripeApiError(400, 'invalid_request_error', message, opts);
}

export function resourceMissing(noun: string, id: string, param = 'id'): StripeApiError {
  return new StripeApiError(404, 'invalid_request_error', `No such ${noun}: '${id}'`, {
    code: 'resource_missing',
    param,
  });
}

export function parameterMissing(param: string): StripeApiError {
  return invalidRequest(`Missing required param: ${param}.`, {
    code: 'parameter_missing',
    param,
    stored: false,
  });
}

export function invalidInteger(param: string, value: unknown): StripeApiError {
  return invalidRequest(`Invalid integer: ${String(value)}`, {
    code: 'parameter_invalid_integer',
    param,
    stored: false,
  });
}

export function unrecognizedUrl(method: string, path: string): StripeApiError {
  return new StripeApiError(404, 'invalid_request_error', `Unrecognized request URL (${method}: ${path}).`, {
    stored: false,
  });
}

export function unexpectedState(message: string, code: string, param?: string): StripeApiError {
  return invalidRequest(message, param === undefined ? { code } : { code, param });
}
