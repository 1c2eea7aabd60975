// Policies that know money, end to end: the official stripe client → Airlock (real server, SQLite file) → sandbox.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { cli, ROOT } from '../helpers/process.ts';
import { rng } from '../helpers/random.ts';
import { rejection, type Stack, startStack, stripeAt, tempDir } from '../helpers/stack.ts';
import { actions } from '../helpers/store-reads.ts';

const MONEY_POLICY = join(ROOT, 'src/policy/examples/money.yaml');

// A clock the tests move; 2024-03-12 is a Tuesday, and New York is on EDT (UTC-4).
let now = new Date('2024-03-12T15:00:00Z');
const clock = { now: () => new Date(now.getTime()) };
const at = (iso: string) => {
  now = new Date(iso);
};

let stack: Stack;
let financeA: string;
let financeB: string;
let treasury: Stripe;

beforeAll(async () => {
  stack = await startStack({ AIRLOCK_POLICY: MONEY_POLICY }, clock);
  financeA = (await createReviewer(stack.airlock.store, 'a@finance.example', { groups: ['finance'] })).token;
  financeB = (await createReviewer(stack.airlock.store, 'b@finance.example', { groups: ['finance'] })).token;
  treasury = stripeAt((await createAgentKey(stack.airlock.store, 'treasury-bot')).key, stack.airlock.port);
});
afterAll(async () => {
  await stack?.close();
});

async function chargeFor(amount: number, customer?: string): Promise<Stripe.Charge> {
  return stack.direct.charges.create({
    amount,
    currency: 'usd',
    source: 'tok_visa',
    ...(customer ? { customer } : {}),
  });
}

async function newestAction(): Promise<any> {
  const list = await stack.api('/api/actions?limit=1');
  return list.body.data[0];
}

describe('velocity', () => {
  it('holds the $450 refund that takes an agent past $2,000 in an hour, and every one after it while the window holds', async () => {
    at('2024-03-12T15:00:00Z');
    const outcomes: string[] = [];
    const heldIds: string[] = [];
    for (let i = 0; i < 7; i++) {
      const customer = await stack.direct.customers.create({ email: `c${i}@example.com` });
      const ch = await chargeFor(45_000, customer.id);
      now = new Date(now.getTime() + 60_000); // one a minute
      try {
        const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 45_000 });
        expect(refund.amount).toBe(45_000);
        outcomes.push('allowed');
      } catch (err) {
        const e = err as InstanceType<typeof Stripe.errors.StripePermissionError>;
        expect(e.code).toBe('approval_required');
        heldIds.push((e.raw as { airlock_action: string }).airlock_action);
        outcomes.push('held');
      }
    }
    // $450 × 4 = $1,800; the fifth would make $2,250.
    expect(outcomes).toEqual(['allowed', 'allowed', 'allowed', 'allowed', 'held', 'held', 'held']);
    const held = (await stack.api(`/api/actions/${heldIds[0]}`)).body;
    expect(held.decision.rules).toContain(
      "Review if :kind: = 'refund.create' and :agent_refunds_usd_1h: + :amount_in_usd: > 2000",
    );
    expect(held.decision.risk_factors).toContainEqual({ name: 'velocity:agent_usd_1h>=2000', points: 15 });

    // Half an hour on, the window still holds all of them.
    now = new Date(now.getTime() + 30 * 60_000);
    const ch = await chargeFor(45_000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 45_000 }));
    expect(err.code).toBe('approval_required');

    // Once the hour has rolled past them, a $450 refund goes through again.
    now = new Date(now.getTime() + 40 * 60_000);
    const later = await chargeFor(45_000);
    const refund = await stack.agent.refunds.create({ charge: later.id, amount: 45_000 });
    expect(refund.status).toBe('succeeded');
  });

  it('does not count rejected refunds towards the window', async () => {
    at('2024-03-13T15:00:00Z');
    // Three $600 refunds are held (over $500); rejecting them frees the window again.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const ch = await chargeFor(60_000);
      const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60_000 }));
      ids.push(err.raw.airlock_action);
    }
    const ch = await chargeFor(45_000);
    expect((await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 45_000 }))).code).toBe(
      'approval_required',
    );
    for (const id of ids) {
      const res = await stack.api(`/api/actions/${id}/reject`, { method: 'POST', body: { note: 'no' } });
      expect(res.body.status).toBe('rejected');
    }
    const again = await chargeFor(45_000);
    expect((await stack.agent.refunds.create({ charge: again.id, amount: 45_000 })).amount).toBe(45_000);
  });
});

