import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { loadSigningKey } from './audit/keys.ts';
import { LedgerSealer } from './audit/sealer.ts';
import { type LedgerSigner, startLedgerSigner } from './audit/signer.ts';
import type { Config } from './config/config.ts';
import { type Clock, systemClock } from './engine/clock.ts';
import { Dispatcher } from './engine/dispatcher.ts';
import { Engine } from './engine/engine.ts';
import { Gateway } from './engine/gateway.ts';
import { policyResolvers } from './engine/resolvers/index.ts';
import { StripeEventIngest } from './engine/stripe-events.ts';
import { buildApp } from './http/app.ts';
import { registerMetricsRoute, startMetricsServer } from './metrics/http.ts';
import { Metrics } from './metrics/metrics.ts';
import { CustomerNoticeOutbox } from './notify/customer.ts';
import { configuredChannels, customerNotices, Notifier } from './notify/notifier.ts';
import { HoldOutbox } from './notify/outbox.ts';
import { OutsideAlerter, OutsideAlertOutbox } from './notify/outside.ts';
import { SlackApp } from './notify/slack-app.ts';
import { CallbackSender, callbackSecret } from './outbound/callbacks.ts';
import { OutboundHttp } from './outbound/http.ts';
import { loadPolicyFile } from './policy/index.ts';
import { PolicyReloader, type ReloadResult } from './policy-tools/reload.ts';
import { SsoClient, type SsoSettings } from './review/sso.ts';
import { openPostgresStore } from './store/postgres/open.ts';
import { openSqliteStore } from './store/sqlite/open.ts';
import type { Store } from './store/store.ts';
import { ContextLookups, StripeLookups } from './stripe/lookups.ts';
import { newWebhookSecret, type Sandbox, startSandboxBeside } from './stripe/sandbox/index.ts';
import { StripeUpstream } from './stripe/upstream.ts';

export interface RunningAirlock {
  url: string;
  port: number;
  app: FastifyInstance;
  engine: Engine;
  store: Store;
  dispatcher: Dispatcher;
  gateway: Gateway;
  upstream: StripeUpstream;
  sandbox: Sandbox | null;
  /** The secret Stripe's webhooks are verified with: configured, generated for the built-in sandbox, or null. */
  stripeWebhookSecret: string | null;
  metrics: Metrics | null;
  /** Where Prometheus scrapes, on the main port or the private metrics port; null when disabled. */
  metricsUrl: string | null;
  /** Stripe Events in: the webhook route and `airlock stripe backfill` both store through it. */
  stripeEvents: StripeEventIngest;
  /** Signs digests of the ledger head; null when no signing key is configured, and in workers other than 1. */
  ledger: LedgerSigner | null;
  /** Reads the policy file again, as SIGHUP does. */
  reloadPolicy(): Promise<ReloadResult>;
  close(): Promise<void>;
}

// Used only against the built-in sandbox or a Stripe-compatible server given without a key; never real Stripe.
const SANDBOX_KEY = 'sk_test_airlock_sandbox';

export function createLogger(
  config: Pick<Config, 'log_level'> & Partial<Pick<Config, 'log_format' | 'log_redact'>>,
  /** Tests capture lines here; by default pino's own fast stdout writer. */
  destination?: NodeJS.WritableStream,
): Logger {
  const readable =
    config.log_format === 'pretty' || (config.log_format !== 'json' && process.stdout.isTTY === true);
  const options: pino.LoggerOptions = {
    level: config.log_level,
    base: { service: 'airlock' },
    // Belt and braces for guarantee 7: even if a header object is ever logged, credentials are not.
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        '*.authorization',
        'key',
        'token',
        'secret',
        // The ledger signing key is never logged, even if a config object is.
        'signing_key',
        '*.signing_key',
        '*.ledger.signing_key',
        ...(config.log_redact ?? []),
      ],
      censor: '[redacted]',
    },
  };
  return readable
    ? pino(
        options,
        pretty({ colorize: !destination && process.stdout.isTTY === true, sync: true, destination }),
      )
    : destination
      ? pino(options, destination as pino.DestinationStream)
      : pino(options);
}

/** PostgreSQL when DATABASE_URL is set, else the SQLite file. Pending migrations run unless migrate is false. */
export async function openStore(
  config: Config,
  opts: { log?: Logger; migrate?: boolean; serving?: boolean } = {},
): Promise<Store> {
  if (config.database_url) {
    return openPostgresStore(config.database_url, {
      migrate: opts.migrate ?? true,
      onError: (err) => opts.log?.warn({ err }, 'PostgreSQL connection error'),
    });
  }
  return openSqliteStore(config.data, {
    migrate: opts.migrate ?? true,
    backgroundCheckpoints: opts.serving ?? false,
  });
}

