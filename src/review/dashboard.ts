import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { safeEqual } from '../auth/compare.ts';
import { hashPassword, verifyPassword } from '../auth/password.ts';
import { LoginThrottle } from '../auth/throttle.ts';
import type { Dispatcher } from '../engine/dispatcher.ts';
import type { ActionChange, ApprovalChanges, Engine, Reviewer } from '../engine/engine.ts';
import { isStatus } from '../engine/status.ts';
import { AirlockError } from '../errors.ts';
import { httpStatus } from '../http/errors.ts';
import { randomToken } from '../ids.ts';
import { clearFreeze, describeFreezes, freezeScope, setFreeze } from '../reliability/freeze.ts';
import { classify } from '../stripe/classify.ts';
import { PLATFORM } from '../stripe/lookups.ts';
import { formatDuration, parseMajorUnits } from './html.ts';
import {
  actionsPage,
  freezePage,
  isAdmin,
  linkPage,
  loginPage,
  messagePage,
  type Notice,
  overviewPage,
  queuePage,
  queueRows,
  receiptPage,
  refundPage,
} from './pages.ts';
import { type ActionFilters, type ActionView, loadView, overview, queue, searchActions } from './queries.ts';
import { ReviewStore, type Session } from './store.ts';

export interface DashboardOptions {
  sessionTtlMs: number;
  /** Set the Secure flag on cookies: on whenever the public URL is https. */
  secureCookies: boolean;
  /** Airlock's public URL; a form posted from its origin is ours even when a proxy rewrote the Host header. */
  publicUrl: string | null;
  /** Failed logins slow down and lock out accounts and addresses; tests pass a throttle with their own rules. */
  throttle: LoginThrottle;
}

export interface DashboardDeps {
  engine: Engine;
  dispatcher: Dispatcher;
  log: Logger;
  review?: Partial<DashboardOptions> | undefined;
}

const SESSION_COOKIE = 'airlock_session';
const LOGIN_COOKIE = 'airlock_login';

const ASSETS: Record<string, { type: string; body: string }> = {
  'dashboard.css': {
    type: 'text/css; charset=utf-8',
    body: readFileSync(new URL('./assets/dashboard.css', import.meta.url), 'utf8'),
  },
  'live.js': {
    type: 'text/javascript; charset=utf-8',
    body: readFileSync(new URL('./assets/live.js', import.meta.url), 'utf8'),
  },
};

// Any password check costs the same whether or not the account exists.
const DUMMY_HASH = hashPassword(randomToken(24));

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

/** @fastify/cookie parses the header; a value it cannot decode stays as sent, and so matches no session. */
function cookieOf(request: FastifyRequest, name: string): string {
  return request.cookies[name] ?? '';
}

function field(body: unknown, name: string): string {
  if (!body || typeof body !== 'object') return '';
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : '';
}

/**
 * Where to go after logging in: a dashboard path of plain URL characters only. Anything else (another site, a
 * CR/LF that would split the Location header) is refused rather than followed.
 */
