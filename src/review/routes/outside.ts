import type { FastifyInstance } from 'fastify';
import { outsidePage } from '../pages/outside.ts';
import { type ReviewContext, requireSession, sendPage } from './context.ts';

const PAGE = 100;

/** The Outside Airlock view: every reviewer may see what moved without them. */
export function registerOutside(app: FastifyInstance, ctx: ReviewContext): void {
  app.get('/review/outside', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    // ?before=<created>:<evt id>, the last row of the previous page; anything else starts at the newest.
    const before = /^(\d{1,12}):(evt_[A-Za-z0-9_]{1,250})$/.exec(
      String((request.query as Record<string, unknown>)['before'] ?? ''),
    );
    const rows = await ctx.engine.store.stripeEvents.listOutside(
      PAGE + 1,
      before ? { created: Number(before[1]), id: before[2]! } : null,
    );
    const page = rows.slice(0, PAGE);
    const last = page.at(-1);
    const older = rows.length > PAGE && last ? `/review/outside?before=${last.created}:${last.id}` : null;
    return sendPage(reply, 200, outsidePage(s, page, older));
  });
}
