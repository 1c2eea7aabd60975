import type { FastifyInstance } from 'fastify';
import { hashPassword, verifyPassword } from '../../auth/password.ts';
import { randomToken } from '../../ids.ts';
import { field } from '../form.ts';
import { formatDuration } from '../html.ts';
import { messagePage } from '../pages/layout.ts';
import { loginPage } from '../pages/login.ts';
import { noticeFrom, type ReviewContext, requireSession, sendPage } from './context.ts';

// Any password check costs the same whether or not the account exists.
const DUMMY_HASH = hashPassword(randomToken(24));

/**
 * Where to go after logging in: a dashboard path of plain URL characters only. Anything else (another site, a
 * CR/LF that would split the Location header) is refused rather than followed.
 */
export const SAFE_NEXT = /^\/review(?:[/?#][\x21-\x7e]*)?$/;

/** Logging in (email and password, throttled) and out. */
export function registerLogin(app: FastifyInstance, ctx: ReviewContext): void {
  const { reviews, sessions, throttle, log } = ctx;

  app.get('/review/login', async (request, reply) => {
    const csrf = sessions.issueLoginToken(reply);
    const next = field(request.query, 'next');
    // A link carrying a bad `next` still gets a login form, one that returns to the queue.
    return sendPage(
      reply,
      200,
      loginPage(csrf, SAFE_NEXT.test(next) ? next : '', noticeFrom(request), ctx.login),
    );
  });

  app.post('/review/login', async (request, reply) => {
    const body = request.body;
    const next = field(body, 'next');
    const fresh = sessions.issueLoginToken(reply);
    if (!ctx.login.password) {
      // Switched off: no password is checked, however right, so an old password cannot outlive the switch to SSO.
      return sendPage(
        reply,
        403,
        loginPage(
          fresh,
          '',
          { kind: 'error', text: 'Password login is off here. Use single sign-on.' },
          ctx.login,
        ),
      );
    }
    if (!sessions.loginTokenValid(request)) {
      return sendPage(
        reply,
        403,
        loginPage(
          fresh,
          next,
          { kind: 'error', text: 'The form expired or came from another site. Try again.' },
          ctx.login,
        ),
      );
    }
    if (next !== '' && !SAFE_NEXT.test(next)) {
      return sendPage(
        reply,
        ctx.statusOf('parameter_invalid'),
        loginPage(
          fresh,
          '',
          {
            kind: 'error',
            text: 'The page to return to is not a dashboard address. Log in again to go to the queue.',
          },
          ctx.login,
        ),
      );
    }
    const email = field(body, 'email');
    const address = request.ip;
    const wait = await throttle.wait(email, address);
    if (wait > 0) {
      // Refused before the password is checked: during a delay or lockout even the right password waits.
      const seconds = Math.ceil(wait / 1000);
      reply.header('retry-after', String(seconds));
      return sendPage(
        reply,
        ctx.statusOf('rate_limit'),
        loginPage(
          fresh,
          next,
          { kind: 'error', text: `Too many failed logins. Try again in ${formatDuration(seconds * 1000)}.` },
          ctx.login,
        ),
      );
    }
    const reviewer = await reviews.reviewerForLogin(email);
    const password = field(body, 'password');
    const ok = await verifyPassword(password, reviewer?.passwordHash ?? (await DUMMY_HASH));
    if (!reviewer?.passwordHash || !ok) {
      await throttle.failed(email, address);
      log.warn({ email: email.slice(0, 200), address }, 'dashboard login refused');
      return sendPage(
        reply,
        401,
        loginPage(fresh, next, { kind: 'error', text: 'Wrong email or password.' }, ctx.login),
      );
    }
    await throttle.succeeded(email);
    await sessions.start(reply, reviewer.id);
    return reply.redirect(next || '/review', 303);
  });

  app.post('/review/logout', async (request, reply) => {
    const s = await requireSession(ctx, request, reply);
    if (!s) return reply;
    try {
      sessions.checkCsrf(request, s);
    } catch (err) {
      return sendPage(reply, 403, messagePage('Refused', (err as Error).message, s));
    }
    await sessions.end(request, reply);
    return reply.redirect('/review/login?notice=out', 303);
  });
}
