import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { LoginThrottle } from '../../auth/throttle.ts';
import type { Dispatcher } from '../../engine/dispatcher.ts';
import type { Engine } from '../../engine/engine.ts';
import { AirlockError, type ErrorCode } from '../../errors.ts';
import { messagePage, type Notice } from '../pages/layout.ts';
import type { ActionView } from '../queries.ts';
import type { Sessions } from '../session.ts';
import type { LoginMethods } from '../sso.ts';
import type { ReviewStore, Session } from '../store.ts';

/** What every route of the dashboard is handed: the engine it asks, the stores and sessions, the clock. */
export interface ReviewContext {
  engine: Engine;
  dispatcher: Dispatcher;
  log: Logger;
  reviews: ReviewStore;
  sessions: Sessions;
  throttle: LoginThrottle;
  now: () => Date;
  /** How reviewers may log in: with a password, by single sign-on, or both. */
  login: LoginMethods;
  /** The HTTP status for an error code (`httpStatus`, src/errors.ts, as the API answers), handed in by the plugin. */
  statusOf: (code: ErrorCode) => number;
}

/**
 * Sends a page with the dashboard's security headers. Referrer-Policy same-origin, not no-referrer: under
 * no-referrer browsers post our own forms with `Origin: null`.
 */
export function sendPage(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header(
      'content-security-policy',
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'same-origin')
    .header('x-content-type-options', 'nosniff')
    .send(body);
}

/**
 * Pages need a session; without one a browser is sent to log in and brought back, and a form post is answered 401.
 * Null means the reply has been sent.
 */
export async function requireSession(
  ctx: ReviewContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<Session | null> {
  const s = await ctx.sessions.current(request);
  if (s) return s;
  if (request.method === 'GET') {
    const next = encodeURIComponent(request.url);
    const expired = ctx.sessions.sentCookie(request) ? '&notice=expired' : '';
    void reply.redirect(`/review/login?next=${next}${expired}`, 303);
  } else {
    void sendPage(
      reply,
      401,
      messagePage('Log in first', 'Your session has ended. Log in again and retry.', null),
    );
  }
  return null;
}

/** Errors a person can act on (bad input, already decided, forbidden); anything else is the server's and rethrown. */
export function isUserError(ctx: ReviewContext, err: unknown): err is AirlockError {
  return err instanceof AirlockError && ctx.statusOf(err.code) < 500;
}

/** The notices a redirect after a form names with `?notice=`. */
const NOTICES: Record<string, Notice> = {
  approved: { kind: 'ok', text: 'Approved.' },
  recorded: { kind: 'ok', text: 'Your approval is recorded; the action needs more approvals.' },
  rejected: { kind: 'ok', text: 'Rejected. It will not execute.' },
  requested: { kind: 'ok', text: 'Refund requested.' },
  out: { kind: 'ok', text: 'You are logged out.' },
  expired: { kind: 'error', text: 'Your session expired; log in again.' },
  frozen: { kind: 'ok', text: 'Frozen. Writes are refused on every instance within a second.' },
  unfrozen: { kind: 'ok', text: 'Unfrozen.' },
  not_frozen: { kind: 'error', text: 'That was not frozen; nothing changed.' },
};

export function noticeFrom(request: FastifyRequest): Notice | null {
  const code = (request.query as Record<string, unknown>)['notice'];
  return typeof code === 'string' ? (NOTICES[code] ?? null) : null;
}

/** A refused form's error as a notice; an action decided meanwhile says by whom. */
export function errorNotice(err: unknown, v: ActionView | null): Notice {
  if (err instanceof AirlockError && err.code === 'already_decided' && v) {
    const by = v.approvals.map(
      (a) => `${a.reviewer_email} (${a.decision === 'approve' ? 'approved' : 'rejected'})`,
    );
    return {
      kind: 'error',
      text: by.length
        ? `Already decided by ${by.join(', ')}. Nothing more was done.`
        : `Already ${v.row.status.replace('_', ' ')}. Nothing more was done.`,
    };
  }
  return { kind: 'error', text: err instanceof Error ? err.message : String(err) };
}
