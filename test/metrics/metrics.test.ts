import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withDirectSql } from '../helpers/direct-sql.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { charge, rejection, type Stack, startStack, startStackWithPolicy } from '../helpers/stack.ts';

/** The value of one sample in a Prometheus text exposition, or undefined when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    const want = Object.entries(labels);
    if (want.length === Object.keys(got).length && want.every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function scrape(url: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

async function until(fn: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('metrics after a known workload', () => {
  let stack: Stack;
  let hooks: Receiver;
  let text = '';

  beforeAll(async () => {
    hooks = await startReceiver();
    hooks.respond = (_r, n) => (n === 1 ? { status: 500 } : { status: 200 });
    stack = await startStackWithPolicy(
      [
        'default: review',
        'rules:',
        `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
        `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
        `  - "Block if :kind: = 'payout.create'"`,
      ],
      {
        AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
        AIRLOCK_CALLBACK_BACKOFF_MS: '20',
        AIRLOCK_CALLBACK_POLL_MS: '20',
      },
    );
    const agent = stack.agent;

    // Two allowed refunds (Stripe answers one 200 and one 402), three held, one blocked payout.
    const small = await charge(stack, 5000);
    await agent.refunds.create({ charge: small.id, amount: 2000 });
    stack.sandbox.setFaults({ failNext: 1, failStatus: 402, pathPrefix: '/v1/refunds' });
    await rejection(agent.refunds.create({ charge: small.id, amount: 1000 }));
    stack.sandbox.setFaults({});
    const approved = await rejection(
      agent.refunds.create({ charge: (await charge(stack, 90000)).id, amount: 60000 }),
    );
    const rejected = await rejection(
      agent.refunds.create({ charge: (await charge(stack, 90000)).id, amount: 70000 }),
    );
    await rejection(agent.refunds.create({ charge: (await charge(stack, 90000, 'eur')).id, amount: 80000 }));
    await rejection(agent.payouts.create({ amount: 1000, currency: 'usd' }));
    const approve = await stack.api(`/api/actions/${approved.raw.airlock_action}/approve`, {
      method: 'POST',
      body: {},
    });
    expect(approve.status).toBe(200);
    const reject = await stack.api(`/api/actions/${rejected.raw.airlock_action}/reject`, {
      method: 'POST',
      body: {},
    });
    expect(reject.status).toBe(200);
    await stack.airlock.engine.waitFor(approved.raw.airlock_action, (s) => s === 'completed', 5000);
    // A decide-only request whose callback fails once, then is delivered.
    const decided = await stack.api('/api/decisions', {
      method: 'POST',
      token: stack.agentKey,
      body: {
        intent: { kind: 'refund.create', amount: 100, currency: 'usd' },
        callback_url: `${hooks.url}/hook`,
      },
    });
    expect(decided.body.outcome).toBe('allow');
    await until(async () => hooks.received.length >= 2);
    await until(async () => {
      text = (await scrape(stack.airlock.metricsUrl!)).text;
      return sample(text, 'airlock_callback_deliveries_total', { result: 'delivered' }) === 1;
    });
  });

  afterAll(async () => {
    await stack?.close();
    await hooks?.close();
  });

  it('serves the Prometheus text format at /metrics on the main port by default', async () => {
    expect(stack.airlock.metricsUrl).toBe(`${stack.airlock.url}/metrics`);
    const res = await scrape(stack.airlock.metricsUrl!);
    expect(res.status).toBe(200);
    expect(res.type).toContain('text/plain');
    expect(res.text).toContain('# TYPE airlock_decisions_total counter');
    expect(res.text).toContain('# TYPE airlock_review_wait_seconds histogram');
    expect(sample(res.text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });

  it('counts decisions by outcome and kind', () => {
    expect(sample(text, 'airlock_decisions_total', { outcome: 'allow', kind: 'refund.create' })).toBe(3);
    expect(sample(text, 'airlock_decisions_total', { outcome: 'review', kind: 'refund.create' })).toBe(3);
    expect(sample(text, 'airlock_decisions_total', { outcome: 'block', kind: 'payout.create' })).toBe(1);
    expect(
      sample(text, 'airlock_decisions_total', { outcome: 'review', kind: 'payout.create' }),
    ).toBeUndefined();
  });

  it('reports live actions by status and held money by currency from the store', () => {
    expect(sample(text, 'airlock_actions', { status: 'awaiting_approval' })).toBe(1);
    expect(sample(text, 'airlock_actions', { status: 'pending' })).toBe(0);
    expect(sample(text, 'airlock_actions', { status: 'received' })).toBe(0);
    expect(sample(text, 'airlock_actions', { status: 'completed' })).toBeUndefined();
    expect(sample(text, 'airlock_held_amount', { currency: 'eur' })).toBe(80000);
    expect(sample(text, 'airlock_held_amount', { currency: 'usd' })).toBeUndefined();
  });

  it('counts actions reaching a final status', () => {
    expect(sample(text, 'airlock_actions_settled_total', { status: 'completed' })).toBe(2);
    expect(sample(text, 'airlock_actions_settled_total', { status: 'failed' })).toBe(1);
    expect(sample(text, 'airlock_actions_settled_total', { status: 'rejected' })).toBe(1);
    expect(sample(text, 'airlock_actions_settled_total', { status: 'blocked' })).toBe(1);
    expect(sample(text, 'airlock_actions_settled_total', { status: 'approved' })).toBe(1);
    expect(sample(text, 'airlock_actions_settled_total', { status: 'expired' })).toBeUndefined();
  });

  it('reads held money from the store, so a restarted instance reports holds it did not see', async () => {
    // A hold recorded by another instance (or before a restart) shows without any event reaching this one.
    await withDirectSql(join(stack.dir, 'airlock.db'), (db) =>
      db.run("update actions set currency = 'gbp' where status = 'awaiting_approval'"),
    );
    const now = (await scrape(stack.airlock.metricsUrl!)).text;
    expect(sample(now, 'airlock_held_amount', { currency: 'gbp' })).toBe(80000);
    expect(sample(now, 'airlock_held_amount', { currency: 'eur' })).toBeUndefined();
  });

  it('observes the time held actions waited for review, by how the hold ended', () => {
    expect(sample(text, 'airlock_review_wait_seconds_count', { outcome: 'approved' })).toBe(1);
    expect(sample(text, 'airlock_review_wait_seconds_count', { outcome: 'rejected' })).toBe(1);
    const waited = sample(text, 'airlock_review_wait_seconds_sum', { outcome: 'approved' })!;
    expect(waited).toBeGreaterThanOrEqual(0);
    expect(waited).toBeLessThan(30);
    expect(sample(text, 'airlock_review_wait_seconds_bucket', { outcome: 'approved', le: '+Inf' })).toBe(1);
  });

  it('counts upstream status codes, dispatch latency and errors', () => {
    expect(sample(text, 'airlock_upstream_responses_total', { mode: 'stripe', code: '200' })).toBe(2);
    expect(sample(text, 'airlock_upstream_responses_total', { mode: 'stripe', code: '402' })).toBe(1);
    expect(sample(text, 'airlock_dispatch_duration_seconds_count', { mode: 'stripe', result: 'ok' })).toBe(2);
    expect(
      sample(text, 'airlock_dispatch_duration_seconds_count', { mode: 'stripe', result: 'http_error' }),
    ).toBe(1);
    expect(sample(text, 'airlock_dispatch_errors_total', { mode: 'stripe', reason: 'http_error' })).toBe(1);
    expect(
      sample(text, 'airlock_dispatch_errors_total', { mode: 'stripe', reason: 'network' }),
    ).toBeUndefined();
  });

  it('counts callback deliveries by result', () => {
    expect(sample(text, 'airlock_callback_deliveries_total', { result: 'failed' })).toBe(1);
    expect(sample(text, 'airlock_callback_deliveries_total', { result: 'delivered' })).toBe(1);
  });

  it('measures the store round trip at scrape', () => {
    const seconds = sample(text, 'airlock_store_ping_seconds')!;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(1);
  });
});

describe('metrics placement', () => {
  it('serves metrics only on the private port when AIRLOCK_METRICS_PORT is set', async () => {
    const stack = await startStack({ AIRLOCK_METRICS_PORT: '0', AIRLOCK_METRICS_PATH: '/internal/metrics' });
    try {
      const url = stack.airlock.metricsUrl!;
      expect(url).not.toContain(`:${stack.airlock.port}/`);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/internal\/metrics$/);
      const priv = await scrape(url);
      expect(priv.status).toBe(200);
      expect(priv.text).toContain('airlock_actions{status="awaiting_approval"} 0');
      expect((await scrape(`${stack.airlock.url}/metrics`)).status).toBe(404);
      expect((await scrape(`${stack.airlock.url}/internal/metrics`)).status).toBe(404);
    } finally {
      await stack.close();
    }
  });

  it('serves no metrics when disabled', async () => {
    const stack = await startStack({ AIRLOCK_METRICS_ENABLED: 'false' });
    try {
      expect(stack.airlock.metricsUrl).toBeNull();
      expect((await scrape(`${stack.airlock.url}/metrics`)).status).toBe(404);
    } finally {
      await stack.close();
    }
  });
});
