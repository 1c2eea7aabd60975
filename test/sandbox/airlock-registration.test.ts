import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Stripe from 'stripe';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger, type RunningAirlock, startAirlock } from '../../src/server.ts';

let airlock: RunningAirlock | null = null;
let dir = '';

afterEach(async () => {
  await airlock?.close();
  airlock = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Airlock on its built-in sandbox (no STRIPE_SECRET_KEY, no STRIPE_API_BASE), its log lines captured. */
async function startOnBuiltInSandbox(
  env: Record<string, string>,
): Promise<{ airlock: RunningAirlock; lines: string[] }> {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sandbox-hooks-'));
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const config = loadConfig(
    {
      PORT: '0',
      AIRLOCK_SANDBOX_PORT: '0',
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      AIRLOCK_LOG_FORMAT: 'json',
      ...env,
    },
    undefined,
  );
  airlock = await startAirlock(config, createLogger(config, stream));
  return { airlock, lines };
}

async function until<T>(fn: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Airlock on the built-in sandbox', () => {
  it('registers its own webhook URL with a generated secret, logged as generated but never shown', async () => {
    const { airlock: a, lines } = await startOnBuiltInSandbox({});
    const sandbox = a.sandbox!;
    const secret = a.stripeWebhookSecret!;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{20,}$/);
    expect(sandbox.webhookEndpoints()).toEqual([
      {
        id: expect.stringMatching(/^we_/),
        url: `http://127.0.0.1:${a.port}/stripe/webhooks`,
        secret,
        enabledEvents: ['*'],
      },
    ]);
    expect(lines.some((l) => l.includes('generated a webhook secret'))).toBe(true);
    expect(lines.some((l) => l.includes(secret))).toBe(false);

    // The sandbox really sends there: Airlock answers (whatever its route says yet), so delivery reached it.
    const direct = new Stripe('sk_test_direct', {
      host: '127.0.0.1',
      port: sandbox.port,
      protocol: 'http',
      maxNetworkRetries: 0,
    });
    await direct.charges.create({ amount: 100, currency: 'usd', source: 'tok_visa' });
    const attempt = await until(
      () => sandbox.deliveries().find((d) => d.status !== null),
      'a delivery answered by Airlock',
    );
    expect(attempt).toMatchObject({
      url: `http://127.0.0.1:${a.port}/stripe/webhooks`,
      type: 'charge.succeeded',
    });
  });

  it('uses the configured secret and path, and generates nothing', async () => {
    const { airlock: a, lines } = await startOnBuiltInSandbox({
      STRIPE_WEBHOOK_SECRET: 'whsec_configured_for_test',
      AIRLOCK_STRIPE_WEBHOOK_PATH: '/hooks/stripe',
    });
    expect(a.stripeWebhookSecret).toBe('whsec_configured_for_test');
    expect(a.sandbox!.webhookEndpoints()).toMatchObject([
      { url: `http://127.0.0.1:${a.port}/hooks/stripe`, secret: 'whsec_configured_for_test' },
    ]);
    expect(lines.some((l) => l.includes('generated a webhook secret'))).toBe(false);
  });

  it('refuses a webhook path without a leading slash, naming the key', () => {
    expect(() => loadConfig({ AIRLOCK_STRIPE_WEBHOOK_PATH: 'stripe/webhooks' }, undefined)).toThrow(
      /stripe_webhook_path/,
    );
  });
});
