// Per-credential rate limits: a token bucket per agent key, in memory on each instance (N instances behind a load
// balancer allow up to N times the limit).
import { hashCredential } from '../auth/credentials.ts';
import { AirlockError } from '../errors.ts';

export const DEFAULT_RATE_LIMIT_PER_MINUTE = 100;

/** A Stripe-shaped 429: `rate_limit`, with the seconds to wait before the next request is accepted. */
export class RateLimited extends AirlockError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number, perMinute: number) {
    super(
      'rate_limit',
      `Too many requests: this key may make ${perMinute} requests per minute. Retry after ${retryAfterSeconds}s.`,
    );
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    readonly perMinute: number = DEFAULT_RATE_LIMIT_PER_MINUTE,
    readonly now: () => number = Date.now,
  ) {}

  /** Takes one request from the credential's bucket, or throws RateLimited. */
  take(credential: string): void {
    const id = hashCredential(credential);
    const now = this.now();
    const perMs = this.perMinute / 60_000;
    const prev = this.#buckets.get(id);
    const tokens = prev ? Math.min(this.perMinute, prev.tokens + (now - prev.at) * perMs) : this.perMinute;
    if (tokens < 1) {
      this.#buckets.set(id, { tokens, at: now });
      throw new RateLimited(Math.max(1, Math.ceil((1 - tokens) / perMs / 1000)), this.perMinute);
    }
    // Full buckets carry no state, so idle keys do not accumulate.
    if (this.#buckets.size > 100_000) this.#buckets.clear();
    this.#buckets.set(id, { tokens: tokens - 1, at: now });
  }
}
