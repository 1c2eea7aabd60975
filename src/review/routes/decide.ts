import type { FastifyInstance } from 'fastify';
import type { ApprovalChanges, Engine } from '../../engine/engine.ts';
import { AirlockError } from '../../errors.ts';
import { field } from '../form.ts';
import { parseMajorUnits } from '../html.ts';
import { messagePage } from '../pages/layout.ts';
import { receiptPage } from '../pages/receipt.ts';
import { loadView } from '../queries.ts';
import { errorNotice, isUserError, type ReviewContext, requireSession, sendPage } from './context.ts';

/**
 * A reviewer approves (as requested, or with changes) or rejects, from the queue or the receipt. The engine decides
 * whether the vote counts; a cleared action is dispatched at once. A refused form shows the receipt with the reason.
 */
export function registerDecide(app: FastifyInstance, ctx: ReviewContext): void {
  const { engine, dispatcher, reviews, sessions } = ctx;

  for (const verb of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string } }>(`/review/actions/:id/${verb}`, async (request, reply) => {
      const s = await requireSession(ctx, request, reply);
      if (!s) return reply;
      const id = request.params.id;
      const body = request.body;
      try {
        sessions.checkCsrf(request, s);
        const note = field(body, 'note').trim().slice(0, 2000) || null;
        let row: Awaited<ReturnType<Engine['approve']>>;
        if (verb === 'approve') {
          const changes = await changesFrom(engine, id, body);
          row = await engine.approve(id, s.reviewer, note, changes, { requestId: request.id });
        } else {
          row = await engine.reject(id, s.reviewer, note, { requestId: request.id });
        }
        if (row.status === 'pending') void dispatcher.drive(id);
        const notice =
          verb === 'reject' ? 'rejected' : row.status === 'awaiting_approval' ? 'recorded' : 'approved';
        const back =
          field(body, 'return') === 'queue'
            ? `/review?notice=${notice}`
            : `/review/actions/${id}?notice=${notice}`;
        return reply.redirect(back, 303);
      } catch (err) {
        if (!isUserError(ctx, err)) throw err;
        const v = await loadView(engine, reviews, id, { ledger: true, context: true }).catch(() => null);
        if (!v) return sendPage(reply, ctx.statusOf(err.code), messagePage('Refused', err.message, s));
        return sendPage(reply, ctx.statusOf(err.code), receiptPage(v, s, ctx.now(), errorNotice(err, v)));
      }
    });
  }
}

/** Reads the "approve with changes" fields, keeping only what differs from the request as it stands. */
async function changesFrom(engine: Engine, id: string, body: unknown): Promise<ApprovalChanges | null> {
  const action = await engine.get(id);
  const params = JSON.parse(action.params) as Record<string, unknown>;
  const changes: ApprovalChanges = {};
  const amountText = field(body, 'amount').trim();
  if (amountText && action.amount !== null) {
    // The receipt shows an amount of unknown currency as USD; it is read back the same way.
    const amount = parseMajorUnits(amountText, action.currency ?? 'usd');
    if (amount === null) {
      throw new AirlockError('parameter_invalid', `"${amountText}" is not an amount`, { param: 'amount' });
    }
    if (amount !== Number(action.amount)) changes.amount = amount;
  }
  const reason = field(body, 'reason').trim();
  if (reason && reason !== params['reason']) changes.reason = reason;
  const metadata: Record<string, string> = {};
  for (const line of field(body, 'metadata').split(/\r?\n/)) {
    const i = line.indexOf('=');
    if (i > 0) metadata[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    else if (line.trim()) {
      throw new AirlockError('parameter_invalid', `Metadata lines read key=value, not "${line.trim()}"`, {
        param: 'metadata',
      });
    }
  }
  if (Object.keys(metadata).length) changes.metadata = metadata;
  return Object.keys(changes).length ? changes : null;
}
