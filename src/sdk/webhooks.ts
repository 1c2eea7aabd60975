import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookVerificationError } from './errors.ts';
import type { CallbackEvent } from './types.ts';

export const SIGNATURE_HEADER = 'airlock-signature';
const DEFAULT_TOLERANCE_SECONDS = 300;

export interface VerifyOptions {
  /** How old (or how far in the future) the signed timestamp may be; default 300 s. */
  toleranceSeconds?: number;
  /** Unix seconds; for tests. */
  now?: number;
}

/**
 * Checks `Airlock-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` over the raw body exactly as
 * received, and returns the parsed event. Several v1 entries are accepted (secret rotation); the comparison is
 * constant-time; a timestamp outside the tolerance is refused so a captured delivery cannot be replayed later.
 */
export function verifyWebhook(
  rawBody: string | Uint8Array,
  signatureHeader: string | string[] | null | undefined,
  secret: string,
  options: VerifyOptions = {},
): CallbackEvent {
  const header = Array.isArray(signatureHeader) ? signatureHeader[0] : signatureHeader;
  if (!header) throw new WebhookVerificationError('missing_signature', 'No Airlock-Signature header');
  if (!secret)
    throw new WebhookVerificationError('missing_signature', 'No webhook secret given to verify with');
  let timestamp: string | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') timestamp = value;
    else if (key === 'v1') signatures.push(value);
  }
  if (!timestamp || !/^\d{1,12}$/.test(timestamp) || signatures.length === 0) {
    throw new WebhookVerificationError(
      'malformed_signature',
      'Airlock-Signature must look like t=<unix seconds>,v1=<hex>',
    );
  }
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : Buffer.from(rawBody);
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  const matched = signatures.some((hex) => {
    if (!/^[0-9a-f]{64}$/i.test(hex)) return false;
    return timingSafeEqual(Buffer.from(hex, 'hex'), expected);
  });
  if (!matched) {
    throw new WebhookVerificationError(
      'signature_mismatch',
      'The signature does not match the body and secret',
    );
  }
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError(
      'timestamp_out_of_tolerance',
      `The signature's timestamp is more than ${tolerance}s from now: a stale or replayed delivery`,
    );
  }
  try {
    return JSON.parse(body.toString('utf8')) as CallbackEvent;
  } catch {
    throw new WebhookVerificationError('malformed_body', 'The signed body is not JSON');
  }
}
