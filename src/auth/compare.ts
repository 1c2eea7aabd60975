import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares a secret given by a caller (a CSRF token, a signature) with the expected one in constant time. Both
 * are hashed first, so neither their contents nor their lengths leak through timing. Empty never matches.
 */
export function safeEqual(given: string, expected: string): boolean {
  if (given.length === 0 || expected.length === 0) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
