import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Dispatcher } from '../engine/dispatcher.ts';
import type { Engine } from '../engine/engine.ts';
import type { Gateway } from '../engine/gateway.ts';
import { AirlockError } from '../errors.ts';
import { registerMcp } from '../mcp/http.ts';
import type { CallbackSender } from '../outbound/callbacks.ts';
import type { OutboundHttp } from '../outbound/http.ts';
import { type DashboardOptions, registerDashboard } from '../review/dashboard.ts';
import { parseForm } from '../stripe/params.ts';
import type { StripeUpstream } from '../stripe/upstream.ts';
import { registerApi } from './api.ts';
import { isInternal, sendError, toAirlockError } from './errors.ts';
import { registerProxy } from './proxy.ts';

export interface AppDeps {
  engine: Engine;
  dispatcher: Dispatcher;
  gateway: Gateway;
  upstream: StripeUpstream;
  http?: OutboundHttp | null;
  callbacks?: CallbackSender | null;
  log: Logger;
  bodyLimitBytes: number;
  review?: Partial<DashboardOptions>;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    bodyLimit: deps.bodyLimitBytes,
    logger: false,
    // Stripe ids and our paths are short; anything longer is not a real request.
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
  });

  // Stripe speaks form bodies (v1) and JSON (v2, /api); anything else is refused with 415 rather than guessed at.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseForm(body as string));
    } catch (err) {
      done(
        new AirlockError('malformed_body', `The form body could not be parsed: ${(err as Error).message}`),
        undefined,
      );
    }
  });

  app.setErrorHandler((err, request, reply) => {
    const error = toAirlockError(err);
    if (isInternal(error)) deps.log.error({ err, method: request.method, url: request.url }, error.message);
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

  app.get('/healthz', async () => {
    await deps.engine.store.ping();
    return { ok: true, policy_version: deps.engine.policy.version };
  });

  registerProxy(app, deps);
  registerApi(app, {
    engine: deps.engine,
    dispatcher: deps.dispatcher,
    http: deps.http ?? null,
    callbacks: deps.callbacks ?? null,
  });
  registerMcp(app, deps.engine, deps.log);
  registerDashboard(app, deps);
  return app;
}
