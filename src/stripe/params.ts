import qs from 'qs';

export type ParamValue = string | Params | ParamValue[] | number | boolean | null;
export type Params = { [key: string]: ParamValue };

export type ParamErrorCode = 'parameter_invalid_integer' | 'parameter_invalid' | 'parameter_missing';

/** A request parameter Stripe would reject; `param` names it the way Stripe's errors do. */
export class ParamError extends Error {
  readonly code: ParamErrorCode;
  readonly param: string;

  constructor(code: ParamErrorCode, param: string, message: string) {
    super(message);
    this.name = 'ParamError';
    this.code = code;
    this.param = param;
  }
}

// Stripe's deepest documented nesting is about 6 levels; deeper input is refused, not flattened.
const MAX_DEPTH = 10;
// Beyond this index qs keeps numeric keys as an object, which re-encodes to the same form.
const ARRAY_LIMIT = 1000;
// Half the built-in sandbox's 10,000, so what Airlock adds can never push a pair past an upstream's limit
// (src/stripe/encoding.ts counts the final request against the same figure).
const MAX_PARAMS = 5_000;

const PARSE_OPTIONS: qs.IParseOptions = {
  depth: MAX_DEPTH,
  strictDepth: true,
  arrayLimit: ARRAY_LIMIT,
  // Counted by us, so a long body is refused instead of silently truncated.
  parameterLimit: Number.POSITIVE_INFINITY,
  // Keys that shadow Object.prototype (`__proto__`, `constructor`, `toString`) are dropped.
  allowPrototypes: false,
  plainObjects: false,
  allowDots: false,
  // A repeated key becomes an array, so `amount=1&amount=999` cannot pass as a single amount.
  duplicates: 'combine',
};

function parse(text: string): Params {
  if (text === '') return {};
  let pairs = 1;
  for (let i = text.indexOf('&'); i !== -1; i = text.indexOf('&', i + 1)) pairs++;
  if (pairs > MAX_PARAMS) {
    throw new ParamError('parameter_invalid', '', `Too many parameters (more than ${MAX_PARAMS}).`);
  }
  try {
    return qs.parse(text, PARSE_OPTIONS) as Params;
  } catch (err) {
    if (err instanceof RangeError) {
      throw new ParamError('parameter_invalid', '', `Parameters are nested deeper than ${MAX_DEPTH} levels.`);
    }
    throw err;
  }
}

/** Parses an `application/x-www-form-urlencoded` body in Stripe's bracket notation. */
export function parseForm(body: string): Params {
  return parse(body);
}

/** Parses a query string (with or without the leading `?`) by the same rules as a form body. */
export function parseQuery(search: string): Params {
  return parse(search.startsWith('?') ? search.slice(1) : search);
}

// Same escaping as stripe-node: encodeURIComponent plus the characters qs escapes, brackets left readable.
function encodePart(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%5B/g, '[')
    .replace(/%5D/g, ']');
}

/** Encodes params as the official `stripe` client does: `a[b]=c`, arrays as `a[0]=x`, null as empty. */
export function encodeForm(params: Params): string {
  const pairs: string[] = [];
  const visit = (key: string, value: ParamValue | undefined): void => {
    if (value === undefined) return;
    if (value === null || typeof value !== 'object') {
      pairs.push(`${encodePart(key)}=${encodePart(value === null ? '' : String(value))}`);
    } else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) visit(`${key}[${i}]`, item);
    } else {
      for (const k of Object.keys(value)) visit(`${key}[${k}]`, value[k]);
    }
  };
  for (const key of Object.keys(params)) visit(key, params[key]);
  return pairs.join('&');
}

/**
 * Deterministic JSON: object keys sorted (by UTF-16 code units) at every level, no whitespace, otherwise
 * JSON.stringify's rules (undefined dropped from objects and null in arrays, toJSON honoured).
 * Used to hash requests, so two orderings of the same request hash the same.
 */
export function canonicalJson(value: unknown): string {
  const out = write(value, new Set());
  if (out === undefined) throw new TypeError('canonicalJson: value is not representable as JSON');
  return out;
}

function write(value: unknown, ancestors: Set<object>): string | undefined {
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  ) {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  if (value === null || typeof value !== 'object') {
    // Primitives: strings, numbers (non-finite become null), booleans; undefined, functions, symbols vanish.
    return JSON.stringify(value) as string | undefined;
  }
  if (ancestors.has(value)) throw new TypeError('canonicalJson: circular structure');
  ancestors.add(value);
  let out: string;
  if (Array.isArray(value)) {
    out = `[${value.map((item) => write(item, ancestors) ?? 'null').join(',')}]`;
  } else {
    const record = value as Record<string, unknown>;
    const members: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = write(record[key], ancestors);
      if (member !== undefined) members.push(`${JSON.stringify(key)}:${member}`);
    }
    out = `{${members.join(',')}}`;
  }
  ancestors.delete(value);
  return out;
}
