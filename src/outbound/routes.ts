// Operator-declared routes for the actions API: which generic HTTP calls are refunds, payouts, lookups, and where
// in the body their amount sits. The facts are read from the exact bytes Airlock stores and sends, never taken
// from the caller, and a body another server could read differently is refused. Pure: no I/O.
import { AirlockError } from '../errors.ts';

export const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];

/** A currency the upstream always uses, so it is not read from the body. */
export interface FixedCurrency {
  value: string;
}

export interface Route {
  method: readonly RouteMethod[];
  /** `/v1/orders/:id/refund`: `:name` and `*` stand for one segment, `**` for any number of them. */
  path: string;
  kind: string;
  /** A JSON pointer (`/refund/amount`) into a JSON body, or a form key (`refund[amount]`) of a form body. */
  amount?: string | undefined;
  currency?: string | FixedCurrency | undefined;
}

/** What the caller of the actions API said the call is: claims, never the facts policy values it by. */
export interface Claims {
  kind?: string | undefined;
  amount?: number | undefined;
  currency?: string | undefined;
}

export interface Declared {
  kind: string | null;
  amount: number | null;
  currency: string | null;
}

export interface ActionFacts {
  kind: string;
  amount: number | null;
  currency: string | null;
  /** The caller's claims, kept for policy rules that want to be stricter with them (`:declared_kind:`). */
  declared: Declared | null;
}

/** The request as it will leave Airlock. */
export interface Outgoing {
  method: string;
  /** The URL's path, as sent. */
  pathname: string;
  /** The URL's query (`?a=b`): some servers merge it with the body's parameters. */
  search: string;
  headers: Record<string, string>;
  /** The exact bytes stored and sent, or null for no body. */
  body: string | null;
}

export const GENERIC_KIND = 'http.request';

// What OutboundHttp sends when the caller names no Content-Type; the two must agree.
const DEFAULT_MEDIA_TYPE = 'application/json';
const MAX_DEPTH = 256;
const DIGITS = /^(0|[1-9][0-9]*)$/;
const CURRENCY = /^[A-Za-z]{3}$/;

// --- configuration checks (used by the config schema, so a bad route stops start-up) ------------------------------

