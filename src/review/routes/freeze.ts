import type { FastifyInstance, FastifyReply } from 'fastify';
import { isAdmin } from '../../auth/authorize.ts';
import { clearFreeze, describeFreezes, freezeScope, setFreeze } from '../../engine/freeze.ts';
import { field } from '../form.ts';
import { freezePage } from '../pages/freeze.ts';
import { messagePage, type Notice } from '../pages/layout.ts';
import type { Session } from '../store.ts';
import {
  errorNotice,
  isUserError,
  noticeFrom,
  type ReviewContext,
  requireSession,
  sendPage,
} from './context.ts';

/** The kill switch: admins (reviewers in the admins group) freeze and unfreeze money-out, for one agent or all. */
export function registerFreeze(app: FastifyInstance, ctx: ReviewContext): void {
  const { engine, sessions } = ctx;

  /** Admins only: anyone else gets a 403 page, whatever they send. */
  function requireAdmin(s: Session, reply: FastifyReply): boolean {
    if (isAdmin(s.reviewer)) return true;
    void sendPage(
      reply,
      403,
      messagePage('Admins only', 'Only dashboard admins (the admins group) can freeze or unfreeze.', s),
    );
    return false;
  }

  async function freezeView(s: Session, reply: FastifyReply, status: number, notice: Notice | null) {
    const [freezes, agents] = await Promise.all([
      describeFreezes(engine.store),
      engine.store.credentials.listAgents(),
    ]);
    return sendPage(
      reply,
      status,
      freezePage(
        s,
        freezes,
        agents.map((a) => a.name),
        notice,
      ),
    );
  }

  app.get('/review/freeze', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s || !requireAdmin(s, reply)) return reply;
    return freezeView(s, reply, 200, noticeFrom(request));
  });

  for (const verb of ['freeze', 'unfreeze'] as const) {
    app.post(`/review/${verb}`, async (request, reply) => {
      const s = await requireSession(ctx, request, reply);
      if (!s || !requireAdmin(s, reply)) return reply;
      try {
        sessions.checkCsrf(request, s);
        const scope = await freezeScope(engine.store, field(request.body, 'agent').trim() || null);
        const actor = `reviewer:${s.reviewer.email}`;
        let notice = 'frozen';
        if (verb === 'freeze') {
          const reason = field(request.body, 'reason').trim().slice(0, 500) || null;
          await setFreeze(engine.store, scope, reason, actor);
        } else {
          notice = (await clearFreeze(engine.store, scope, actor)) ? 'unfrozen' : 'not_frozen';
        }
        engine.freezes.invalidate(); // this instance applies it at once; others within a second
        return reply.redirect(`/review/freeze?notice=${notice}`, 303);
      } catch (err) {
        if (!isUserError(ctx, err)) throw err;
        return freezeView(s, reply, ctx.statusOf(err.code), errorNotice(err, null));
      }
    });
  }
}
