import type { FastifyInstance } from 'fastify';
import { AirlockError } from '../../errors.ts';
import { randomToken } from '../../ids.ts';
import { classify } from '../../stripe/classify.ts';
import { PLATFORM } from '../../stripe/lookups.ts';
import { field } from '../form.ts';
import { parseMajorUnits } from '../html.ts';
import { refundPage } from '../pages/refund.ts';
import {
  errorNotice,
  isUserError,
  noticeFrom,
  type ReviewContext,
  requireSession,
  sendPage,
} from './context.ts';

const REASONS = ['requested_by_customer', 'duplicate', 'fraudulent'];

/**
 * A reviewer asks for a refund. It is submitted to the engine like an agent's request, so the same policy judges
 * it; if it is held, someone else must approve it.
 */
export function registerRefunds(app: FastifyInstance, ctx: ReviewContext): void {
  const { engine, dispatcher, sessions } = ctx;

  app.get('/review/refund', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    return sendPage(
      reply,
      200,
      refundPage(s, randomToken(24), noticeFrom(request), field(request.query, 'charge')),
    );
  });

  app.post('/review/refund', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    const body = request.body;
    const charge = field(body, 'charge').trim();
    try {
      sessions.checkCsrf(request, s);
      if (!/^(ch|py)_[0-9A-Za-z]+$/.test(charge)) {
        throw new AirlockError('parameter_invalid', 'Enter a charge id such as ch_…', { param: 'charge' });
      }
      const params: Record<string, string> = { charge };
      const amountText = field(body, 'amount').trim();
      if (amountText) {
        const base = classify({ method: 'POST', path: '/v1/refunds', params: { charge } });
        const known = engine.facts ? await engine.facts.complete(base, PLATFORM) : base;
        const amount = parseMajorUnits(amountText, known.currency ?? 'usd');
        if (amount === null || amount <= 0) {
          throw new AirlockError('parameter_invalid', `"${amountText}" is not an amount`, {
            param: 'amount',
          });
        }
        params['amount'] = String(amount);
      }
      const reason = field(body, 'reason');
      if (REASONS.includes(reason)) params['reason'] = reason;
      const formKey = field(body, 'form_key').slice(0, 64) || randomToken(24);
      const { action } = await engine.submit({
        agent: null,
        requestedBy: s.reviewer,
        method: 'POST',
        path: '/v1/refunds',
        params,
        stripeAccount: null,
        stripeVersion: null,
        idempotencyKey: `dashboard-${formKey}`,
        classification: classify({ method: 'POST', path: '/v1/refunds', params }),
      });
      if (action.status === 'pending') void dispatcher.drive(action.id);
      return reply.redirect(`/review/actions/${action.id}?notice=requested`, 303);
    } catch (err) {
      if (!isUserError(ctx, err)) throw err;
      return sendPage(
        reply,
        ctx.statusOf(err.code),
        refundPage(s, randomToken(24), errorNotice(err, null), charge),
      );
    }
  });
}
