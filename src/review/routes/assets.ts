import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { messagePage } from '../pages/layout.ts';
import { sendPage } from './context.ts';

const ASSETS: Record<string, { type: string; body: string }> = {
  'dashboard.css': {
    type: 'text/css; charset=utf-8',
    body: readFileSync(new URL('../assets/dashboard.css', import.meta.url), 'utf8'),
  },
  'live.js': {
    type: 'text/javascript; charset=utf-8',
    body: readFileSync(new URL('../assets/live.js', import.meta.url), 'utf8'),
  },
};

/** The stylesheet and the live-update script, read once at start. */
export function registerAssets(app: FastifyInstance): void {
  app.get<{ Params: { name: string } }>('/review/assets/:name', async (request, reply) => {
    const asset = ASSETS[request.params.name];
    if (!asset) return sendPage(reply, 404, messagePage('Not found', 'No such file.', null));
    return reply
      .header('content-type', asset.type)
      .header('cache-control', 'public, max-age=300')
      .send(asset.body);
  });
}
