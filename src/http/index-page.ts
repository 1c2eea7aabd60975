import type { FastifyInstance } from 'fastify';

/** Where things are, for a newcomer who opens the server's root. */
export const ROOT_INDEX = {
  object: 'airlock',
  dashboard: '/review',
  stripe_proxy: '/v1',
  actions_api: '/api/actions',
  decisions_api: '/api/decisions',
  openapi: '/api/openapi.json',
  mcp: '/mcp',
  health: '/healthz',
  readiness: '/readyz',
} as const;

/**
 * `/`: a browser goes on to the dashboard; anything else (curl, a script) gets the map above as JSON, so the root
 * never answers 404.
 */
export function registerIndexPage(app: FastifyInstance): void {
  app.get('/', async (request, reply) => {
    const accept = request.headers.accept ?? '';
    if (/\btext\/html\b/.test(accept)) return reply.redirect(ROOT_INDEX.dashboard, 302);
    return reply.send(ROOT_INDEX);
  });
}
