import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { field } from '../form.ts';
import { loginPage } from '../pages/login.ts';
import { type SsoAttempt, SsoRefused } from '../sso.ts';
import { type ReviewContext, sendPage } from './context.ts';
import { SAFE_NEXT } from './login.ts';

/** The flow's state between the redirect and the way back: only the callback path receives it. */
const SSO_COOKIE = 'airlock_sso';
const SSO_PATH = '/review/sso';

/** Single sign-on: GET /review/sso sends the browser to the identity provider, /review/sso/callback brings it back. */
export function registerSso(app: FastifyInstance, ctx: ReviewContext): void {
  const sso = ctx.login.sso;
  if (!sso) return;

  const refuse = (reply: FastifyReply, status: number, text: string) =>
    sendPage(
      reply,
      status,
      loginPage(ctx.sessions.issueLoginToken(reply), '', { kind: 'error', text }, ctx.login),
    );

  app.get(SSO_PATH, async (request, reply) => {
    const given = field(request.query, 'next');
    const next = SAFE_NEXT.test(given) ? given : '';
    let begun: { url: string; attempt: SsoAttempt };
    try {
      begun = await sso.begin(callbackUrl(ctx, request), next);
    } catch (err) {
      ctx.log.error({ err }, 'single sign-on: the identity provider could not be reached');
      return refuse(reply, 503, `${sso.settings.name} cannot be reached right now. Try again in a minute.`);
    }
    // Lax, not strict: the provider's redirect back is a cross-site top-level GET, which must carry it.
    reply.setCookie(SSO_COOKIE, Buffer.from(JSON.stringify(begun.attempt)).toString('base64url'), {
      path: SSO_PATH,
      httpOnly: true,
      sameSite: 'lax',
      maxAge: 600,
      secure: ctx.sessions.secureCookies,
    });
    return reply.redirect(begun.url, 303);
  });

  app.get(`${SSO_PATH}/callback`, async (request, reply) => {
    const attempt = attemptOf(request);
    reply.setCookie(SSO_COOKIE, '', { path: SSO_PATH, httpOnly: true, sameSite: 'lax', maxAge: 0 });
    const error = field(request.query, 'error');
    if (error) {
      const detail = field(request.query, 'error_description') || error;
      return refuse(reply, 403, `${sso.settings.name} did not log you in: ${detail.slice(0, 200)}`);
    }
    if (!attempt)
      return refuse(reply, 400, 'This sign-in link has expired or was opened elsewhere. Start again.');
    const url = new URL(request.url, callbackUrl(ctx, request));
    let identity: { email: string; groups: string[] };
    try {
      identity = await sso.finish(url, attempt);
    } catch (err) {
      const refused = err instanceof SsoRefused;
      ctx.log.warn(
        { err: refused ? undefined : err, reason: (err as Error).message },
        'single sign-on refused',
      );
      return refuse(
        reply,
        403,
        refused ? `Not logged in: ${(err as Error).message}.` : 'Single sign-on failed. Start again.',
      );
    }
    // Groups follow the provider on every login, so removing someone from a group there takes effect here.
    const reviewer = await ctx.reviews.ssoReviewer(identity.email, identity.groups, ctx.now());
    ctx.log.info({ reviewer: reviewer.id, groups: identity.groups }, 'reviewer logged in by single sign-on');
    await ctx.sessions.start(reply, reviewer.id);
    return reply.redirect(attempt.next || '/review', 303);
  });
}

/** Where the provider sends the browser back: the public URL when configured, else the address it was reached at. */
function callbackUrl(ctx: ReviewContext, request: FastifyRequest): string {
  const base = ctx.sessions.publicUrl ?? `${request.protocol}://${request.headers.host}`;
  return `${base.replace(/\/+$/, '')}${SSO_PATH}/callback`;
}

function attemptOf(request: FastifyRequest): SsoAttempt | null {
  const raw = request.cookies[SSO_COOKIE];
  if (!raw) return null;
  try {
    const a = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<SsoAttempt>;
    return typeof a.verifier === 'string' &&
      typeof a.state === 'string' &&
      typeof a.nonce === 'string' &&
      typeof a.next === 'string' &&
      (a.next === '' || SAFE_NEXT.test(a.next))
      ? (a as SsoAttempt)
      : null;
  } catch {
    return null;
  }
}