export interface StartOptions {
  /** Tests pin the clock to check business hours and expiry; production uses the system clock. */
  clock?: Clock;
  /**
   * This process's slot under `serve --workers N` (1..N), or absent for a single process. Workers render the
   * group's metrics, say which worker answered /healthz and /readyz, and only worker 1 signs ledger digests (the
   * digest file is one file on this machine, appended by one writer).
   */
  worker?: number;
  /** False when pending migrations already ran (the cluster primary runs them before forking). */
  migrate?: boolean;
}

export async function startAirlock(
  config: Config,
  log: Logger = createLogger(config),
  options: StartOptions = {},
): Promise<RunningAirlock> {
  const policy = loadPolicyFile(config.policy);
  // Read before the store opens: a missing or bad key stops start-up before anything runs.
  const ledgerKey = loadSigningKey(config.ledger);
  const store = await openStore(config, { log, serving: true, migrate: options.migrate ?? true });
  let sandbox: Sandbox | null = null;
  let upstream: StripeUpstream;
  try {
    const released = await store.releaseAllLeases();
    if (released > 0) log.warn({ released }, 'resuming actions left in flight by a previous run');
    if (config.stripe_secret_key) {
      upstream = new StripeUpstream(
        config.stripe_api_base ?? 'https://api.stripe.com',
        config.stripe_secret_key,
        config.dispatch.upstream_timeout_ms,
      );
    } else if (config.stripe_api_base) {
      upstream = new StripeUpstream(config.stripe_api_base, SANDBOX_KEY, config.dispatch.upstream_timeout_ms);
      log.warn(
        { upstream: config.stripe_api_base },
        'no STRIPE_SECRET_KEY: using a test key against STRIPE_API_BASE',
      );
    } else {
      const dbPath = config.data === ':memory:' ? ':memory:' : join(dirname(config.data), 'sandbox.db');
      const placed = await startSandboxBeside(config.port, config.sandbox_port, { dbPath });
      sandbox = placed.sandbox;
      if (placed.wanted !== null) {
        log.warn(
          { wanted: placed.wanted, sandbox: sandbox.url },
          `port ${placed.wanted} is taken (another Airlock?): the Stripe sandbox took free port ${sandbox.port}`,
        );
      }
      upstream = new StripeUpstream(sandbox.url, SANDBOX_KEY, config.dispatch.upstream_timeout_ms);
      log.warn(
        { sandbox: sandbox.url },
        'no STRIPE_SECRET_KEY: running against the built-in Stripe sandbox (test data only, no real money moves)',
      );
      if (!config.stripe_webhook_secret) {
        // Everything below reads this config, so the webhook route verifies with the secret the sandbox signs with.
        config = { ...config, stripe_webhook_secret: newWebhookSecret() };
        log.info(
          'no STRIPE_WEBHOOK_SECRET: generated a webhook secret for the built-in sandbox, kept for this process',
        );
      }
    }
  } catch (err) {
    await store.close();
    throw err;
  }

  const lookups = new StripeLookups(upstream);
  const engine = new Engine({
    store,
    policy,
    clock: options.clock ?? systemClock,
    facts: lookups,
    context: new ContextLookups(upstream),
    resolvers: policyResolvers(lookups),
  });
  await engine.keepHistoryInMemory();
  const stripeEvents = new StripeEventIngest(engine);
  // Stores the running version's text and swaps in valid edits of the file (and on SIGHUP).
  const reloader = new PolicyReloader({ file: config.policy, holder: engine, store, log });
  await reloader.start();
  const metrics = config.metrics.enabled
    ? new Metrics(engine, { clustered: options.worker !== undefined })
    : null;
  const http = config.http_upstreams.length
    ? new OutboundHttp(config.http_upstreams, config.dispatch.upstream_timeout_ms)
    : null;
  const dispatcher = new Dispatcher(
    engine,
    upstream,
    {
      maxAttempts: config.dispatch.max_attempts,
      backoffMs: config.dispatch.backoff_ms,
      maxBackoffMs: config.dispatch.max_backoff_ms,
      leaseMs: config.dispatch.lease_ms,
      pollMs: config.dispatch.poll_ms,
      reconcileMs: config.dispatch.reconcile_ms,
    },
    log,
    http,
    metrics,
  );
  const callbacks = new CallbackSender(
    store,
    {
      secret: await callbackSecret(store, config.callbacks.secret),
      maxAttempts: config.callbacks.max_attempts,
      backoffMs: config.callbacks.backoff_ms,
      maxBackoffMs: config.callbacks.max_backoff_ms,
      pollMs: config.callbacks.poll_ms,
      timeoutMs: config.callbacks.timeout_ms,
      allowPrivate: config.callbacks.allow_private,
    },
    log,
    metrics,
  );
  const gateway = new Gateway(engine, dispatcher, upstream, log, {
    outageReads: config.store_outage.reads,
  });
  const app = buildApp({
    engine,
    dispatcher,
    gateway,
    upstream,
    http,
    callbacks,
    log,
    worker: options.worker ?? null,
    bodyLimitBytes: config.body_limit_bytes,
    rateLimitPerMinute: config.rate_limit.per_minute,
    review: {
      sessionTtlMs: config.review.session_ttl_ms,
      secureCookies: config.public_url?.startsWith('https:') ?? false,
      publicUrl: config.public_url ?? null,
      login: {
        password: config.review.password_login,
        sso: config.oidc ? new SsoClient(ssoSettings(config.oidc)) : null,
      },
      slack: config.slack ? new SlackApp(config.slack) : null,
    },
    stripeEvents: {
      ingest: stripeEvents,
      secret: config.stripe_webhook_secret ?? null,
      path: config.stripe_webhook_path,
    },
  });
  const separateMetrics = metrics !== null && config.metrics.port !== undefined;
  if (metrics && !separateMetrics) registerMetricsRoute(app, metrics, config.metrics.path);
  dispatcher.start();
  callbacks.start();
  // Holds queue their reviewers' messages from the first request on; they are sent once the URL is known.
  const channels = configuredChannels(config, undefined, store);
  engine.notifications = new HoldOutbox(channels);
  // Money moved outside Airlock is alerted through the same channels (docs/stripe-events.md).
  stripeEvents.alerts = new OutsideAlertOutbox(channels);
  let alerter: OutsideAlerter | null = null;
  stripeEvents.observer = {
    outside(e) {
      metrics?.outside(e);
      if (!e.expected) alerter?.wake();
    },
  };
  // Customers hear how their action ended, when the operator asks for it (docs/review.md, "Customer notices").
  const notices = customerNotices(config, lookups);
  engine.outcomeNotifications = notices ? new CustomerNoticeOutbox(notices.settings) : null;
  const sealer = new LedgerSealer(store, log).start();
  const signs = options.worker === undefined || options.worker === 1;
  const ledger = signs ? startLedgerSigner(config, ledgerKey, store, log, options.clock) : null;
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host}:${port}`;
  const metricsServer =
    metrics && config.metrics.port !== undefined
      ? await startMetricsServer(metrics, {
          host: config.metrics.host,
          port: config.metrics.port,
          path: config.metrics.path,
        })
      : null;
  const metricsUrl = metrics ? (metricsServer?.url ?? `${url}${config.metrics.path}`) : null;
  let sandboxWebhook: string | null = null;
  if (sandbox && config.stripe_webhook_secret) {
    // The sandbox sends Airlock the events of everything it does, signed, as Stripe would (docs/sandbox.md).
    const webhookUrl = `http://127.0.0.1:${port}${config.stripe_webhook_path}`;
    sandboxWebhook = sandbox.addWebhookEndpoint({ url: webhookUrl, secret: config.stripe_webhook_secret }).id;
    log.info({ url: webhookUrl }, 'the built-in Stripe sandbox sends its events here');
  }
  log.info(
    {
      url,
      policy: policy.file,
      policy_version: policy.version,
      store: store.dialect === 'postgres' ? 'postgres' : config.data,
    },
    'Airlock is listening',
  );
  // Reviewers hear about holds by email and Slack; links point at the public URL.
  const notifier = new Notifier({
    engine,
    log,
    channels,
    baseUrl: (config.public_url ?? url).replace(/\/+$/, ''),
    linkTtlMs: config.review.link_ttl_ms,
    notices,
  }).start();
  alerter = new OutsideAlerter({
    store,
    log,
    channels,
    baseUrl: (config.public_url ?? url).replace(/\/+$/, ''),
  }).start();

  let closed = false;
  return {
    url,
    port,
    app,
    engine,
    store,
    dispatcher,
    gateway,
    upstream,
    sandbox,
    stripeWebhookSecret: config.stripe_webhook_secret ?? null,
    metrics,
    metricsUrl,
    stripeEvents,
    ledger,
    reloadPolicy: () => reloader.reload('api'),
    async close() {
      if (closed) return;
      closed = true;
      // The sandbox stops sending first: a delivery still under way would keep this server's close waiting.
      if (sandbox && sandboxWebhook) sandbox.removeWebhookEndpoint(sandboxWebhook);
      await app.close();
      await metricsServer?.app.close();
      metrics?.close();
      await notifier.stop();
      await alerter?.stop();
      await reloader.close();
      await dispatcher.stop();
      await callbacks.stop();
      await http?.close();
      await upstream.close();
      // The digest on shutdown, after the last event this process writes, sealed.
      await sealer.close();
      await ledger?.close();
      await store.close();
      if (sandbox) await sandbox.close();
    },
  };
}

function ssoSettings(c: NonNullable<Config['oidc']>): SsoSettings {
  return {
    issuer: c.issuer,
    clientId: c.client_id,
    clientSecret: c.client_secret ?? null,
    scopes: c.scopes,
    groupsClaim: c.groups_claim,
    groupMap: c.group_map,
    requiredGroup: c.required_group ?? null,
    name: c.name,
  };
}
