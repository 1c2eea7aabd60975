import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Reviewer } from '../../engine/engine.ts';
import { field } from '../form.ts';
import { messagePage, type Notice } from '../pages/layout.ts';
import { linkPage } from '../pages/receipt.ts';
import { loadView } from '../queries.ts';
import { errorNotice, isUserError, type ReviewContext, sendPage } from './context.ts';

/**
 * Signed links from review emails: no session, the token is the credential. Opening one shows the action and a
 * button; only pressing it (a POST) decides, once for the link and its sibling.
 */
export function registerLinks(app: FastifyInstance, ctx: ReviewContext): void {
  const { engine, dispatcher, reviews, sessions, now } = ctx;

  /** The link and its reviewer's email, or null once an expired or invalid link has been answered. */
  async function linkContext(token: string, reply: FastifyReply) {
    const check = await reviews.checkLink(token, now());
    if (!check.ok) {
      const expired = check.reason === 'expired';
      void sendPage(
        reply,
        ctx.statusOf(expired ? 'link_expired' : 'link_invalid'),
        messagePage(
          expired ? 'This link has expired' : 'This link is not valid',
          expired
            ? 'Links in review emails work for a limited time. Open the dashboard to review this action.'
            : 'It may have been mistyped or changed. Open the dashboard to review actions.',
          null,
        ),
      );
      return null;
    }
    const email = (await reviews.reviewerEmail(check.link.reviewerId)) ?? 'unknown reviewer';
    return { link: check.link, email };
  }

  app.get<{ Params: { token: string } }>('/review/links/:token', async (request, reply) => {
    const linked = await linkContext(request.params.token, reply);
    if (!linked) return reply;
    const { link, email } = linked;
    const v = await loadView(engine, reviews, link.actionId, { ledger: true, context: true });
    const done = field(request.query, 'done') === '1';
    const notice: Notice | null = link.usedAt
      ? {
          kind: done ? 'ok' : 'error',
          text: done
            ? `Done: this action is now ${v.row.status.replace('_', ' ')}.`
            : 'This link has been used; it cannot decide again.',
        }
      : null;
    return sendPage(
      reply,
      200,
      linkPage(v, link.verb, email, request.params.token, now(), notice, Boolean(link.usedAt)),
    );
  });

  /** Only this POST decides: mail scanners and link previews open links, they do not press buttons. */
  app.post<{ Params: { token: string } }>('/review/links/:token', async (request, reply) => {
    const token = request.params.token;
    // The link page posts with our own Origin (its referrer policy is same-origin); a page elsewhere that holds a
    // leaked link must not press the button through the reviewer's browser. Clients that send no Origin (curl)
    // hold the link themselves, which already lets them decide.
    const origin = request.headers.origin;
    if (origin !== undefined && !sessions.isOwnOrigin(request, origin)) {
      return sendPage(
        reply,
        ctx.statusOf('csrf_invalid'),
        messagePage('Refused', 'This link was posted from another site and was refused.', null),
      );
    }
    const linked = await linkContext(token, reply);
    if (!linked) return reply;
    const { link, email } = linked;
    const showOutcome = async (status: number, notice: Notice) =>
      sendPage(
        reply,
        status,
        linkPage(
          await loadView(engine, reviews, link.actionId, { ledger: true, context: true }),
          link.verb,
          email,
          token,
          now(),
          notice,
          true,
        ),
      );
    if (!(await reviews.spendBatch(link.batchId, now()))) {
      return showOutcome(ctx.statusOf('link_used'), {
        kind: 'error',
        text: 'This link has been used; it cannot decide again.',
      });
    }
    const reviewer: Reviewer | undefined = await engine.store.findReviewerByEmail(email);
    if (!reviewer || reviewer.id !== link.reviewerId) {
      return showOutcome(403, { kind: 'error', text: 'This reviewer account no longer exists.' });
    }
    const note = field(request.body, 'note').trim().slice(0, 2000) || null;
    try {
      const row =
        link.verb === 'approve'
          ? await engine.approve(link.actionId, reviewer, note, null, { requestId: request.id })
          : await engine.reject(link.actionId, reviewer, note, { requestId: request.id });
      if (row.status === 'pending') void dispatcher.drive(row.id);
      return reply.redirect(`/review/links/${token}?done=1`, 303);
    } catch (err) {
      if (!isUserError(ctx, err)) {
        await reviews.unspendBatch(link.batchId); // the store failed: the reviewer may try again
        throw err;
      }
      const v = await loadView(engine, reviews, link.actionId, { ledger: true, context: true });
      return sendPage(
        reply,
        ctx.statusOf(err.code),
        linkPage(v, link.verb, email, token, now(), errorNotice(err, v), true),
      );
    }
  });
}
