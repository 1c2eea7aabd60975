import fastifyCookie from '@fastify/cookie';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Dispatcher } from '../engine/dispatcher.ts';
import type { Engine } from '../engine/engine.ts';
import type { Gateway } from '../engine/gateway.ts';
import type { StripeEventIngest } from '../engine/stripe-events.ts';
import { AirlockError, httpStatus } from '../errors.ts';
import { newId } from '../ids.ts';
import { MCP_PATH, registerMcp } from '../mcp/http.ts';
import type { CallbackSender } from '../outbound/callbacks.ts';
import type { OutboundHttp } from '../outbound/http.ts';
import { type DashboardOptions, registerDashboard } from '../review/dashboard.ts';
import { ParamError, parseForm } from '../stripe/params.ts';
import type { StripeUpstream } from '../stripe/upstream.ts';
import { registerAdminApi } from './admin.ts';
import { registerApi } from './api.ts';
import { registerAxiru } from './compat/axiru.ts';
import { registerCheqpoint } from './compat/cheqpoint.ts';
import { registerSafeFetch } from './compat/safefetch.ts';
import { isInternal, sendError, toAirlockError } from './errors.ts';
import { registerIndexPage } from './index-page.ts';
import { registerProxy } from './proxy.ts';
import { RateLimiter } from './rate-limit.ts';
import { registerStripeWebhooks } from './stripe-webhooks.ts';

export interface AppDeps {
  engine: Engine;
  dispatcher: Dispatcher;
  gateway: Gateway;
  upstream: StripeUpstream;
  http?: OutboundHttp | null;
  callbacks?: CallbackSender | null;
  log: Logger;
  /** The worker slot under `serve --workers N`: /healthz and /readyz name the worker that answered. */
  worker?: number | null;
  bodyLimitBytes: number;
  review?: Partial<DashboardOptions>;
  /** Per agent key; the default is DEFAULT_RATE_LIMIT_PER_MINUTE. */
  rateLimitPerMinute?: number;
  /** Stripe's webhook deliveries (docs/stripe-events.md); absent in tests that build an app without them. */
  stripeEvents?: { ingest: StripeEventIngest; secret: string | null; path: string } | null;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    bodyLimit: deps.bodyLimitBytes,
    logger: false,
    // Stripe ids and our paths are short; anything longer is not a real request.
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
    // A caller's Request-Id is kept when it is a plain token, so its logs and ours share one id.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newId('req');
    },
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    deps.log.debug(
      {
        request_id: request.id,
        method: request.method,
        url: request.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  // Stripe speaks form bodies (v1) and JSON (v2, /api); anything else is refused with 415 rather than guessed at.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseForm(body as string));
    } catch (err) {
      // A limit the body breaks is named as such (parameter_invalid), like any other refused parameter.
      done(
        err instanceof ParamError
          ? new AirlockError(err.code, err.message, { param: err.param })
          : new AirlockError(
              'malformed_body',
              `The form body could not be parsed: ${(err as Error).message}`,
            ),
        undefined,
      );
    }
  });

  // The default JSON parser (prototype poisoning refused) behind a depth limit: JSON.parse itself copes with any
  // depth, but every walk over the value afterwards (validation, hashing, encoding) would overflow the stack.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (jsonDepthExceeds(body as string, MAX_JSON_DEPTH)) {
      done(
        new AirlockError('malformed_body', `The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`),
        undefined,
      );
      return;
    }
    parseJson(request, body as string, done);
  });

  app.register(fastifyCookie);

  app.setErrorHandler((err, request, reply) => {
    const error = toAirlockError(err);
    if (isInternal(error))
      deps.log.error(
        { err, request_id: request.id, method: request.method, url: request.url },
        error.message,
      );
    // MCP clients read JSON-RPC, even for a body that never reached the MCP server.
    if (request.url.split('?')[0] === MCP_PATH && !isInternal(error)) {
      return reply.code(httpStatus(error.code)).send({
        jsonrpc: '2.0',
        error: { code: -32700, message: error.message },
        id: null,
      });
    }
    return sendError(reply, error);
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new AirlockError(
        'unknown_path',
        `Unrecognized request URL (${request.method}: ${request.url.split('?')[0]}).`,
      ),
    ),
  );

  // Each worker of a group answers from its own process and store pool; `worker` says which one did.
  const worker = deps.worker ? { worker: deps.worker } : {};
  app.get('/healthz', async () => {
    await deps.engine.store.ping();
    return { ok: true, policy_version: deps.engine.policy.version, ...worker };
  });

  // Ready for traffic: every check is named, and a 503 says which failed.
  app.get('/readyz', async (_request, reply) => {
    const checks = await readiness(deps.engine);
    const ok = Object.values(checks).every((c) => c.ok);
    return reply.code(ok ? 200 : 503).send({ ok, checks, ...worker });
  });

  const limiter = new RateLimiter(deps.rateLimitPerMinute);
  registerProxy(app, { ...deps, limiter });
  const api = registerApi(app, {
    engine: deps.engine,
    limiter,
    dispatcher: deps.dispatcher,
    http: deps.http ?? null,
    callbacks: deps.callbacks ?? null,
  });
  registerCheqpoint(app, api);
  registerSafeFetch(app, api);
  registerAdminApi(app, { engine: deps.engine });
  if (deps.stripeEvents)
    registerStripeWebhooks(app, { ...deps.stripeEvents, log: deps.log, bodyLimitBytes: deps.bodyLimitBytes });
  app.register(registerAxiru, { log: deps.log });
  registerMcp(app, deps.engine, deps.log);
  registerDashboard(app, deps);
  registerIndexPage(app);
  return app;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Deep enough for any real payload (declared routes read bodies 256 levels deep); far below the stack's limit. */
export const MAX_JSON_DEPTH = 512;

/** Counts bracket nesting outside strings, without parsing: a 100,000-level body is refused in one pass. */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character, which may be a quote.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

type Check = { ok: true } | { ok: false; error: string };

export async function readiness(engine: Engine): Promise<{ store: Check; migrations: Check; policy: Check }> {
  const store: Check = await engine.store.ping().then(
    () => ({ ok: true as const }),
    (err: Error) => ({ ok: false as const, error: err.message }),
  );
  let migrations: Check = { ok: false, error: 'store unreachable' };
  if (store.ok) {
    try {
      const pending = await engine.store.pendingMigrations();
      migrations = pending.length
        ? { ok: false, error: `pending migrations: ${pending.join(', ')} (run airlock migrate)` }
        : { ok: true };
    } catch (err) {
      migrations = { ok: false, error: (err as Error).message };
    }
  }
  const version = engine.policy?.version;
  const policy: Check = version ? { ok: true } : { ok: false, error: 'no policy loaded' };
  return { store, migrations, policy };
}
