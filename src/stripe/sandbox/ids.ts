import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// Random bytes come from a pool so that id generation stays cheap on the hot path.
let pool = Buffer.alloc(0);
let offset = 0;

function nextByte(): number {
  if (offset >= pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  return pool[offset++]!;
}

function randomAlphanumeric(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    let byte = nextByte();
    // 248 = 62 * 4: bytes at or above it would bias the alphabet, so they are drawn again.
    while (byte >= 248) byte = nextByte();
    out += ALPHABET[byte % 62];
  }
  return out;
}

/** A Stripe-like object id: prefix, underscore, 24 random alphanumerics. */
export function newId(prefix: string): string {
  return `${prefix}_${randomAlphanumeric(24)}`;
}

export function newRequestId(): string {
  return `req_${randomAlphanumeric(14)}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
