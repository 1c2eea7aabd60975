import { createHash } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { actingAccount } from './account.ts';
import { bodyText, checkBodySize, parseForm, parseJson } from './body.ts';
import { StripeApiError, unrecognizedUrl } from './errors.ts';
import { newRequestId } from './ids.ts';
import { applyExpand, type Params } from './params.ts';
import { handleV2 } from './resources/v2.ts';
import type { Handler } from './router.ts';
import { buildRouter } from './routes.ts';
import { SandboxStore } from './store.ts';

export interface SandboxFaults {
  /** The next N matching requests answer `failStatus` with a Stripe api_error body, without processing. */
  failNext?: number;
  failStatus?: number;
  /** Seconds to put in a Retry-After header on fault answers (Stripe sends it with some 429s). */
  retryAfter?: number;
  /** The next N matching requests: the socket is destroyed without any answer, without processing. */
  dropNext?: number;
  /** Every matching request: socket destroyed, no processing, until cleared. */
  down?: boolean;
  /** Wait before processing each matching request. */
  delayMs?: number;
  /** Process (and store the idempotent result), then wait this long before answering. */
  holdResponseMs?: number;
  /** Faults apply only to requests whose path starts with this. */
  pathPrefix?: string;
}

export interface SandboxRequestLog {
  method: string;
  path: string;
  /** The query string exactly as received, without its `?`; '' when there was none. */
  rawQuery: string;
  /** The body exactly as received (its bytes read as UTF-8); '' when there was none. */
  rawBody: string;
  /** The Content-Type header as received, or null. */
  contentType: string | null;
  /** The parsed query and body (the query alone for GET); {} when the request was refused before parsing. */
  params: Record<string, unknown>;
  /** The request headers as received (an empty header is ''), or null when absent. */
  idempotencyKey: string | null;
  stripeAccount: string | null;
  stripeContext: string | null;
  stripeVersion: string | null;
  /** The account the request acted on (Stripe-Context's last id, else Stripe-Account), or null for the platform. */
  account: string | null;
  /** Why the sandbox refused the request before processing it (a limit, an unreadable body, an account), or null. */
  refused: string | null;
  faulted: boolean;
  at: number;
}

/** A request body as the bytes that arrived; the Stripe handler parses it under the sandbox's limits. */
interface RawBody {
  bytes: Buffer;
  json: boolean;
}

function isRawBody(v: unknown): v is RawBody {
  return typeof v === 'object' && v !== null && Buffer.isBuffer((v as RawBody).bytes);
}

export interface Sandbox {
  url: string;
  port: number;
  setFaults(f: SandboxFaults): void;
  clearFaults(): void;
  /** Every Stripe API request received, in order. */
  requests(): SandboxRequestLog[];
  /**
   * All objects of a type (`refund`, `charge`, …), oldest first: of every account, or only of `account` (null: the
   * platform's own).
   */
  list(objectType: string, opts?: { account?: string | null }): Record<string, unknown>[];
  onRequest(cb: (r: SandboxRequestLog) => void): () => void;
  /** Clears objects, idempotency records, the request log and faults. */
  reset(): void;
  /** Test-only hook for seeding history: sets timestamp fields (`created`, `canceled_at`) of a stored object. */
  backdate(id: string, times: Record<string, number>): void;
  close(): Promise<void>;
}

export interface SandboxOptions {
  /** SQLite file; default ':memory:'. */
  dbPath?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

const faultsSchema = z.object({
  failNext: z.number().int().min(0).optional(),
  failStatus: z.number().int().min(400).max(599).optional(),
  retryAfter: z.number().int().min(0).optional(),
  dropNext: z.number().int().min(0).optional(),
  down: z.boolean().optional(),
  delayMs: z.number().min(0).optional(),
  holdResponseMs: z.number().min(0).optional(),
  pathPrefix: z.string().optional(),
});

// Fastify's own cap, far above the sandbox's body limit, so that a body over that limit is still read and logged.
const HARD_BODY_LIMIT = 16 * 1024 * 1024;
const KEY_PATTERN = /^(sk|rk)_(test|live)_\S+$/;
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const NO_KEY_MESSAGE =
  "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";

type Outcome = { status: number; body: string; stored: boolean };

function apiKeyOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  const scheme = space < 0 ? '' : header.slice(0, space).toLowerCase();
  const value = space < 0 ? header : header.slice(space + 1).trim();
  if (scheme === 'basic') return Buffer.from(value, 'base64').toString('utf8').split(':')[0];
  return value;
}

