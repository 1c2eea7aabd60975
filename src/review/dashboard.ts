import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { LoginThrottle } from '../auth/throttle.ts';
import type { Dispatcher } from '../engine/dispatcher.ts';
import type { Engine } from '../engine/engine.ts';
import { httpStatus } from '../errors.ts';
import type { SlackApp } from '../notify/slack-app.ts';
import { registerActions } from './routes/actions.ts';
import { registerAssets } from './routes/assets.ts';
import type { ReviewContext } from './routes/context.ts';
import { registerDecide } from './routes/decide.ts';
import { registerEvents } from './routes/events.ts';
import { registerFreeze } from './routes/freeze.ts';
import { registerLinks } from './routes/links.ts';
import { registerLogin } from './routes/login.ts';
import { registerOutside } from './routes/outside.ts';
import { registerQueue } from './routes/queue.ts';
import { registerRefunds } from './routes/refunds.ts';
import { registerSlack } from './routes/slack.ts';
import { registerSso } from './routes/sso.ts';
import { type SessionOptions, Sessions } from './session.ts';
import type { LoginMethods } from './sso.ts';
import { ReviewStore } from './store.ts';

export interface DashboardOptions extends SessionOptions {
  /** Failed logins slow down and lock out accounts and addresses; tests pass a throttle with their own rules. */
  throttle: LoginThrottle;
  login: LoginMethods;
  /** Slack's interactive app, when configured: its button presses arrive at /slack/interactions. */
  slack: SlackApp | null;
}

export interface DashboardDeps {
  engine: Engine;
  dispatcher: Dispatcher;
  log: Logger;
  review?: Partial<DashboardOptions> | undefined;
}

/**
 * The reviewer dashboard: server-rendered pages under /review, a session cookie, a CSRF token in every form, and
 * server-sent events so the queue updates itself. Every decision goes through the engine. This wires the parts:
 * session.ts (cookies, CSRF), routes/ (one file per concept), pages/ (rendering), auth/authorize.ts (who may).
 */
export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  const { engine } = deps;
  const opts: DashboardOptions = {
    sessionTtlMs: deps.review?.sessionTtlMs ?? 12 * 3600_000,
    secureCookies: deps.review?.secureCookies ?? false,
    publicUrl: deps.review?.publicUrl ?? null,
    throttle: deps.review?.throttle ?? new LoginThrottle(),
    login: deps.review?.login ?? { password: true, sso: null },
    slack: deps.review?.slack ?? null,
  };
  const reviews = new ReviewStore(engine.store);
  const now = () => engine.clock.now();
  const ctx: ReviewContext = {
    engine,
    dispatcher: deps.dispatcher,
    log: deps.log,
    reviews,
    sessions: new Sessions(reviews, opts, now),
    throttle: opts.throttle,
    login: opts.login,
    now,
    statusOf: httpStatus,
  };
  registerAssets(app);
  registerLogin(app, ctx);
  registerSso(app, ctx);
  registerQueue(app, ctx);
  registerEvents(app, ctx);
  registerActions(app, ctx);
  registerDecide(app, ctx);
  registerRefunds(app, ctx);
  registerOutside(app, ctx);
  registerFreeze(app, ctx);
  registerLinks(app, ctx);
  if (opts.slack) registerSlack(app, ctx, opts.slack, opts.publicUrl);
}
