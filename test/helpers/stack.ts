import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import Stripe from 'stripe';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Clock } from '../../src/engine/clock.ts';
import { type RunningAirlock, startAirlock } from '../../src/server.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';

export interface Stack {
  dir: string;
  sandbox: Sandbox;
  airlock: RunningAirlock;
  /** The official client, pointed at Airlock with an agent key. */
  agent: Stripe;
  agentKey: string;
  /** The official client, straight to the sandbox: for seeding charges and looking behind Airlock's back. */
  direct: Stripe;
  reviewerToken: string;
  api(
    path: string,
    init?: { method?: string; body?: unknown; token?: string },
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'airlock-test-'));
}

export function stripeAt(key: string, port: number, maxNetworkRetries = 0): Stripe {
  return new Stripe(key, { host: '127.0.0.1', port, protocol: 'http', maxNetworkRetries });
}

/** A real Airlock server on a real SQLite file in front of a real sandbox, on ephemeral ports. */
export async function startStack(env: Record<string, string> = {}, clock?: Clock): Promise<Stack> {
  return startStackIn(tempDir(), env, clock);
}

/** A stack under the policy given as YAML lines, kept in the stack's folder so `close()` removes it too. */
export async function startStackWithPolicy(
  policy: readonly string[],
  env: Record<string, string> = {},
  opts: StackOptions = {},
): Promise<Stack> {
  const dir = tempDir();
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policy.join('\n'));
  return startStackIn(dir, { AIRLOCK_POLICY: file, ...env }, undefined, opts);
}

export interface StackOptions {
  /**
   * Airlock starts its built-in sandbox itself (no STRIPE_API_BASE), which registers Airlock's webhook route and
   * sends it a signed event for everything it does, as in `npm start` with no key (docs/sandbox.md).
   */
  builtInSandbox?: boolean;
}

/**
 * The policy the tests of the action and decision APIs run under, over HTTP and through the SDK: lookups pass,
 * refunds pass up to $500 and wait for review above it, payouts are blocked, anything else waits for review.
 * On the actions API the kinds and amounts come from ACTIONS_ROUTES, never from the caller.
 */
export const ACTIONS_POLICY: readonly string[] = [
  'default: review',
  'rules:',
  `  - "Allow if :kind: = 'order.lookup'"`,
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
  `  - "Block if :kind: = 'payout.create'"`,
];

/**
 * The routes those tests declare for their upstream (`http_upstreams[].routes`): what a generic call is and where
 * its amount sits in the body, so the policy above values it by the body the upstream receives.
 */
export const ACTIONS_ROUTES = [
  { method: 'POST', path: '/refunds', kind: 'refund.create', amount: '/amount', currency: { value: 'usd' } },
  { method: 'POST', path: '/payouts', kind: 'payout.create', amount: '/amount', currency: { value: 'usd' } },
  { method: 'GET', path: '/orders/:id', kind: 'order.lookup' },
] as const;

async function startStackIn(
  dir: string,
  env: Record<string, string>,
  clock?: Clock,
  opts: StackOptions = {},
): Promise<Stack> {
  const own = opts.builtInSandbox ? null : await startSandbox();
  const config = loadConfig(
    {
      PORT: '0',
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      ...(own ? { STRIPE_API_BASE: own.url } : { AIRLOCK_SANDBOX_PORT: '0' }),
      AIRLOCK_DISPATCH_BACKOFF_MS: '10',
      AIRLOCK_DISPATCH_MAX_BACKOFF_MS: '50',
      AIRLOCK_DISPATCH_MAX_ATTEMPTS: '4',
      AIRLOCK_DISPATCH_POLL_MS: '50',
      AIRLOCK_DISPATCH_RECONCILE_MS: '100',
      // Tests drive one key far past the default 100 per minute; test/reliability tests the limit itself.
      AIRLOCK_RATE_LIMIT_PER_MINUTE: '1000000',
      ...env,
    },
    undefined,
  );
  const airlock = await startAirlock(config, pino({ level: 'silent' }), clock ? { clock } : {});
  const sandbox = own ?? airlock.sandbox!;
  const { key } = await createAgentKey(airlock.store, 'support-bot');
  const { token } = await createReviewer(airlock.store, 'finance@example.com');
  const api: Stack['api'] = async (path, init = {}) => {
    const res = await fetch(`${airlock.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${init.token ?? token}`,
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  return {
    dir,
    sandbox,
    airlock,
    agent: stripeAt(key, airlock.port, 2),
    agentKey: key,
    direct: stripeAt('sk_test_direct', sandbox.port),
    reviewerToken: token,
    api,
    async close() {
      await airlock.close(); // closes the built-in sandbox with it
      await own?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Catches what a promise rejects with, failing loudly if it resolves instead. */
export async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    const value = await p;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    return err;
  }
}

/** As `until`, for a check that must await (a store read). */
export async function eventually<T>(fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Polls `fn` every 20 ms until it gives something other than undefined, and returns that; throws after `ms`. */
export async function until<T>(fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function charge(stack: Stack, amount: number, currency = 'usd'): Promise<Stripe.Charge> {
  return stack.direct.charges.create({ amount, currency, source: 'tok_visa' });
}