/** Shows at most a known prefix and the last four characters, as Stripe does. */
export function redactKey(key: string): string {
  const prefix = /^[a-z]{2,3}_(test|live)_/.exec(key)?.[0] ?? '';
  const tail = key.length - prefix.length >= 16 ? key.slice(-4) : '';
  return prefix + '*'.repeat(Math.max(4, key.length - prefix.length - tail.length)) + tail;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
      );
    }
    return v;
  });
}

function errorJson(err: StripeApiError): string {
  return JSON.stringify(err.body());
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const store = new SandboxStore(opts.dbPath ?? ':memory:');
  const router = buildRouter();
  const log: SandboxRequestLog[] = [];
  const listeners = new Set<(r: SandboxRequestLog) => void>();
  const inFlight = new Set<string>();
  let faults: SandboxFaults = {};
  let closed = false;

  const app = Fastify({
    logger: false,
    bodyLimit: HARD_BODY_LIMIT,
    // Queries are parsed from the raw URL by the Stripe handler, under the sandbox's limits.
    routerOptions: { querystringParser: () => ({}) },
  });

  // Bodies stay bytes until the Stripe handler has logged them; it parses them under the sandbox's limits.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, { bytes: body as Buffer, json: true } satisfies RawBody);
  });
  // Stripe's v1 bodies are form-encoded with bracket notation; anything else is read the same way.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, { bytes: body as Buffer, json: false } satisfies RawBody);
  });

  function send(reply: FastifyReply, status: number, json: string): FastifyReply {
    return reply.code(status).header('content-type', 'application/json').send(json);
  }

  app.setErrorHandler((error, _request, reply) => {
    reply.header('request-id', newRequestId());
    if (error instanceof StripeApiError) return send(reply, error.status, errorJson(error));
    const { statusCode, message } = error as { statusCode?: number; message?: string };
    const status = statusCode ?? 500;
    const type = status < 500 ? 'invalid_request_error' : 'api_error';
    return send(reply, status, JSON.stringify({ error: { type, message: message ?? 'Bad request.' } }));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.header('request-id', newRequestId());
    return send(reply, 404, errorJson(unrecognizedUrl(request.method, request.url.split('?')[0]!)));
  });

  app.post('/__sandbox/faults', async (request, reply) => {
    let body: unknown;
    try {
      body = isRawBody(request.body) ? JSON.parse(request.body.bytes.toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    const parsed = faultsSchema.safeParse(body);
    if (!parsed.success) {
      return send(
        reply,
        400,
        JSON.stringify({ error: { type: 'invalid_request_error', message: parsed.error.message } }),
      );
    }
    faults = parsed.data;
    return send(reply, 200, JSON.stringify(faults));
  });
  app.delete('/__sandbox/faults', async (_request, reply) => {
    faults = {};
    return send(reply, 200, '{}');
  });
  app.get('/__sandbox/requests', async (_request, reply) => send(reply, 200, JSON.stringify(log)));
  app.get<{ Params: { type: string } }>('/__sandbox/objects/:type', async (request, reply) => {
    // `?account=acct_…` narrows to one account, `?account=` to the platform's own objects.
    const account = new URL(request.url, 'http://sandbox').searchParams.get('account');
    return send(reply, 200, JSON.stringify(store.all(request.params.type, account ?? undefined)));
  });
  app.post('/__sandbox/reset', async (_request, reply) => {
    reset();
    return send(reply, 200, '{}');
  });

  app.route({ method: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], url: '/*', handler: handleStripe });

  async function handleStripe(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> {
    const method = request.method;
    const mark = request.url.indexOf('?');
    const path = mark < 0 ? request.url : request.url.slice(0, mark);
    const rawQuery = mark < 0 ? '' : request.url.slice(mark + 1);
    const raw = isRawBody(request.body) ? request.body : null;
    const stripeAccountHeader = rawHeader(request, 'stripe-account');
    const stripeContextHeader = rawHeader(request, 'stripe-context');
    const idempotencyHeader = rawHeader(request, 'idempotency-key');
    // An empty header is no header, as Stripe's clients never send one.
    const idempotencyKey = idempotencyHeader || null;
    const apiKey = apiKeyOf(request.headers.authorization);

    // Both are read before anything else so that the log holds them; a refusal is answered after authentication.
    let refusal: StripeApiError | null = null;
    let account: string | null = null;
    let params: Params = {};
    try {
      account = actingAccount(
        stripeAccountHeader || null,
        stripeContextHeader || null,
        redactKey(apiKey ?? ''),
      );
    } catch (err) {
      refusal = refusalOf(err);
    }
    try {
      params = requestParams(method, rawQuery, raw);
    } catch (err) {
      refusal ??= refusalOf(err);
    }
    const f = faults;
    const matches = f.pathPrefix === undefined || path.startsWith(f.pathPrefix);

    let fault: 'drop' | 'fail' | null = null;
    if (matches) {
      if (f.down) fault = 'drop';
      else if (f.dropNext && f.dropNext > 0) {
        f.dropNext--;
        fault = 'drop';
      } else if (f.failNext && f.failNext > 0) {
        f.failNext--;
        fault = 'fail';
      }
    }
    const entry: SandboxRequestLog = {
      method,
      path,
      rawQuery,
      rawBody: raw ? raw.bytes.toString('utf8') : '',
      contentType: rawHeader(request, 'content-type'),
      params,
      idempotencyKey: idempotencyHeader,
      stripeAccount: stripeAccountHeader,
      stripeContext: stripeContextHeader,
      stripeVersion: rawHeader(request, 'stripe-version'),
      account,
      refused: refusal?.message ?? null,
      faulted: fault !== null,
      at: Date.now(),
    };
    log.push(entry);
    for (const cb of listeners) cb(entry);

    if (fault === 'drop') {
      reply.hijack();
      request.raw.socket.destroy();
      return undefined;
    }
    reply.header('request-id', newRequestId());
    if (idempotencyKey) reply.header('idempotency-key', idempotencyKey);
    if (fault === 'fail') {
      if (f.retryAfter !== undefined) reply.header('retry-after', String(f.retryAfter));
      const err = new StripeApiError(
        f.failStatus ?? 500,
        'api_error',
        'An unknown error occurred while processing your request (sandbox fault).',
      );
      return send(reply, err.status, errorJson(err));
    }

    if (!apiKey || !KEY_PATTERN.test(apiKey)) {
      const message = apiKey ? `Invalid API Key provided: ${redactKey(apiKey)}` : NO_KEY_MESSAGE;
      reply.header('www-authenticate', 'Basic realm="Stripe"');
      return send(reply, 401, JSON.stringify({ error: { type: 'invalid_request_error', message } }));
    }
    // Refused whole: nothing is processed and no idempotency record is kept, so a corrected retry is processed.
    if (refusal) return send(reply, refusal.status, errorJson(refusal));

    const isV2 = path.startsWith('/v2/');
    let handler: Handler | undefined;
    let args: string[] = [];
    if (isV2) handler = handleV2;
    else if (path.startsWith('/v1/')) {
      const m = router.match(method, path);
      if (m) ({ handler, args } = m);
    }
    if (!handler) return send(reply, 404, errorJson(unrecognizedUrl(method, path)));

    const idempotent = idempotencyKey !== null && (method === 'POST' || (isV2 && method === 'DELETE'));
    let scope: string | null = null;
    let canonicalParams = '';
    if (idempotent) {
      if (idempotencyKey.length > 255) {
        const err = new StripeApiError(
          400,
          'invalid_request_error',
          `Invalid idempotency key: it can be at most 255 characters long.`,
        );
        return send(reply, 400, errorJson(err));
      }
      // Stripe keeps idempotency records per account: the same key under two accounts is two requests.
      scope = `${createHash('sha256').update(apiKey).digest('base64url')}\n${account ?? ''}\n${idempotencyKey}`;
      canonicalParams = canonical(params);
      if (inFlight.has(scope)) {
        const err = new StripeApiError(
          409,
          'idempotency_error',
          `There is currently another in-progress request using this Idempotency-Key (that probably means you submitted twice, and the other request is still going through): '${idempotencyKey}'. Please try again later.`,
        );
        return send(reply, 409, errorJson(err));
      }
      const previous = store.getIdempotency(scope);
      if (previous && Date.now() - previous.createdMs < IDEMPOTENCY_TTL_MS) {
        if (previous.method !== method || previous.path !== path) {
          const err = new StripeApiError(
            400,
            'idempotency_error',
            `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${previous.method} ${previous.path}' vs '${method} ${path}'). Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
          );
          return send(reply, 400, errorJson(err));
        }
        if (previous.params !== canonicalParams) {
          const err = new StripeApiError(
            400,
            'idempotency_error',
            `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
          );
          return send(reply, 400, errorJson(err));
        }
        reply.header('idempotent-replayed', 'true');
        return send(reply, previous.status, previous.body);
      }
      inFlight.add(scope);
    }

    let outcome: Outcome;
    try {
      if (matches && f.delayMs) await sleep(f.delayMs);
      if (closed) {
        reply.hijack();
        request.raw.socket.destroy();
        return undefined;
      }
      outcome = process(
        handler,
        { store: store.forAccount(account), params, args, method, path },
        scope,
        canonicalParams,
      );
    } finally {
      if (scope) inFlight.delete(scope);
    }
    if (matches && f.holdResponseMs) await sleep(f.holdResponseMs);
    return send(reply, outcome.status, outcome.body);
  }

  function process(
    handler: Handler,
    ctx: Parameters<Handler>[0],
    scope: string | null,
    canonicalParams: string,
  ): Outcome {
    try {
      // A StripeApiError keeps the writes made before it (a declined charge is still recorded); other errors roll back.
      return store.transaction(() => {
        let outcome: Outcome;
        try {
          const result = applyExpand(ctx.store, handler(ctx), ctx.params);
          outcome = { status: 200, body: JSON.stringify(result), stored: true };
        } catch (err) {
          if (!(err instanceof StripeApiError)) throw err;
          outcome = { status: err.status, body: errorJson(err), stored: err.stored };
        }
        if (scope && outcome.stored) {
          store.putIdempotency(scope, {
            method: ctx.method,
            path: ctx.path,
            params: canonicalParams,
            status: outcome.status,
            body: outcome.body,
            createdMs: Date.now(),
          });
        }
        return outcome;
      });
    } catch (err) {
      const message = `Sandbox internal error: ${err instanceof Error ? err.message : String(err)}`;
      return { status: 500, body: JSON.stringify({ error: { type: 'api_error', message } }), stored: false };
    }
  }

  function reset(): void {
    store.reset();
    log.length = 0;
    faults = {};
  }

  try {
    await app.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1' });
  } catch (err) {
    // A taken port must not leave the sandbox's database open: the caller may try another port.
    await app.close();
    store.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 0);
  const host = opts.host ?? '127.0.0.1';

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    setFaults(f) {
      faults = { ...faultsSchema.parse(f) };
    },
    clearFaults() {
      faults = {};
    },
    requests: () => [...log],
    list: (objectType, listOpts) =>
      store.all(objectType, listOpts?.account === undefined ? undefined : (listOpts.account ?? '')),
    onRequest(cb) {
      listeners.add(cb);
      return () => {
        listeners.delete(cb);
      };
    },
    reset,
    backdate: (id, times) => store.backdate(id, times),
    async close() {
      closed = true;
      await app.close();
      store.close();
    },
  };
}

/** A request header as received: '' when sent empty, null when absent. */
function rawHeader(request: FastifyRequest, name: string): string | null {
  const v = request.headers[name];
  if (Array.isArray(v)) return v.join(', ');
  return v ?? null;
}

function refusalOf(err: unknown): StripeApiError {
  if (err instanceof StripeApiError) return err;
  throw err;
}

/** The query (GET) or query and body, parsed under the sandbox's limits; throws the refusal otherwise. */
function requestParams(method: string, rawQuery: string, raw: RawBody | null): Params {
  const query = parseForm(rawQuery, 'query');
  if (method === 'GET' || raw === null) return query;
  checkBodySize(raw.bytes.length);
  const text = bodyText(raw.bytes);
  const body = raw.json ? parseJson(text) : parseForm(text, 'body');
  return { ...query, ...body };
}
