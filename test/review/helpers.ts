import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { type Browser, chromium, type Page } from 'playwright-core';
import type Stripe from 'stripe';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { loadConfig } from '../../src/config/config.ts';
import { type RunningAirlock, startAirlock } from '../../src/server.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { findChromium } from '../helpers/browser.ts';
import { rejection, stripeAt, tempDir } from '../helpers/stack.ts';

// Refunds over $500 are held; over $5,000 they need two finance reviewers.
export const REVIEW_POLICY = `
timezone: UTC
default: review
expires_in: 72h
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 5000"
    approvals: 2
    reviewers: [group:finance]
`;

export const PASSWORD = 'correct horse battery staple';

/** A clock tests can move: expiry is decided on it. */
export class TestClock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

export interface ReviewStack {
  dir: string;
  sandbox: Sandbox;
  airlock: RunningAirlock;
  agent: Stripe;
  direct: Stripe;
  clock: TestClock;
  reviewers: Record<'alice' | 'bob' | 'carol', { id: string; email: string }>;
  /** Asks for a refund as the agent; returns the held action id. */
  holdRefund(amount: number): Promise<{ actionId: string; chargeId: string }>;
  refundsFor(chargeId: string): Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startReviewStack(
  env: Record<string, string> = {},
  policy: string = REVIEW_POLICY,
): Promise<ReviewStack> {
  const dir = tempDir();
  const sandbox = await startSandbox();
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, policy);
  const config = loadConfig(
    {
      PORT: '0',
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      AIRLOCK_POLICY: policyFile,
      STRIPE_API_BASE: sandbox.url,
      AIRLOCK_DISPATCH_BACKOFF_MS: '10',
      AIRLOCK_DISPATCH_MAX_BACKOFF_MS: '50',
      AIRLOCK_DISPATCH_POLL_MS: '50',
      ...env,
    },
    undefined,
  );
  const clock = new TestClock();
  const airlock = await startAirlock(config, pino({ level: 'silent' }), { clock });
  const { key } = await createAgentKey(airlock.store, 'support-bot');
  const passwordHash = await hashPassword(PASSWORD);
  const make = async (email: string, groups: string[]) => {
    const r = await createReviewer(airlock.store, email, { passwordHash, groups });
    return { id: r.id, email: r.email };
  };
  const reviewers = {
    alice: await make('alice@example.com', ['finance']),
    bob: await make('bob@example.com', ['finance']),
    carol: await make('carol@example.com', ['support']),
  };
  const agent = stripeAt(key, airlock.port);
  const direct = stripeAt('sk_test_direct', sandbox.port);
  return {
    dir,
    sandbox,
    airlock,
    agent,
    direct,
    clock,
    reviewers,
    async holdRefund(amount) {
      const ch = await direct.charges.create({
        amount: amount + 10_000,
        currency: 'usd',
        source: 'tok_visa',
      });
      const err = await rejection(agent.refunds.create({ charge: ch.id, amount }));
      if (err?.code !== 'approval_required') throw new Error(`expected a hold, got ${String(err?.message)}`);
      return { actionId: err.raw.airlock_action as string, chargeId: ch.id };
    },
    refundsFor(chargeId) {
      return sandbox.list('refund').filter((r) => r['charge'] === chargeId);
    },
    async close() {
      await airlock.close();
      await sandbox.close();
    },
  };
}

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A real Chromium (see findChromium for which one), driven by playwright-core. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: findChromium(), args: CHROMIUM_FLAGS });
}

export async function logIn(page: Page, baseUrl: string, email: string, password = PASSWORD): Promise<void> {
  await page.goto(`${baseUrl}/review/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(/\/review(\?|$)/), page.click('button[type=submit]')]);
}

/** A cookie-keeping HTTP client for form posts, for tests that need no browser. */
export class FormClient {
  cookies = new Map<string, string>();
  constructor(readonly baseUrl: string) {}

  async request(
    path: string,
    init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {},
  ) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      redirect: 'manual',
      headers: {
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...init.headers,
      },
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (/Max-Age=0/.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: res.status, location: res.headers.get('location'), text: await res.text() };
  }

  async logIn(email: string, password = PASSWORD): Promise<number> {
    const form = await this.request('/review/login');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.text)?.[1] ?? '';
    const res = await this.request('/review/login', { form: { _csrf: csrf, email, password, next: '' } });
    return res.status;
  }

  /** The session's CSRF token, read from a page as a browser would. */
  async csrf(): Promise<string> {
    const page = await this.request('/review');
    const token = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1];
    if (!token) throw new Error(`no CSRF token on the queue page (status ${page.status})`);
    return token;
  }
}
