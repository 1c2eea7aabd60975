// How long to wait before trying again: doubling from a base, capped, with jitter where many may retry at once.

/**
 * The wait after `failures` failed tries (1 after the first): `base`, doubling with each further failure, never more
 * than `max`. Unit-free: milliseconds for deliveries, seconds for the login throttle.
 */
export function exponentialBackoff(failures: number, base: number, max = Number.POSITIVE_INFINITY): number {
  return Math.min(max, base * 2 ** Math.max(0, failures - 1));
}

/** Equal jitter: a random wait from half of `ms` to all of it, so callers that failed together do not retry together. */
export function withJitter(ms: number): number {
  return Math.round(ms / 2 + Math.random() * (ms / 2));
}