describe('time of day and two-person approval', () => {
  it('blocks a $15,000 payout at 02:00 New York time', async () => {
    at('2024-03-14T06:00:00Z'); // 02:00 EDT, a Thursday
    const err = await rejection(treasury.payouts.create({ amount: 1_500_000, currency: 'usd' }));
    expect(err).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(err.code).toBe('action_blocked');
    const action = (await stack.api(`/api/actions/${err.raw.airlock_action}`)).body;
    expect(action.status).toBe('blocked');
    expect(action.decision.rules).toContain("Block if :kind: = 'payout.create' and not :business_hours:");
    // Radar's "highest" level starts at 75.
    expect(action.decision.risk_score).toBe(75);
    expect(action.decision.rules).toContain("Review if :risk_level: = 'highest'");
    expect(action.decision.risk_factors.map((f: { name: string }) => f.name)).toEqual([
      'kind:payout.create',
      'amount_usd>=10000',
      'outside_business_hours',
    ]);
    expect(stack.sandbox.list('payout')).toHaveLength(0);
  });

  it('holds the same payout at 11:00 until two finance reviewers approve it', async () => {
    at('2024-03-14T15:00:00Z'); // 11:00 EDT
    const err = await rejection(treasury.payouts.create({ amount: 1_500_000, currency: 'usd' }));
    expect(err.code).toBe('approval_required');
    const id: string = err.raw.airlock_action;
    const held = (await stack.api(`/api/actions/${id}`)).body;
    expect(held.approvals_required).toBe(2);
    expect(held.decision.risk_score).toBe(60);
    expect(held.decision.reviewers).toEqual(['group:finance']);

    // A reviewer outside finance may not decide it.
    const outsider = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    expect(outsider.status).toBe(403);
    const first = await stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      body: {},
      token: financeA,
    });
    expect(first.body.status).toBe('awaiting_approval');
    expect(stack.sandbox.list('payout')).toHaveLength(0);
    const second = await stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      body: {},
      token: financeB,
    });
    expect(['pending', 'completed']).toContain(second.body.status);
    const done = await stack.airlock.engine.waitFor(id, (s) => s === 'completed', 5000);
    expect(done.status).toBe('completed');
    const payouts = stack.sandbox.list('payout');
    expect(payouts).toHaveLength(1);
    expect(payouts[0]!['amount']).toBe(1_500_000);
  });
});

describe('upstream look-ups', () => {
  it('classifies a full refund (no amount) of a $900 charge by its real amount and holds it', async () => {
    at('2024-03-15T15:00:00Z');
    const ch = await chargeFor(90_000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id }));
    expect(err.code).toBe('approval_required');
    const action = (await stack.api(`/api/actions/${err.raw.airlock_action}`)).body;
    expect([action.amount, action.currency, action.amount_usd]).toEqual([90_000, 'usd', 900]);
    expect(action.decision.rules).toEqual([
      "Review if :kind: = 'refund.create' and :amount_in_usd: > 500 and not :customer: IN @trusted_customers",
    ]);
    expect(action.decision.risk_factors).toContainEqual({ name: 'full_refund', points: 5 });
  });

  it('holds a refund whose charge cannot be looked up, and raises its risk score', async () => {
    at('2024-03-15T16:00:00Z');
    const ch = await chargeFor(1_000);
    stack.sandbox.setFaults({ down: true, pathPrefix: '/v1/charges/' });
    try {
      const err = await rejection(stack.agent.refunds.create({ charge: ch.id }));
      expect(err.code).toBe('approval_required');
      const action = (await stack.api(`/api/actions/${err.raw.airlock_action}`)).body;
      expect(action.amount).toBeNull();
      expect(action.decision.rules).toEqual([]);
      expect(action.decision.risk_factors).toContainEqual({ name: 'lookup_failed:charge', points: 20 });
      expect(action.decision.risk_factors).toContainEqual({ name: 'amount_unknown', points: 15 });
    } finally {
      stack.sandbox.clearFaults();
    }
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
  });
});

