import { createHash } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import qs from 'qs';
import { z } from 'zod';
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
  params: Record<string, unknown>;
  idempotencyKey: string | null;
  stripeAccount: string | null;
  faulted: boolean;
  at: number;
}

export interface Sandbox {
  url: string;
  port: number;
  setFaults(f: SandboxFaults): void;
  clearFaults(): void;
  /** Every Stripe API request received, in order. */
  requests(): SandboxRequestLog[];
  /** All objects of a type (`refund`, `charge`, …), oldest first. */
  list(objectType: string): Record<string, unknown>[];
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

const QS_OPTIONS: qs.IParseOptions = { depth: 20, arrayLimit: 1000, parameterLimit: 10_000 };
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
    routerOptions: { querystringParser: (s) => qs.parse(s, QS_OPTIONS) as Record<string, unknown> },
  });

  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, {});
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new StripeApiError(400, 'invalid_request_error', 'Invalid JSON body.'), undefined);
    }
  });
  // Stripe's v1 bodies are form-encoded with bracket notation; anything else is read the same way.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    done(null, qs.parse(body as string, QS_OPTIONS));
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
    const parsed = faultsSchema.safeParse(request.body);
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
  app.get<{ Params: { type: string } }>('/__sandbox/objects/:type', async (request, reply) =>
    send(reply, 200, JSON.stringify(store.all(request.params.type))),
  );
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
    const path = request.url.split('?')[0]!;
    const query = (request.query ?? {}) as Params;
    const body = request.body && typeof request.body === 'object' ? (request.body as Params) : {};
    const params = method === 'GET' ? query : { ...query, ...body };
    const idempotencyKey = headerValue(request, 'idempotency-key');
    const stripeAccount = headerValue(request, 'stripe-account');
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
      params,
      idempotencyKey,
      stripeAccount,
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

    const apiKey = apiKeyOf(request.headers.authorization);
    if (!apiKey || !KEY_PATTERN.test(apiKey)) {
      const message = apiKey ? `Invalid API Key provided: ${redactKey(apiKey)}` : NO_KEY_MESSAGE;
      reply.header('www-authenticate', 'Basic realm="Stripe"');
      return send(reply, 401, JSON.stringify({ error: { type: 'invalid_request_error', message } }));
    }

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
      scope = `${createHash('sha256').update(apiKey).digest('base64url')}\n${stripeAccount ?? ''}\n${idempotencyKey}`;
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
      outcome = process(handler, { store, params, args, method, path }, scope, canonicalParams);
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
          const result = applyExpand(store, handler(ctx), ctx.params);
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

  await app.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1' });
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
    list: (objectType) => store.all(objectType),
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

function headerValue(request: FastifyRequest, name: string): string | null {
  const v = request.headers[name];
  if (Array.isArray(v)) return v[0] ?? null;
  return v === undefined || v === '' ? null : v;
}
