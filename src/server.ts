import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import type { Config } from './config/config.ts';
import { type Clock, systemClock } from './engine/clock.ts';
import { Dispatcher } from './engine/dispatcher.ts';
import { Engine } from './engine/engine.ts';
import { AirlockError } from './errors.ts';
import { buildApp } from './http/app.ts';
import { loadPolicyFile } from './policy/index.ts';
import { openSqliteStore } from './store/sqlite.ts';
import type { Store } from './store/store.ts';
import { StripeLookups } from './stripe/lookups.ts';
import { type Sandbox, startSandbox } from './stripe/sandbox/index.ts';
import { StripeUpstream } from './stripe/upstream.ts';

export interface RunningAirlock {
  url: string;
  port: number;
  app: FastifyInstance;
  engine: Engine;
  store: Store;
  dispatcher: Dispatcher;
  upstream: StripeUpstream;
  sandbox: Sandbox | null;
  close(): Promise<void>;
}

// Used only against the built-in sandbox or a Stripe-compatible server given without a key; never real Stripe.
const SANDBOX_KEY = 'sk_test_airlock_sandbox';

export function createLogger(config: Pick<Config, 'log_level'>): Logger {
  return pino({
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
      ],
      censor: '[redacted]',
    },
  });
}

export async function openStore(config: Config): Promise<Store> {
  if (config.database_url) {
    throw new AirlockError(
      'config_invalid',
      'DATABASE_URL is set, but PostgreSQL support is not built yet; unset it to use SQLite',
    );
  }
  return openSqliteStore(config.data);
}

export interface StartOptions {
  /** Tests pin the clock to check business hours and expiry; production uses the system clock. */
  clock?: Clock;
}

export async function startAirlock(
  config: Config,
  log: Logger = createLogger(config),
  options: StartOptions = {},
): Promise<RunningAirlock> {
  const policy = loadPolicyFile(config.policy);
  const store = await openStore(config);
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
      sandbox = await startSandbox({ dbPath, port: config.sandbox_port });
      upstream = new StripeUpstream(sandbox.url, SANDBOX_KEY, config.dispatch.upstream_timeout_ms);
      log.warn(
        { sandbox: sandbox.url },
        'no STRIPE_SECRET_KEY: running against the built-in Stripe sandbox (test data only, no real money moves)',
      );
    }
  } catch (err) {
    await store.close();
    throw err;
  }

  const engine = new Engine({
    store,
    policy,
    clock: options.clock ?? systemClock,
    facts: new StripeLookups(upstream),
  });
  const dispatcher = new Dispatcher(
    engine,
    upstream,
    {
      maxAttempts: config.dispatch.max_attempts,
      backoffMs: config.dispatch.backoff_ms,
      maxBackoffMs: config.dispatch.max_backoff_ms,
      leaseMs: config.dispatch.lease_ms,
      pollMs: config.dispatch.poll_ms,
    },
    log,
  );
  const app = buildApp({ engine, dispatcher, upstream, log, bodyLimitBytes: config.body_limit_bytes });
  dispatcher.start();
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host}:${port}`;
  log.info(
    { url, policy: policy.file, policy_version: policy.version, store: config.data },
    'Airlock is listening',
  );

  let closed = false;
  return {
    url,
    port,
    app,
    engine,
    store,
    dispatcher,
    upstream,
    sandbox,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await dispatcher.stop();
      await upstream.close();
      await store.close();
      if (sandbox) await sandbox.close();
    },
  };
}