const SAFE_NEXT = /^\/review(?:[/?#][\x21-\x7e]*)?$/;

/**
 * The reviewer dashboard: server-rendered pages under /review, a session cookie, a CSRF token in every form, and
 * server-sent events so the queue updates itself. Every decision goes through the engine.
 */
export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  const { engine, dispatcher, log } = deps;
  const opts: DashboardOptions = {
    sessionTtlMs: deps.review?.sessionTtlMs ?? 12 * 3600_000,
    secureCookies: deps.review?.secureCookies ?? false,
    publicUrl: deps.review?.publicUrl ?? null,
    throttle: deps.review?.throttle ?? new LoginThrottle(),
  };
  const publicHost = opts.publicUrl ? new URL(opts.publicUrl).host : null;
  const reviews = new ReviewStore(engine.store);
  const streams = new Set<ServerResponse>();
  const now = () => engine.clock.now();

  const onChange = (c: ActionChange) => {
    const frame = `event: change\ndata: ${JSON.stringify({ id: c.id, status: c.status })}\n\n`;
    for (const res of streams) res.write(frame);
  };
  engine.changes.on('change', onChange);
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(': keep-alive\n\n');
  }, 25_000);
  heartbeat.unref();
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    engine.changes.off('change', onChange);
    for (const res of streams) res.end();
    streams.clear();
  });

  function setCookie(
    reply: FastifyReply,
    name: string,
    value: string,
    path: string,
    maxAge: number,
    sameSite: 'lax' | 'strict' = 'lax',
  ): void {
    reply.setCookie(name, value, { path, httpOnly: true, sameSite, maxAge, secure: opts.secureCookies });
  }

  // Referrer-Policy same-origin, not no-referrer: under no-referrer browsers post our own forms with `Origin: null`.
  function page(reply: FastifyReply, status: number, body: string): FastifyReply {
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

  async function session(request: FastifyRequest): Promise<Session | null> {
    const token = cookieOf(request, SESSION_COOKIE);
    return token ? reviews.session(token, now()) : null;
  }

  /** Pages need a session; without one a browser is sent to log in and brought back. */
  async function requireSession(request: FastifyRequest, reply: FastifyReply): Promise<Session | null> {
    const s = await session(request);
    if (s) return s;
    const hadCookie = Boolean(cookieOf(request, SESSION_COOKIE));
    if (request.method === 'GET') {
      const next = encodeURIComponent(request.url);
      void reply.redirect(`/review/login?next=${next}${hadCookie ? '&notice=expired' : ''}`, 303);
    } else {
      void page(
        reply,
        401,
        messagePage('Log in first', 'Your session has ended. Log in again and retry.', null),
      );
    }
    return null;
  }

  /** True when an Origin is Airlock's own: the host the request was sent to, or the public URL's. */
  function isOwnOrigin(request: FastifyRequest, origin: string): boolean {
    let host = '';
    try {
      host = new URL(origin).host;
    } catch {
      return false; // `null` or unparseable
    }
    return host === request.headers.host || host === publicHost;
  }

  /** Same-origin check plus the session's synchronizer token: a form posted from another site never decides. */
  function checkCsrf(request: FastifyRequest, expected: string): void {
    const origin = request.headers.origin;
    if (origin && origin !== 'null' && !isOwnOrigin(request, origin)) {
      throw new AirlockError('csrf_invalid', 'This form was posted from another site and was refused.');
    }
    if (!safeEqual(field(request.body, '_csrf'), expected)) {
      throw new AirlockError(
        'csrf_invalid',
        'This form is out of date or was not sent by the dashboard. Reload the page and try again.',
      );
    }
  }

  function noticeFrom(request: FastifyRequest): Notice | null {
    const code = (request.query as Record<string, unknown>)['notice'];
    return typeof code === 'string' ? (NOTICES[code] ?? null) : null;
  }

  function errorNotice(err: unknown, v: ActionView | null): Notice {
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

  function isUserError(err: unknown): err is AirlockError {
    return err instanceof AirlockError && httpStatus(err.code) < 500;
  }

  // --- assets, login, logout ------------------------------------------------------------------------------------

  app.get<{ Params: { name: string } }>('/review/assets/:name', async (request, reply) => {
    const asset = ASSETS[request.params.name];
    if (!asset) return page(reply, 404, messagePage('Not found', 'No such file.', null));
    return reply
      .header('content-type', asset.type)
      .header('cache-control', 'public, max-age=300')
      .send(asset.body);
  });

  app.get('/review/login', async (request, reply) => {
    const csrf = randomToken(32);
    const next = field(request.query, 'next');
    setCookie(reply, LOGIN_COOKIE, csrf, '/review/login', 3600, 'strict');
    // A link carrying a bad `next` still gets a login form, one that returns to the queue.
    return page(reply, 200, loginPage(csrf, SAFE_NEXT.test(next) ? next : '', noticeFrom(request)));
  });

  app.post('/review/login', async (request, reply) => {
    const body = request.body;
    const next = field(body, 'next');
    const fresh = randomToken(32);
    setCookie(reply, LOGIN_COOKIE, fresh, '/review/login', 3600, 'strict');
    if (!safeEqual(field(body, '_csrf'), cookieOf(request, LOGIN_COOKIE))) {
      return page(
        reply,
        403,
        loginPage(fresh, next, {
          kind: 'error',
          text: 'The form expired or came from another site. Try again.',
        }),
      );
    }
    if (next !== '' && !SAFE_NEXT.test(next)) {
      return page(
        reply,
        httpStatus('parameter_invalid'),
        loginPage(fresh, '', {
          kind: 'error',
          text: 'The page to return to is not a dashboard address. Log in again to go to the queue.',
        }),
      );
    }
    const email = field(body, 'email');
    const address = request.ip;
    const wait = await opts.throttle.wait(email, address);
    if (wait > 0) {
      // Refused before the password is checked: during a delay or lockout even the right password waits.
      const seconds = Math.ceil(wait / 1000);
      reply.header('retry-after', String(seconds));
      return page(
        reply,
        httpStatus('rate_limit'),
        loginPage(fresh, next, {
          kind: 'error',
          text: `Too many failed logins. Try again in ${formatDuration(seconds * 1000)}.`,
        }),
      );
    }
    const reviewer = await reviews.reviewerForLogin(email);
    const password = field(body, 'password');
    const ok = await verifyPassword(password, reviewer?.passwordHash ?? (await DUMMY_HASH));
    if (!reviewer?.passwordHash || !ok) {
      await opts.throttle.failed(email, address);
      log.warn({ email: email.slice(0, 200), address }, 'dashboard login refused');
      return page(reply, 401, loginPage(fresh, next, { kind: 'error', text: 'Wrong email or password.' }));
    }
    await opts.throttle.succeeded(email);
    const { token } = await reviews.createSession(reviewer.id, now(), opts.sessionTtlMs);
    setCookie(reply, SESSION_COOKIE, token, '/review', Math.floor(opts.sessionTtlMs / 1000));
    setCookie(reply, LOGIN_COOKIE, '', '/review/login', 0, 'strict');
    return reply.redirect(next || '/review', 303);
  });

  app.post('/review/logout', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    try {
      checkCsrf(request, s.csrf);
    } catch (err) {
      return page(reply, 403, messagePage('Refused', (err as Error).message, s));
    }
    const token = cookieOf(request, SESSION_COOKIE);
    if (token) await reviews.deleteSession(token);
    setCookie(reply, SESSION_COOKIE, '', '/review', 0);
    return reply.redirect('/review/login?notice=out', 303);
  });

  // --- queue, live updates --------------------------------------------------------------------------------------

  app.get('/review', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    return page(reply, 200, queuePage(await queue(engine, reviews), s, now(), noticeFrom(request)));
  });

  app.get('/review/queue/rows', async (request, reply) => {
    const s = await session(request);
    if (!s) return page(reply, 401, '');
    return page(reply, 200, queueRows(await queue(engine, reviews), s, now()).value);
  });

  app.get('/review/events', async (request, reply) => {
    const s = await session(request);
    if (!s) return page(reply, 401, '');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    streams.add(res);
    request.raw.on('close', () => streams.delete(res));
    return reply;
  });

  // --- all actions, overview ------------------------------------------------------------------------------------

  app.get('/review/actions', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    const q = Object.fromEntries(
      Object.entries(request.query as Record<string, unknown>).filter(
        (e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '',
      ),
    );
    const num = (v: string | undefined) =>
      v !== undefined && Number.isFinite(Number(v)) ? Number(v) : undefined;
    const day = (v: string | undefined, plus = 0) =>
      v && /^\d{4}-\d{2}-\d{2}$/.test(v)
        ? new Date(new Date(`${v}T00:00:00.000Z`).getTime() + plus).toISOString()
        : undefined;
    const f: ActionFilters = {
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
    const { views, hasMore } = await searchActions(engine, reviews, f);
    const { starting_after: _, ...filters } = q;
    return page(reply, 200, actionsPage(views, hasMore, f, filters, s, now()));
  });

  app.get('/review/overview', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    return page(reply, 200, overviewPage(await overview(engine, now()), s));
  });

  // --- receipt and decisions ------------------------------------------------------------------------------------

  app.get<{ Params: { id: string } }>('/review/actions/:id', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    const v = await loadView(engine, reviews, request.params.id, { ledger: true }).catch(() => null);
    if (!v) return page(reply, 404, messagePage('Not found', `No action ${request.params.id}.`, s));
    return page(reply, 200, receiptPage(v, s, now(), noticeFrom(request)));
  });

  for (const verb of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string } }>(`/review/actions/:id/${verb}`, async (request, reply) => {
      const s = await requireSession(request, reply);
      if (!s) return reply;
      const id = request.params.id;
      const body = request.body;
      try {
        checkCsrf(request, s.csrf);
        const note = field(body, 'note').trim().slice(0, 2000) || null;
        let row: Awaited<ReturnType<Engine['approve']>>;
        if (verb === 'approve') {
          const changes = await changesFrom(id, body);
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
        if (!isUserError(err)) throw err;
        const v = await loadView(engine, reviews, id, { ledger: true }).catch(() => null);
        if (!v) return page(reply, httpStatus(err.code), messagePage('Refused', err.message, s));
        return page(reply, httpStatus(err.code), receiptPage(v, s, now(), errorNotice(err, v)));
      }
    });
  }

  /** Reads the "approve with changes" fields, keeping only what differs from the request as it stands. */
  async function changesFrom(id: string, body: unknown): Promise<ApprovalChanges | null> {
    const action = await engine.get(id);
    const params = JSON.parse(action.params) as Record<string, unknown>;
    const changes: ApprovalChanges = {};
    const amountText = field(body, 'amount').trim();
    if (amountText && action.amount !== null && action.currency) {
      const amount = parseMajorUnits(amountText, action.currency);
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

  // --- a reviewer asks for a refund (someone else approves it if the policy holds it) -----------------------------

  app.get('/review/refund', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    return page(
      reply,
      200,
      refundPage(s, randomToken(24), noticeFrom(request), field(request.query, 'charge')),
    );
  });

  app.post('/review/refund', async (request, reply) => {
    const s = await requireSession(request, reply);
    if (!s) return reply;
    const body = request.body;
    const charge = field(body, 'charge').trim();
    try {
      checkCsrf(request, s.csrf);
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
      if (['requested_by_customer', 'duplicate', 'fraudulent'].includes(reason)) params['reason'] = reason;
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
      if (!isUserError(err)) throw err;
      return page(
        reply,
        httpStatus(err.code),
        refundPage(s, randomToken(24), errorNotice(err, null), charge),
      );
    }
  });

  // --- kill switch: admins (reviewers in the admins group) freeze and unfreeze money-out ---------------------------

  /** Admins only: anyone else gets a 403 page, whatever they send. */
  function requireAdmin(s: Session, reply: FastifyReply): boolean {
    if (isAdmin(s)) return true;
    void page(
      reply,
      403,
      messagePage('Admins only', 'Only dashboard admins (the admins group) can freeze or unfreeze.', s),
    );
    return false;
  }

  async function freezeView(s: Session, reply: FastifyReply, status: number, notice: Notice | null) {
    const [freezes, agents] = await Promise.all([
      describeFreezes(engine.store),
      engine.store.db.selectFrom('agents').select('name').orderBy('name').execute(),
    ]);
    return page(
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
    const s = await requireSession(request, reply);
    if (!s || !requireAdmin(s, reply)) return reply;
    return freezeView(s, reply, 200, noticeFrom(request));
  });

  for (const verb of ['freeze', 'unfreeze'] as const) {
    app.post(`/review/${verb}`, async (request, reply) => {
      const s = await requireSession(request, reply);
      if (!s || !requireAdmin(s, reply)) return reply;
      try {
        checkCsrf(request, s.csrf);
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
        if (!isUserError(err)) throw err;
        return freezeView(s, reply, httpStatus(err.code), errorNotice(err, null));
      }
    });
  }

  // --- signed email links ---------------------------------------------------------------------------------------

  async function linkContext(token: string, reply: FastifyReply) {
    const check = await reviews.checkLink(token, now());
    if (!check.ok) {
      const expired = check.reason === 'expired';
      void page(
        reply,
        httpStatus(expired ? 'link_expired' : 'link_invalid'),
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
    const ctx = await linkContext(request.params.token, reply);
    if (!ctx) return reply;
    const v = await loadView(engine, reviews, ctx.link.actionId, { ledger: true });
    const done = field(request.query, 'done') === '1';
    const notice: Notice | null = ctx.link.usedAt
      ? {
          kind: done ? 'ok' : 'error',
          text: done
            ? `Done: this action is now ${v.row.status.replace('_', ' ')}.`
            : 'This link has been used; it cannot decide again.',
        }
      : null;
    return page(
      reply,
      200,
      linkPage(v, ctx.link.verb, ctx.email, request.params.token, now(), notice, Boolean(ctx.link.usedAt)),
    );
  });

  /** Only this POST decides: mail scanners and link previews open links, they do not press buttons. */
  app.post<{ Params: { token: string } }>('/review/links/:token', async (request, reply) => {
    const token = request.params.token;
    // The link page posts with our own Origin (its referrer policy is same-origin); a page elsewhere that holds a
    // leaked link must not press the button through the reviewer's browser. Clients that send no Origin (curl)
    // hold the link themselves, which already lets them decide.
    const origin = request.headers.origin;
    if (origin !== undefined && !isOwnOrigin(request, origin)) {
      return page(
        reply,
        httpStatus('csrf_invalid'),
        messagePage('Refused', 'This link was posted from another site and was refused.', null),
      );
    }
    const ctx = await linkContext(token, reply);
    if (!ctx) return reply;
    const { link } = ctx;
    const showOutcome = async (status: number, notice: Notice) =>
      page(
        reply,
        status,
        linkPage(
          await loadView(engine, reviews, link.actionId, { ledger: true }),
          link.verb,
          ctx.email,
          token,
          now(),
          notice,
          true,
        ),
      );
    if (!(await reviews.spendBatch(link.batchId, now()))) {
      return showOutcome(httpStatus('link_used'), {
        kind: 'error',
        text: 'This link has been used; it cannot decide again.',
      });
    }
    const reviewer: Reviewer | undefined = await engine.store.findReviewerByEmail(ctx.email);
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
      if (!isUserError(err)) {
        await reviews.unspendBatch(link.batchId); // the store failed: the reviewer may try again
        throw err;
      }
      const v = await loadView(engine, reviews, link.actionId, { ledger: true });
      return page(
        reply,
        httpStatus(err.code),
        linkPage(v, link.verb, ctx.email, token, now(), errorNotice(err, v), true),
      );
    }
  });
}
