import type { FastifyReply, FastifyRequest } from 'fastify';
import { safeEqual } from '../auth/compare.ts';
import { AirlockError } from '../errors.ts';
import { randomToken } from '../ids.ts';
import { field } from './form.ts';
import type { ReviewStore, Session } from './store.ts';

/** The reviewer's session: an opaque token naming a row in review_sessions, sent to every /review path. */
const SESSION_COOKIE = 'airlock_session';
/** The login form's CSRF token (there is no session yet to hold one), sent to /review/login only. */
const LOGIN_COOKIE = 'airlock_login';

export interface SessionOptions {
  sessionTtlMs: number;
  /** Set the Secure flag on cookies: on whenever the public URL is https. */
  secureCookies: boolean;
  /** Airlock's public URL; a form posted from its origin is ours even when a proxy rewrote the Host header. */
  publicUrl: string | null;
}

/**
 * Sessions, their cookies and the checks that keep a form posted from elsewhere from acting: a synchronizer token
 * per session (per login form before there is one) and the request's Origin. @fastify/cookie parses the cookies.
 */
export class Sessions {
  private readonly publicHost: string | null;

  constructor(
    private readonly reviews: ReviewStore,
    private readonly opts: SessionOptions,
    private readonly now: () => Date,
  ) {
    this.publicHost = opts.publicUrl ? new URL(opts.publicUrl).host : null;
  }

  get secureCookies(): boolean {
    return this.opts.secureCookies;
  }

  get publicUrl(): string | null {
    return this.opts.publicUrl;
  }

  /** The live session the request's cookie names, or null. */
  async current(request: FastifyRequest): Promise<Session | null> {
    const token = cookieOf(request, SESSION_COOKIE);
    return token ? this.reviews.session(token, this.now()) : null;
  }

  /** True when the request sent a session cookie at all: without a live session, it has expired. */
  sentCookie(request: FastifyRequest): boolean {
    return Boolean(cookieOf(request, SESSION_COOKIE));
  }

  /** Logs a reviewer in: a new session and its cookie; the login form's token is spent. */
  async start(reply: FastifyReply, reviewerId: string): Promise<void> {
    const { token } = await this.reviews.createSession(reviewerId, this.now(), this.opts.sessionTtlMs);
    this.setCookie(reply, SESSION_COOKIE, token, '/review', Math.floor(this.opts.sessionTtlMs / 1000));
    this.setCookie(reply, LOGIN_COOKIE, '', '/review/login', 0, 'strict');
  }

  /** Logs out: the request's session is deleted and its cookie cleared. */
  async end(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const token = cookieOf(request, SESSION_COOKIE);
    if (token) await this.reviews.deleteSession(token);
    this.setCookie(reply, SESSION_COOKIE, '', '/review', 0);
  }

  /** A fresh token for a login form, also set in a strict cookie that only the login path receives. */
  issueLoginToken(reply: FastifyReply): string {
    const token = randomToken(32);
    this.setCookie(reply, LOGIN_COOKIE, token, '/review/login', 3600, 'strict');
    return token;
  }

  /** True when a posted login form carries the token its login cookie holds. */
  loginTokenValid(request: FastifyRequest): boolean {
    return safeEqual(field(request.body, '_csrf'), cookieOf(request, LOGIN_COOKIE));
  }

  /** True when an Origin is Airlock's own: the host the request was sent to, or the public URL's. */
  isOwnOrigin(request: FastifyRequest, origin: string): boolean {
    let host = '';
    try {
      host = new URL(origin).host;
    } catch {
      return false; // `null` or unparseable
    }
    return host === request.headers.host || host === this.publicHost;
  }

  /** Same-origin check plus the session's synchronizer token: a form posted from another site never decides. */
  checkCsrf(request: FastifyRequest, session: Session): void {
    const origin = request.headers.origin;
    if (origin && origin !== 'null' && !this.isOwnOrigin(request, origin)) {
      throw new AirlockError('csrf_invalid', 'This form was posted from another site and was refused.');
    }
    if (!safeEqual(field(request.body, '_csrf'), session.csrf)) {
      throw new AirlockError(
        'csrf_invalid',
        'This form is out of date or was not sent by the dashboard. Reload the page and try again.',
      );
    }
  }

  private setCookie(
    reply: FastifyReply,
    name: string,
    value: string,
    path: string,
    maxAge: number,
    sameSite: 'lax' | 'strict' = 'lax',
  ): void {
    reply.setCookie(name, value, { path, httpOnly: true, sameSite, maxAge, secure: this.opts.secureCookies });
  }
}

/** A value @fastify/cookie cannot decode stays as sent, and so matches no session. */
function cookieOf(request: FastifyRequest, name: string): string {
  return request.cookies[name] ?? '';
}
