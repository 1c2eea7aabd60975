import { createHmac } from 'node:crypto';
import { safeEqual } from './compare.ts';

/** How far a request's timestamp may be from now, as Slack advises: older ones may be replays. */
export const SLACK_TIMESTAMP_WINDOW_S = 300;

export type SlackSignatureCheck = { ok: true } | { ok: false; reason: 'missing' | 'stale' | 'mismatch' };

/**
 * Slack's request signing, v0: `v0=` + hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` with the app's
 * signing secret, compared in constant time, and the timestamp within five minutes of now. (Slack's own verifier
 * ships inside @slack/bolt with a web framework around it; this is the same dozen lines.)
 */
export function verifySlackSignature(
  signingSecret: string,
  rawBody: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  now: Date,
  windowS = SLACK_TIMESTAMP_WINDOW_S,
): SlackSignatureCheck {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'missing' };
  if (Math.abs(now.getTime() / 1000 - Number(timestamp)) > windowS) return { ok: false, reason: 'stale' };
  const expected = `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
  return safeEqual(signature, expected) ? { ok: true } : { ok: false, reason: 'mismatch' };
}
