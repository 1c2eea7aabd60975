import { encodeForm, ParamError, type Params, type ParamValue, parseForm } from './params.ts';

/**
 * What Airlock forwards, counted on the final request (the caller's parameters plus the explicit amount and the
 * `metadata[airlock_action]` tag Airlock adds). Each sits well below the built-in sandbox's parser (10,000 pairs,
 * 20 levels) so no upstream parser with a limit can drop what the policy saw. Over a limit is refused, never cut.
 */
export const REQUEST_LIMITS = {
  /** Form pairs, or JSON leaves (a v2 body). */
  pairs: 5_000,
  /** Bracket levels in a form key, or object/array nesting in JSON. */
  depth: 10,
  keyLength: 200,
  valueLength: 20_000,
  bodyBytes: 512 * 1024,
} as const;

/** One request exactly as the upstream will receive it: the bytes, and what they parse to. */
export interface BoundRequest {
  /** Form body (v1 POST), JSON body (v2 POST), or the query string (GET, DELETE). */
  body: string;
  encoding: 'form' | 'json' | 'query';
  /** `body` parsed back under Airlock's own limits: the parameters every decision about it reads. */
  params: Params;
}

export function encodingFor(method: string, path: string): BoundRequest['encoding'] {
  if (method === 'GET' || method === 'DELETE') return 'query';
  return path.startsWith('/v2/') ? 'json' : 'form';
}

function refuse(param: string, message: string): never {
  throw new ParamError('parameter_invalid', param, message);
}

// A key holding these would encode into another key's brackets or split a pair: `a[b]` named as one JSON key
// reads as `a` with a `b` inside once encoded, so two different requests would share one encoding.
const AMBIGUOUS_KEY = /[[\]&=]/;

/** Checks caller-given parameters (a JSON body or MCP arguments) for keys a form encoding could not tell apart. */
function checkKeys(value: ParamValue, path: string, depth: number, form: boolean): void {
  if (depth > REQUEST_LIMITS.depth)
    refuse(path, `Parameters are nested deeper than ${REQUEST_LIMITS.depth} levels.`);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value))
      refuse(path, `Invalid number at ${path || 'the top level'}.`);
    return;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) checkKeys(item, `${path}[${i}]`, depth + 1, form);
    return;
  }
  for (const key of Object.keys(value)) {
    const at = path ? `${path}[${key}]` : key;
    if (key === '') refuse(at, 'A parameter has an empty name.');
    if (form && AMBIGUOUS_KEY.test(key))
      refuse(at, `The parameter name '${key.slice(0, 40)}' cannot be encoded unambiguously.`);
    if (key.length > REQUEST_LIMITS.keyLength)
      refuse(at.slice(0, 60), `A parameter name is longer than ${REQUEST_LIMITS.keyLength} characters.`);
    checkKeys(value[key] as ParamValue, at, depth + 1, form);
  }
}

function checkFormBody(body: string): void {
  if (body.length > REQUEST_LIMITS.bodyBytes)
    refuse('', `The request is larger than ${REQUEST_LIMITS.bodyBytes} bytes.`);
  if (body === '') return;
  let pairs = 0;
  for (const pair of body.split('&')) {
    pairs++;
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    if (key.length > REQUEST_LIMITS.keyLength * 3)
      refuse('', `A parameter name is longer than ${REQUEST_LIMITS.keyLength} characters.`);
    if (value.length > REQUEST_LIMITS.valueLength * 3)
      refuse(key.slice(0, 60), `A value is longer than ${REQUEST_LIMITS.valueLength} characters.`);
  }
  if (pairs > REQUEST_LIMITS.pairs)
    refuse('', `Too many parameters (more than ${REQUEST_LIMITS.pairs}, counting those Airlock adds).`);
}

function countLeaves(value: unknown): number {
  if (value === null || typeof value !== 'object') return 1;
  let n = 0;
  for (const v of Array.isArray(value) ? value : Object.values(value)) n += countLeaves(v);
  return Math.max(n, 1);
}

function checkValues(value: unknown, path: string): void {
  if (typeof value === 'string' && value.length > REQUEST_LIMITS.valueLength)
    refuse(path, `A value is longer than ${REQUEST_LIMITS.valueLength} characters.`);
  if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) checkValues(v, path ? `${path}[${k}]` : k);
}

/**
 * Encodes parameters once, as the upstream will receive them, and parses the bytes back: the returned params are
 * what every later step (classification, policy, approval, the receipt) reads, so they are the upstream's view of
 * the request, not the caller's. Throws a ParamError (a Stripe-shaped 400) for anything over a limit or ambiguous.
 */
export function bindRequest(method: string, path: string, params: Params): BoundRequest {
  const encoding = encodingFor(method, path);
  checkKeys(params, '', 0, encoding !== 'json');
  checkValues(params, '');
  if (encoding === 'json') {
    const body = JSON.stringify(params);
    if (Buffer.byteLength(body) > REQUEST_LIMITS.bodyBytes)
      refuse('', `The request is larger than ${REQUEST_LIMITS.bodyBytes} bytes.`);
    if (countLeaves(params) > REQUEST_LIMITS.pairs)
      refuse('', `Too many parameters (more than ${REQUEST_LIMITS.pairs}).`);
    return { body, encoding, params: JSON.parse(body) as Params };
  }
  const body = encodeForm(params);
  checkFormBody(body);
  return { body, encoding, params: parseForm(body) };
}

/** Parses stored bytes back, by the same rules bindRequest used. */
export function parseBound(bound: Pick<BoundRequest, 'body' | 'encoding'>): Params {
  if (bound.encoding === 'json') return bound.body === '' ? {} : (JSON.parse(bound.body) as Params);
  return parseForm(bound.body);
}

/** A copy of params with `dotted` (e.g. `amount`, `amount.value`) set; form values are strings, as a form carries them. */
export function withValue(params: Params, dotted: string, value: string | number): Params {
  const [head, ...rest] = dotted.split('.');
  if (head === undefined) return params;
  if (rest.length === 0) return { ...params, [head]: value };
  const inner = params[head];
  const base = inner && typeof inner === 'object' && !Array.isArray(inner) ? inner : {};
  return { ...params, [head]: withValue(base, rest.join('.'), value) };
}

/** Tags the upstream object with the action id, so an uncertain outcome can be found again. */
export function withTag(params: Params, actionId: string): Params {
  const metadata = params['metadata'];
  // `metadata=` unsets every key; adding ours would turn it into a partial update, so this one goes untagged.
  if (metadata === '') return params;
  const base = metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? metadata : {};
  return { ...params, metadata: { ...base, airlock_action: actionId } };
}
