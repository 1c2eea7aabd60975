import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ActionChange } from '../../engine/engine.ts';
import { queueRows } from '../pages/queue.ts';
import { queue } from '../queries.ts';
import { type ReviewContext, sendPage } from './context.ts';

/**
 * Live updates: server-sent events naming each action that changed, and the queue's rows as a fragment for
 * live.js to swap in. Neither redirects to log in; without a session they answer 401.
 */
export function registerEvents(app: FastifyInstance, ctx: ReviewContext): void {
  const { engine, sessions } = ctx;
  const streams = new Set<ServerResponse>();

  const onChange = (c: ActionChange) => {
    const frame = `event: change\ndata: ${JSON.stringify({ id: c.id, status: c.status })}\n\n`;
    for (const res of streams) res.write(frame);
  };
  engine.changes.on('change', onChange);
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(': keep-alive\n\n');
  }, 25_000);
  heartbeat.unref();
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    engine.changes.off('change', onChange);
    for (const res of streams) res.end();
    streams.clear();
  });

  app.get('/review/queue/rows', async (request, reply) => {
    const s = await sessions.current(request);
    if (!s) return sendPage(reply, 401, '');
    return sendPage(reply, 200, queueRows(await queue(engine, ctx.reviews), s, ctx.now()).value);
  });

  app.get('/review/events', async (request, reply) => {
    const s = await sessions.current(request);
    if (!s) return sendPage(reply, 401, '');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    streams.add(res);
    request.raw.on('close', () => streams.delete(res));
    return reply;
  });
}