describe('shadow mode', () => {
  it('lets a subscription cancellation through under a shadow rule and records that it would have been held', async () => {
    at('2024-03-15T17:00:00Z');
    const customer = await stack.direct.customers.create({ email: 'sub@example.com' });
    const sub = await stack.direct.subscriptions.create({
      customer: customer.id,
      items: [
        {
          price_data: {
            product: 'prod_plan',
            unit_amount: 1000,
            currency: 'usd',
            recurring: { interval: 'month' },
          },
        },
      ],
    });
    const canceled = await stack.agent.subscriptions.cancel(sub.id);
    expect(canceled.status).toBe('canceled');
    const action = await newestAction();
    expect(action.kind).toBe('subscription.cancel');
    expect(action.status).toBe('completed');
    expect(action.shadow).toBe(true);
    expect(action.decision.outcome).toBe('allow');
    expect(action.decision.shadow_outcome).toBe('review');
    expect(action.decision.rules).toEqual(["Review if :kind: IN ('subscription.cancel', 'customer.delete')"]);
  });
});

describe('policy versions and hot reload', () => {
  it('stores the running version with its text, swaps in a valid edit, and keeps running on a broken one', async () => {
    const dir = tempDir();
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'default: review\nrules:\n  - "Allow if :read:"\n');
    const own = await startStack({ AIRLOCK_POLICY: file });
    try {
      const first = own.airlock.engine.policy.version;
      writeFileSync(file, 'default: block\nrules:\n  - "Allow if :read:"\n');
      await until(() => own.airlock.engine.policy.version !== first);
      const second = own.airlock.engine.policy.version;
      expect(own.airlock.engine.policy.default).toBe('block');

      writeFileSync(file, 'default: allow\nrules:\n  - "Allow if :amout: > 5"\n');
      await new Promise((r) => setTimeout(r, 500));
      expect(own.airlock.engine.policy.version).toBe(second);

      const versions = await cli(['policy', 'versions', '--json'], {
        AIRLOCK_DATA: join(own.dir, 'airlock.db'),
      });
      const rows = JSON.parse(versions.stdout).data as { version: string; text: string }[];
      expect(rows.map((r) => r.version).sort()).toEqual([first, second].sort());
      expect(rows.find((r) => r.version === second)!.text).toContain('default: block');
    } finally {
      await own.close();
    }
  });
});

