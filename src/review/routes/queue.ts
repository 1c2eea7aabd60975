import type { FastifyInstance } from 'fastify';
import { queuePage } from '../pages/queue.ts';
import { queue } from '../queries.ts';
import { noticeFrom, type ReviewContext, requireSession, sendPage } from './context.ts';

/** The queue: what waits for review, most urgent first. Its live updates are in events.ts. */
export function registerQueue(app: FastifyInstance, ctx: ReviewContext): void {
  app.get('/review', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    return sendPage(
      reply,
      200,
      queuePage(await queue(ctx.engine, ctx.reviews), s, ctx.now(), noticeFrom(request)),
    );
  });
}
