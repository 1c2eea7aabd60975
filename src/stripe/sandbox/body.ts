import qs from 'qs';
import { invalidRequest, StripeApiError } from './errors.ts';
import type { Params } from './params.ts';

/**
 * What the sandbox's parsers accept. Past a limit the request is refused whole, never cut short: a parser that
 * drops what it cannot hold (qs does, by default) would process a request other than the one that was sent.
 */
export const SANDBOX_LIMITS = {
  /** Key/value pairs in a form body or a query string; leaf values in a JSON body. */
  parameters: 10_000,
  /** Bracket groups in a form key (`a[b][c]` is 2); levels below the top one in a JSON body. */
  depth: 20,
  /** Elements of one array, and the largest index plus one (`items[999]` is the last). */
  arrayElements: 1_000,
  /** Bytes of a body. */
  bodyBytes: 1024 * 1024,
} as const;

const QS_OPTIONS: qs.IParseOptions = {
  depth: SANDBOX_LIMITS.depth,
  strictDepth: true,
  arrayLimit: SANDBOX_LIMITS.arrayElements,
  // Pairs are counted before qs sees them, so its own limit (which counts empty segments) is off.
  parameterLimit: Number.POSITIVE_INFINITY,
  throwOnLimitExceeded: true,
  // Keys such as `metadata[constructor]` are kept, not dropped as qs does for prototype names on plain objects.
  plainObjects: true,
};

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function refused(message: string, param?: string): StripeApiError {
  return invalidRequest(message, {
    code: 'parameter_invalid',
    stored: false,
    ...(param === undefined ? {} : { param }),
  });
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** The body as text, refusing bytes that are not UTF-8 (a lenient decoder would replace them silently). */
export function bodyText(bytes: Buffer): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw refused('The request body is not valid UTF-8.');
  }
}

export function checkBodySize(bytes: number): void {
  if (bytes > SANDBOX_LIMITS.bodyBytes) {
    throw new StripeApiError(
      413,
      'invalid_request_error',
      `The request body has ${count(bytes)} bytes, more than the sandbox's limit of ${count(SANDBOX_LIMITS.bodyBytes)}. Nothing was processed.`,
      { code: 'parameter_invalid', stored: false },
    );
  }
}

/** A form body or query string (`source` names it in messages), parsed with bracket notation as Stripe reads it. */
export function parseForm(raw: string, source: 'body' | 'query'): Params {
  if (raw === '') return {};
  let pairs = 0;
  for (const segment of raw.split('&')) if (segment !== '') pairs++;
  if (pairs > SANDBOX_LIMITS.parameters) {
    throw refused(
      `The request ${source} has ${count(pairs)} parameters, more than the sandbox's limit of ${count(SANDBOX_LIMITS.parameters)}. Nothing was processed.`,
    );
  }
  let parsed: Params;
  try {
    parsed = qs.parse(raw, QS_OPTIONS) as Params;
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const over = /depth/i.test(err.message)
      ? `a key nests deeper than the sandbox's depth limit of ${SANDBOX_LIMITS.depth}`
      : `an array has more than the sandbox's limit of ${count(SANDBOX_LIMITS.arrayElements)} elements`;
    throw refused(`In the request ${source}, ${over}. Nothing was processed.`);
  }
  // qs drops `__proto__` keys whatever the options; refusing them keeps what is processed equal to what was sent.
  for (const segment of raw.split('&')) {
    const key = segment.split('=', 1)[0] ?? '';
    if (/(^|\[)__proto__(\]|$)/.test(safeDecode(key))) {
      throw refused(`Invalid parameter name: ${safeDecode(key)}`, safeDecode(key));
    }
  }
  return parsed;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return s;
  }
}

/** A JSON body, held to the same limits as a form; it must be an object, as every Stripe request body is. */
export function parseJson(raw: string): Params {
  if (raw.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw refused('Invalid JSON body.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw refused('Invalid JSON body: it must be an object.');
  }
  const leaves = { n: 0 };
  walk(value, [], leaves);
  return value as Params;
}

function walk(value: unknown, path: string[], leaves: { n: number }): void {
  const depth = path.length - 1;
  if (depth > SANDBOX_LIMITS.depth) {
    throw refused(
      `The request body nests deeper than the sandbox's limit of ${SANDBOX_LIMITS.depth} levels (at ${path.join('.')}). Nothing was processed.`,
    );
  }
  if (
    typeof value === 'number' &&
    !(Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value)))
  ) {
    // JSON.parse has already rounded such a number: accepting it would process another amount than the one sent.
    throw refused(
      `Invalid number at ${path.join('.')}: it cannot be represented exactly (integers must be at most ${Number.MAX_SAFE_INTEGER}).`,
      path.join('.'),
    );
  }
  if (typeof value !== 'object' || value === null) {
    countLeaf(leaves);
    return;
  }
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [String(i), v])
    : Object.entries(value);
  if (Array.isArray(value) && value.length > SANDBOX_LIMITS.arrayElements) {
    throw refused(
      `The array at ${path.join('.')} has ${count(value.length)} elements, more than the sandbox's limit of ${count(SANDBOX_LIMITS.arrayElements)}. Nothing was processed.`,
    );
  }
  if (entries.length === 0) countLeaf(leaves);
  for (const [key, child] of entries) {
    if (key === '__proto__') throw refused(`Invalid parameter name: ${[...path, key].join('.')}`);
    walk(child, [...path, key], leaves);
  }
}

function countLeaf(leaves: { n: number }): void {
  leaves.n++;
  if (leaves.n > SANDBOX_LIMITS.parameters) {
    throw refused(
      `The request body has more than ${count(SANDBOX_LIMITS.parameters)} values, the sandbox's limit. Nothing was processed.`,
    );
  }
}