describe('airlock policy test, check and simulate', () => {
  it('passes the starter policy and the money example with their shipped tests', async () => {
    const starter = await cli(['policy', 'test'], {});
    expect(starter.stdout).toMatch(/PASS: 10\/10/);
    expect(starter.code).toBe(0);
    const money = await cli(['policy', 'test', MONEY_POLICY], {});
    expect(money.code).toBe(0);
    expect(money.stdout).toMatch(/PASS: 9\/9/);
  });

  it('exits 1 with a readable diff when a case does not hold', async () => {
    const dir = tempDir();
    const policy = join(dir, 'p.yaml');
    writeFileSync(
      policy,
      'default: review\nrules:\n  - "Allow if :kind: = \'refund.create\' and :amount_in_usd: <= 1000"\n',
    );
    writeFileSync(
      join(dir, 'p.test.yaml'),
      [
        'cases:',
        '  - name: holds a $600 refund',
        '    request: { method: POST, path: /v1/refunds, params: { charge: ch_1, amount: 60000 } }',
        '    context: { currency: usd }',
        '    expect: { outcome: review, rules: [] }',
        '',
      ].join('\n'),
    );
    const r = await cli(['policy', 'test', policy], {});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`FAIL holds a $600 refund (${join(dir, 'p.test.yaml')}:2)`);
    expect(r.stdout).toContain('outcome: expected review, got allow');
    expect(r.stdout).toContain(
      "rules: rule_1 matched, not expected: Allow if :kind: = 'refund.create' and :amount_in_usd: <= 1000",
    );
    expect(r.stdout).toMatch(/FAIL: 0\/1/);
  });

  it('check names the file, line and column of a problem', async () => {
    const dir = tempDir();
    const policy = join(dir, 'bad.yaml');
    writeFileSync(policy, 'rules:\n  - "Review if :amount: > \'abc\'"\n');
    const r = await cli(['policy', 'check', policy], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${policy}:2:`);
    expect(r.stderr).toMatch(/'abc'/);
    const ok = await cli(['policy', 'check', MONEY_POLICY], {});
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/OK .*money\.yaml: pol_[0-9a-f]{16}, 12 rule\(s\)/);
  });

  it('simulate re-decides the stored actions under a stricter policy and counts what moves', async () => {
    const stricter = join(tempDir(), 'stricter.yaml');
    writeFileSync(
      stricter,
      readFileSync(MONEY_POLICY, 'utf8').replace(
        `rule: "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
        `rule: "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 100"`,
      ),
    );
    const stored = await actions(stack.airlock.store, (a) => a.read === 0);
    // Independently: every allowed refund over $100 moves from allow to review.
    const moving = stored.filter(
      (a) =>
        a.kind === 'refund.create' && JSON.parse(a.decision).outcome === 'allow' && (a.amount_usd ?? 0) > 100,
    );
    expect(moving.length).toBeGreaterThanOrEqual(6);
    const r = await cli(['policy', 'simulate', '--policy', stricter, '--since', '3650d', '--json'], {
      AIRLOCK_DATA: join(stack.dir, 'airlock.db'),
    });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.actions).toBe(stored.length);
    const move = report.moves.find(
      (m: { from: string; to: string }) => m.from === 'allow' && m.to === 'review',
    );
    expect(move.count).toBe(moving.length);
    expect(move.usd).toBeCloseTo(
      moving.reduce((s, a) => s + (a.amount_usd ?? 0), 0),
      2,
    );
    expect(report.changed).toBe(moving.length);
    const human = await cli(['policy', 'simulate', '--policy', stricter, '--since', '3650d'], {
      AIRLOCK_DATA: join(stack.dir, 'airlock.db'),
    });
    expect(human.stdout).toContain(`allow -> review: ${moving.length}`);
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('airlock replay', () => {
  const nyParts = new Intl.DateTimeFormat('en-US', {
    timeZone: 'America/New_York',
    weekday: 'short',
    hour: 'numeric',
    hourCycle: 'h23',
  });
  function inBusinessHours(sec: number): boolean {
    const parts = nyParts.formatToParts(new Date(sec * 1000));
    const day = parts.find((p) => p.type === 'weekday')!.value;
    const hour = Number(parts.find((p) => p.type === 'hour')!.value);
    return !['Sat', 'Sun'].includes(day) && hour >= 9 && hour < 18;
  }

  it('decides 90 days of seeded history in time order and reports totals that match an independent count', async () => {
    const { startSandbox } = await import('../../src/stripe/sandbox/index.ts');
    const sandbox = await startSandbox();
    const direct = stripeAt('sk_test_seed', sandbox.port);
    const rand = rng(42);
    const start = Math.floor(Date.now() / 1000) - 89 * 86_400;
    type Expected = { kind: string; at: number; usd: number; outcome: 'allow' | 'review' | 'block' };
    const seeded: Omit<Expected, 'outcome'>[] = [];
    try {
      const refund = async (at: number, cents: number) => {
        const ch = await direct.charges.create({ amount: cents, currency: 'usd', source: 'tok_visa' });
        const re = await direct.refunds.create({ charge: ch.id, amount: cents });
        sandbox.backdate(ch.id, { created: at - 3600 });
        sandbox.backdate(re.id, { created: at });
        seeded.push({ kind: 'refund.create', at, usd: cents / 100 });
      };
      for (let d = 0; d < 89; d++) {
        const day = start + d * 86_400;
        for (let i = 0; i < 2; i++)
          await refund(day + Math.floor(rand() * 72_000), 2_000 + Math.floor(rand() * 38_000));
        if (d % 10 === 4)
          await refund(day + 40_000 + Math.floor(rand() * 3_000), 60_000 + Math.floor(rand() * 90_000));
        if (d === 30) for (let i = 0; i < 6; i++) await refund(day + 50_000 + i * 60, 45_000); // the velocity burst
        if (d % 3 === 0) {
          const at = day + Math.floor(rand() * 86_000);
          const cents = 100_000 + Math.floor(rand() * 1_900_000);
          const po = await direct.payouts.create({ amount: cents, currency: 'usd' });
          sandbox.backdate(po.id, { created: at });
          seeded.push({ kind: 'payout.create', at, usd: cents / 100 });
        }
        if (d % 5 === 1) {
          const at = day + Math.floor(rand() * 86_000);
          const tr = await direct.transfers.create({
            amount: 50_000,
            currency: 'usd',
            destination: 'acct_partner',
          });
          sandbox.backdate(tr.id, { created: at });
          seeded.push({ kind: 'transfer.create', at, usd: 500 });
        }
        if (d % 18 === 2) {
          const at = day + 30_000 + Math.floor(rand() * 10_000);
          const customer = await direct.customers.create({ email: `s${d}@example.com` });
          const sub = await direct.subscriptions.create({
            customer: customer.id,
            items: [
              {
                price_data: {
                  product: 'prod_plan',
                  unit_amount: 1000,
                  currency: 'usd',
                  recurring: { interval: 'month' },
                },
              },
            ],
          });
          await direct.subscriptions.cancel(sub.id);
          sandbox.backdate(sub.id, { created: at - 30 * 86_400, canceled_at: at });
          seeded.push({ kind: 'subscription.cancel', at, usd: 0 });
        }
        if (d % 30 === 10) {
          const ch = await direct.charges.create({
            amount: 5_000,
            currency: 'usd',
            source: 'tok_createDispute',
          });
          const dispute = sandbox.list('dispute').find((x) => x['charge'] === ch.id)!;
          sandbox.backdate(dispute['id'] as string, { created: day + 1000 });
        }
      }
      // An event a year old, outside the window: never replayed.
      const old = await direct.payouts.create({ amount: 99_999_00, currency: 'usd' });
      sandbox.backdate(old.id, { created: start - 300 * 86_400 });

      // The independent count: money.yaml's rules re-stated for this history, in time order.
      seeded.sort((a, b) => a.at - b.at);
      const expected: Expected[] = [];
      for (const e of seeded) {
        let outcome: Expected['outcome'] = 'allow';
        if (e.kind === 'refund.create') {
          const lastHour = expected
            .filter((x) => x.kind === 'refund.create' && x.at >= e.at - 3600 && x.outcome !== 'block')
            .reduce((s, x) => s + x.usd, 0);
          outcome = e.usd > 500 || lastHour + e.usd > 2000 ? 'review' : 'allow';
        } else if (e.kind === 'payout.create') {
          outcome = inBusinessHours(e.at) ? 'review' : 'block';
        } else if (e.kind === 'transfer.create') {
          outcome = 'review';
        }
        expected.push({ ...e, outcome });
      }
      const totals = (o: Expected['outcome']) => {
        const xs = expected.filter((x) => x.outcome === o);
        return { count: xs.length, usd: Math.round(xs.reduce((s, x) => s + x.usd, 0) * 100) / 100 };
      };
      // The burst's fifth and sixth $450 refunds are held by velocity alone.
      expect(
        expected.filter((x) => x.kind === 'refund.create' && x.usd === 450 && x.outcome === 'review').length,
      ).toBeGreaterThanOrEqual(2);
      expect(totals('block').count).toBeGreaterThan(0);

      const outDir = join(tempDir(), 'report');
      const r = await cli(['replay', '--days', '90', '--out', outDir, '--json'], {
        STRIPE_API_BASE: sandbox.url,
        AIRLOCK_POLICY: MONEY_POLICY,
        AIRLOCK_DATA: join(tempDir(), 'unused.db'),
      });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report.events).toBe(expected.length);
      expect(report.totals.allow).toEqual(totals('allow'));
      expect(report.totals.review).toEqual(totals('review'));
      expect(report.totals.block).toEqual(totals('block'));
      expect(report.disputes).toBe(3);
      expect(report.per_day.length).toBeGreaterThanOrEqual(90);
      const perDayHeld = report.per_day.reduce(
        (s: number, d: { review: { count: number } }) => s + d.review.count,
        0,
      );
      expect(perDayHeld).toBe(totals('review').count);

      // Read-only: only GETs reached the upstream during the replay.
      const writesBefore = sandbox.requests().filter((q) => q.method !== 'GET').length;
      expect(
        sandbox.requests().filter((q) => q.path === '/v1/refunds' && q.method === 'GET').length,
      ).toBeGreaterThan(1); // paginated
      expect(writesBefore).toBe(sandbox.requests().filter((q) => q.method !== 'GET').length);

      const svg = readFileSync(join(outDir, 'chart.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain(
        `blocked ${new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(totals('block').usd)}`,
      );
      expect(readFileSync(join(outDir, 'report.md'), 'utf8')).toContain(
        '![USD held and blocked per day](chart.svg)',
      );
      expect(r.stderr).toMatch(/Deciding \[#{30}\] 100% \d+\/\d+/);

      const human = await cli(['replay', '--days', '90', '--out', outDir], {
        STRIPE_API_BASE: sandbox.url,
        AIRLOCK_POLICY: MONEY_POLICY,
        AIRLOCK_DATA: join(tempDir(), 'unused.db'),
      });
      expect(human.stdout).toContain(`Replayed ${expected.length} actions over`);
      expect(human.stdout).toMatch(new RegExp(`held\\s+${totals('review').count}\\s`));
    } finally {
      await sandbox.close();
    }
  }, 120_000);
});
