import type { FastifyInstance } from 'fastify';
import { isStatus } from '../../engine/status.ts';
import { actionsPage } from '../pages/actions.ts';
import { messagePage } from '../pages/layout.ts';
import { overviewPage } from '../pages/overview.ts';
import { receiptPage } from '../pages/receipt.ts';
import { type ActionFilters, loadView, overview, searchActions } from '../queries.ts';
import { noticeFrom, type ReviewContext, requireSession, sendPage } from './context.ts';

/** Reading: every action (filtered, paged), one action's receipt, and the overview of the last days. */
export function registerActions(app: FastifyInstance, ctx: ReviewContext): void {
  const { engine, reviews } = ctx;

  app.get('/review/actions', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    const q = Object.fromEntries(
      Object.entries(request.query as Record<string, unknown>).filter(
        (e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '',
      ),
    );
    const f = filtersFrom(q);
    const { views, hasMore } = await searchActions(engine, reviews, f);
    const { starting_after: _, ...filters } = q;
    return sendPage(reply, 200, actionsPage(views, hasMore, f, filters, s, ctx.now()));
  });

  app.get<{ Params: { id: string } }>('/review/actions/:id', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    const v = await loadView(engine, reviews, request.params.id, { ledger: true, context: true }).catch(
      () => null,
    );
    if (!v) return sendPage(reply, 404, messagePage('Not found', `No action ${request.params.id}.`, s));
    return sendPage(reply, 200, receiptPage(v, s, ctx.now(), noticeFrom(request)));
  });

  app.get('/review/overview', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    return sendPage(reply, 200, overviewPage(await overview(engine, ctx.now()), s));
  });
}

/** The all-actions filter form, as typed, into a search; what does not parse is left out. */
function filtersFrom(q: Record<string, string>): ActionFilters {
  const num = (v: string | undefined) =>
    v !== undefined && Number.isFinite(Number(v)) ? Number(v) : undefined;
  // A date of the right shape may still be no date (9999-99-99): left out, like any other that does not parse.
  const day = (v: string | undefined, plus = 0) => {
    const at = v && /^\d{4}-\d{2}-\d{2}$/.test(v) ? Date.parse(`${v}T00:00:00.000Z`) : Number.NaN;
    return Number.isFinite(at) ? new Date(at + plus).toISOString() : undefined;
  };
  return {
    status: q['status'] && isStatus(q['status']) ? q['status'] : undefined,
    kind: q['kind'],
    agent: q['agent'],
    minUsd: num(q['min_usd']),
    maxUsd: num(q['max_usd']),
    from: day(q['from']),
    to: day(q['to'], 86_400_000),
    q: q['q'],
    startingAfter: q['starting_after'],
    limit: 25,
  };
}
