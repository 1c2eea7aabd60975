import Fastify, { type FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.ts';

/** Serves the Prometheus exposition at `path` on an existing app. */
export function registerMetricsRoute(app: FastifyInstance, metrics: Metrics, path: string): void {
  app.get(path, async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).send(body);
  });
}

/** A listener of its own, so an operator can keep metrics off the port agents reach. */
export async function startMetricsServer(
  metrics: Metrics,
  opts: { host: string; port: number; path: string },
): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  registerMetricsRoute(app, metrics, opts.path);
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  return { app, url: `http://${opts.host}:${port}${opts.path}` };
}