/** Why a route path pattern is unusable, or null. */
export function patternProblem(pattern: string): string | null {
  if (!pattern.startsWith('/')) return 'expected a path starting with /, such as /v1/orders/:id/refund';
  if (/[?#]/.test(pattern)) return 'a route path has no query or fragment';
  for (const segment of pattern.split('/').slice(1)) {
    if (segment === '*' || segment === '**') continue;
    if (segment.startsWith(':')) {
      if (!/^:[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) return `'${segment}' is not a valid :name segment`;
      continue;
    }
    if (segment.includes('*')) return `'${segment}': * and ** stand for whole segments`;
    if (segment === '.' || segment === '..') return `'${segment}' is not a path segment a request can hold`;
  }
  return null;
}

/** Why a body location (JSON pointer or form key) is unusable, or null. */
export function locationProblem(location: string): string | null {
  if (isPointer(location)) {
    if (/~(?![01])/.test(location)) return 'in a JSON pointer, ~ must be written ~0 and / inside a key ~1';
    if (location.split('/').slice(1).includes(''))
      return 'a JSON pointer here names keys, none of them empty';
    return null;
  }
  if (!/^[^[\]&=;]+(\[[^[\]&=;]+\])*$/.test(location)) {
    return 'expected a JSON pointer such as /refund/amount or a form key such as amount or refund[amount]';
  }
  return null;
}

export function isPointer(location: string): boolean {
  return location.startsWith('/');
}

// --- matching -------------------------------------------------------------------------------------------------------

/**
 * The first route declared for this method and path. Matching is lenient on purpose (case, repeated or trailing
 * slashes, percent-encoding, `;params`): a path that may reach the same handler upstream must not escape its route.
 */
export function matchRoute(routes: readonly Route[], method: string, pathname: string): Route | null {
  const path = requestSegments(pathname);
  for (const route of routes) {
    if (!route.method.includes(method as RouteMethod)) continue;
    if (matches(patternSegments(route.path), 0, path, 0)) return route;
  }
  return null;
}

function requestSegments(pathname: string): string[] {
  const out: string[] = [];
  for (const raw of pathname.split('/')) {
    const bare = raw.split(';')[0]!;
    for (const part of decodeLenient(bare).split(/[/\\]/)) {
      if (part === '' || part === '.') continue;
      if (part === '..') out.pop();
      else out.push(part.toLowerCase());
    }
  }
  return out;
}

function patternSegments(pattern: string): string[] {
  return pattern
    .split('/')
    .filter((s) => s !== '')
    .map((s) => (s.startsWith(':') ? '*' : s === '**' ? s : decodeLenient(s).toLowerCase()));
}

function matches(pattern: string[], i: number, path: string[], j: number): boolean {
  if (i === pattern.length) return j === path.length;
  const segment = pattern[i]!;
  if (segment === '**') {
    for (let k = j; k <= path.length; k++) if (matches(pattern, i + 1, path, k)) return true;
    return false;
  }
  if (j === path.length) return false;
  return (segment === '*' || segment === path[j]) && matches(pattern, i + 1, path, j + 1);
}

function decodeLenient(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

// --- facts ----------------------------------------------------------------------------------------------------------

/**
 * The facts policy values a generic action by. With a route they come from the route and the body, and a caller
 * claim that differs is refused; without one the action is `http.request` of unknown amount, whatever the caller
 * says. Either way the caller's claims are kept as declared facts, which rules may only use to be stricter.
 */
export function actionFacts(route: Route | null, outgoing: Outgoing, claims: Claims): ActionFacts {
  const declared: Declared | null =
    claims.kind === undefined && claims.amount === undefined && claims.currency === undefined
      ? null
      : { kind: claims.kind ?? null, amount: claims.amount ?? null, currency: claims.currency ?? null };
  if (!route) return { kind: GENERIC_KIND, amount: null, currency: null, declared };

  const where = `${route.method.join('|')} ${route.path}`;
  if (claims.kind !== undefined && claims.kind !== route.kind) {
    throw new AirlockError(
      'parameter_invalid',
      `kind '${claims.kind}' does not match this URL: the operator declares ${where} as ${route.kind}. Leave kind out, or send ${route.kind}`,
      { param: 'kind' },
    );
  }
  const { amount, currency } = readFacts(route, outgoing, where);
  if (route.amount !== undefined && claims.amount !== undefined && claims.amount !== amount) {
    throw new AirlockError(
      'parameter_invalid',
      `amount ${claims.amount} does not match the body's amount at ${route.amount} (${amount}); leave amount out, or send the body's`,
      { param: 'amount' },
    );
  }
  if (route.currency !== undefined && claims.currency !== undefined && claims.currency !== currency) {
    throw new AirlockError(
      'parameter_invalid',
      `currency '${claims.currency}' does not match this call's currency '${currency}'; leave currency out, or send '${currency}'`,
      { param: 'currency' },
    );
  }
  return { kind: route.kind, amount, currency, declared };
}

function readFacts(
  route: Route,
  outgoing: Outgoing,
  where: string,
): { amount: number | null; currency: string | null } {
  if (route.amount === undefined) return { amount: null, currency: null };
  const body = readableBody(route.amount, outgoing, where);
  const amountText = body.read(route.amount, 'amount');
  if (!DIGITS.test(amountText) || !Number.isSafeInteger(Number(amountText))) {
    throw new AirlockError(
      'parameter_invalid',
      `${where} reads its amount from ${route.amount} in the body: expected a non-negative whole number of minor units (a JSON number or a string of digits), not ${shown(amountText)}`,
      { param: 'body' },
    );
  }
  let currency: string | null = null;
  if (typeof route.currency === 'object') currency = route.currency.value.toLowerCase();
  else if (route.currency !== undefined) {
    const text = body.read(route.currency, 'currency');
    if (!CURRENCY.test(text)) {
      throw new AirlockError(
        'parameter_invalid',
        `${where} reads its currency from ${route.currency} in the body: expected a three-letter ISO code, not ${shown(text)}`,
        { param: 'body' },
      );
    }
    currency = text.toLowerCase();
  }
  return { amount: Number(amountText), currency };
}

// --- a reviewer's lower amount -------------------------------------------------------------------------------------

/**
 * The body with the route's amount set to `amount` and every other byte as it was: the JSON value's token (a number
 * stays a number, a string a string) or the form parameter's value, replaced where it stands. The result is read
 * back through the route and must say exactly the new amount and the same currency, or nothing is rewritten.
 */
export function withAmount(route: Route, outgoing: Outgoing, amount: number): string {
  const where = `${route.method.join('|')} ${route.path}`;
  if (route.amount === undefined) {
    throw new AirlockError(
      'parameter_invalid',
      `The operator's route ${where} declares no amount (amount:), so this call has none to lower; reject it instead`,
      { param: 'amount' },
    );
  }
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new AirlockError(
      'parameter_invalid',
      'The changed amount must be a positive whole number of minor units',
      {
        param: 'amount',
      },
    );
  }
  const before = readFacts(route, outgoing, where);
  const body = outgoing.body ?? '';
  const rewritten = isPointer(route.amount)
    ? rewriteJson(body, route.amount, amount)
    : rewriteForm(body, route.amount, amount);
  const after = rewritten === null ? null : readFacts(route, { ...outgoing, body: rewritten }, where);
  if (rewritten === null || after?.amount !== amount || after.currency !== before.currency) {
    throw new AirlockError(
      'parameter_invalid',
      `The body cannot be rewritten so that ${where} reads ${amount} at ${route.amount}; reject it instead`,
      { param: 'amount' },
    );
  }
  return rewritten;
}

function rewriteJson(body: string, pointer: string, amount: number): string | null {
  const parser = new JsonParser(body, pointerSegments(pointer));
  parser.document();
  if (!parser.span) return null;
  const [start, end] = parser.span;
  const token = body[start] === '"' ? `"${amount}"` : String(amount);
  return body.slice(0, start) + token + body.slice(end);
}

function rewriteForm(body: string, key: string, amount: number): string | null {
  let hits = 0;
  const pieces = body.split('&').map((piece) => {
    const eq = piece.indexOf('=');
    const rawKey = eq < 0 ? piece : piece.slice(0, eq);
    if (piece === '' || decodeLenient(rawKey.replace(/\+/g, ' ')) !== key) return piece;
    hits++;
    return `${rawKey}=${amount}`;
  });
  return hits === 1 ? pieces.join('&') : null;
}

interface ReadableBody {
  /** The scalar at a location, as text (a JSON number keeps its lexeme); throws a 400 when missing or ambiguous. */
  read(location: string, fact: string): string;
}

function readableBody(location: string, outgoing: Outgoing, where: string): ReadableBody {
  const json = isPointer(location);
  const media = mediaType(outgoing.headers);
  const expected = json ? 'a JSON body' : 'an application/x-www-form-urlencoded body';
  const fits = json
    ? media === 'application/json' || /^application\/[^/]+\+json$/.test(media)
    : media === 'application/x-www-form-urlencoded';
  if (!fits) {
    throw new AirlockError(
      'parameter_invalid',
      `${where} reads its facts from ${expected}, but the body is sent as ${media}`,
      { param: 'headers.content-type' },
    );
  }
  if (outgoing.body === null || outgoing.body === '') {
    throw new AirlockError(
      'parameter_missing',
      `${where} reads its amount from ${location} in the body, and there is no body`,
      { param: 'body' },
    );
  }
  const missing = (loc: string, fact: string) =>
    new AirlockError(
      'parameter_missing',
      `${where} reads its ${fact} from ${loc} in the body; it is not there`,
      {
        param: 'body',
      },
    );
  const ambiguous = (loc: string, why: string) =>
    new AirlockError('parameter_invalid', `The body is ambiguous at ${loc} (${why}); send it once, plainly`, {
      param: 'body',
    });
  const query = pairs(outgoing.search.replace(/^\?/, ''), /[&;]/, false);
  const checkQuery = (loc: string, path: string[]) => {
    const clash = query.find((p) => overlaps(keyPath(p.key), path));
    if (clash)
      throw ambiguous(loc, `the query also sets '${clash.key}', which some servers merge with the body`);
  };

  if (json) {
    let doc: Json;
    try {
      doc = new JsonParser(outgoing.body).document();
    } catch (err) {
      throw new AirlockError(
        'parameter_invalid',
        `${where} reads its facts from a JSON body, and the body is not valid JSON: ${(err as Error).message}`,
        { param: 'body' },
      );
    }
    return {
      read(loc, fact) {
        const path = pointerSegments(loc);
        checkQuery(loc, path.flatMap(keyPath));
        const found = walk(doc, path, (why) => ambiguous(loc, why));
        if (found === undefined || found === null) throw missing(loc, fact);
        if (found instanceof JsonNumber) return found.text;
        if (typeof found === 'string') return found;
        return found instanceof JsonObject ? 'an object' : Array.isArray(found) ? 'a list' : String(found);
      },
    };
  }

  if (outgoing.body.includes(';')) {
    throw ambiguous(location, "a raw ';' separates parameters for some servers; encode it as %3B");
  }
  const form = pairs(outgoing.body, /&/, true);
  return {
    read(loc, fact) {
      const path = keyPath(loc);
      checkQuery(loc, path);
      const clashing = form.filter((p) => overlaps(keyPath(p.key), path));
      const exact = clashing.filter((p) => p.key === loc);
      if (clashing.length === 0) throw missing(loc, fact);
      if (exact.length !== 1 || clashing.length !== 1) {
        const others = clashing
          .slice(0, 5)
          .map((p) => shown(p.key))
          .join(', ');
        throw ambiguous(loc, `the body sets ${others}, which servers may read as the same parameter`);
      }
      return exact[0]!.value;
    },
  };
}

function shown(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** The one Content-Type the request is sent with, as a bare lower-case media type. */
function mediaType(headers: Record<string, string>): string {
  const values = Object.entries(headers)
    .filter(([name]) => name.toLowerCase() === 'content-type')
    .map(([, value]) => value);
  if (values.length > 1) {
    throw new AirlockError('parameter_invalid', 'headers name Content-Type more than once', {
      param: 'headers.content-type',
    });
  }
  return values.length === 0 ? DEFAULT_MEDIA_TYPE : values[0]!.split(';')[0]!.trim().toLowerCase();
}

// --- form bodies and queries ----------------------------------------------------------------------------------------

interface Pair {
  key: string;
  value: string;
}

function pairs(text: string, separator: RegExp, strict: boolean): Pair[] {
  const decode = (s: string): string => {
    const spaced = s.replace(/\+/g, ' ');
    if (!strict) return decodeLenient(spaced);
    try {
      return decodeURIComponent(spaced);
    } catch {
      throw new AirlockError('parameter_invalid', `The form body holds a malformed %-escape in '${s}'`, {
        param: 'body',
      });
    }
  };
  return text
    .split(separator)
    .filter((piece) => piece !== '')
    .map((piece) => {
      const eq = piece.indexOf('=');
      return eq < 0
        ? { key: decode(piece), value: '' }
        : { key: decode(piece.slice(0, eq)), value: decode(piece.slice(eq + 1)) };
    });
}

// `refund[amount]`, `refund.amount`, `Refund[Amount]` and `refund[amount][]` are one parameter to some server.
function keyPath(key: string): string[] {
  return key
    .toLowerCase()
    .split(/[[\].]+/)
    .filter((s) => s !== '');
}

/** One path is a prefix of the other: the two name the same value or one holds the other. */
function overlaps(a: string[], b: string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

// --- JSON bodies ----------------------------------------------------------------------------------------------------

// The parse keeps what JSON.parse throws away: every member of an object (duplicates too) and numbers' lexemes.
type Json = null | boolean | string | JsonNumber | Json[] | JsonObject;

class JsonNumber {
  constructor(readonly text: string) {}
}

class JsonObject {
  constructor(readonly members: [string, Json][]) {}
}

function pointerSegments(pointer: string): string[] {
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function walk(doc: Json, path: string[], ambiguous: (why: string) => Error): Json | undefined {
  let at: Json = doc;
  for (const segment of path) {
    if (at instanceof JsonObject) {
      const lower = segment.toLowerCase();
      const same = at.members.filter(([k]) => k.toLowerCase() === lower);
      const exact = same.filter(([k]) => k === segment);
      if (same.length === 0) return undefined;
      if (exact.length !== 1 || same.length !== 1) {
        throw ambiguous(
          exact.length > 1
            ? `the key "${segment}" appears ${exact.length} times`
            : `keys ${same.map(([k]) => JSON.stringify(k)).join(', ')} differ only in case`,
        );
      }
      at = exact[0]![1];
    } else if (Array.isArray(at)) {
      if (!DIGITS.test(segment) || Number(segment) >= at.length) return undefined;
      at = at[Number(segment)]!;
    } else {
      return undefined;
    }
  }
  return at;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON refuses raw control characters in strings.
const PLAIN = /[^"\\\u0000-\u001f]*/y;
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/**
 * RFC 8259 JSON, as strict as JSON.parse, keeping duplicate members so they can be refused. Given a path of keys, it
 * also records where in the text the value at that path lies (`span`), so that value alone can be rewritten.
 */
class JsonParser {
  #i = 0;
  readonly #path: string[] = [];
  span: [number, number] | null = null;
  constructor(
    readonly text: string,
    readonly target: readonly string[] | null = null,
  ) {}

  document(): Json {
    const value = this.#value(0);
    this.#space();
    if (this.#i !== this.text.length) this.#fail('unexpected text after the value');
    return value;
  }

  #fail(what: string): never {
    throw new SyntaxError(`${what} at position ${this.#i}`);
  }

  #space(): void {
    const t = this.text;
    while (
      this.#i < t.length &&
      (t[this.#i] === ' ' || t[this.#i] === '\t' || t[this.#i] === '\n' || t[this.#i] === '\r')
    )
      this.#i++;
  }

  #value(depth: number): Json {
    if (depth > MAX_DEPTH) this.#fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.#space();
    const start = this.#i;
    const value = this.#bare(depth);
    if (this.#atTarget()) this.span = [start, this.#i];
    return value;
  }

  #atTarget(): boolean {
    const target = this.target;
    if (!target || target.length !== this.#path.length) return false;
    return target.every((segment, k) => segment === this.#path[k]);
  }

  #bare(depth: number): Json {
    switch (this.text[this.#i]) {
      case '{':
        return this.#object(depth);
      case '[':
        return this.#array(depth);
      case '"':
        return this.#string();
      case 't':
        return this.#word('true', true);
      case 'f':
        return this.#word('false', false);
      case 'n':
        return this.#word('null', null);
      default:
        return this.#number();
    }
  }

  #object(depth: number): JsonObject {
    this.#i++;
    const members: [string, Json][] = [];
    this.#space();
    if (this.text[this.#i] === '}') {
      this.#i++;
      return new JsonObject(members);
    }
    for (;;) {
      this.#space();
      if (this.text[this.#i] !== '"') this.#fail('expected a key');
      const key = this.#string();
      this.#space();
      if (this.text[this.#i] !== ':') this.#fail("expected ':'");
      this.#i++;
      this.#path.push(key);
      members.push([key, this.#value(depth + 1)]);
      this.#path.pop();
      this.#space();
      const c = this.text[this.#i++];
      if (c === '}') return new JsonObject(members);
      if (c !== ',') this.#fail("expected ',' or '}'");
    }
  }

  #array(depth: number): Json[] {
    this.#i++;
    const items: Json[] = [];
    this.#space();
    if (this.text[this.#i] === ']') {
      this.#i++;
      return items;
    }
    for (;;) {
      this.#path.push(String(items.length));
      items.push(this.#value(depth + 1));
      this.#path.pop();
      this.#space();
      const c = this.text[this.#i++];
      if (c === ']') return items;
      if (c !== ',') this.#fail("expected ',' or ']'");
    }
  }

  #string(): string {
    this.#i++;
    let out = '';
    for (;;) {
      PLAIN.lastIndex = this.#i;
      PLAIN.test(this.text);
      out += this.text.slice(this.#i, PLAIN.lastIndex);
      this.#i = PLAIN.lastIndex;
      const c = this.text[this.#i++];
      if (c === '"') return out;
      if (c !== '\\') this.#fail(c === undefined ? 'unterminated string' : 'control character in a string');
      const e = this.text[this.#i++];
      if (e === 'u') {
        const hex = this.text.slice(this.#i, this.#i + 4);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.#fail('bad \\u escape');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.#i += 4;
      } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
      } else {
        this.#fail('bad escape');
      }
    }
  }

  #word<T extends Json>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.#i)) this.#fail('unexpected token');
    this.#i += word.length;
    return value;
  }

  #number(): JsonNumber {
    NUMBER.lastIndex = this.#i;
    const m = NUMBER.exec(this.text);
    if (!m) this.#fail(this.#i >= this.text.length ? 'unexpected end' : 'unexpected token');
    this.#i += m[0].length;
    return new JsonNumber(m[0]);
  }
}
