// Issue 18, bypass detection, end to end with the built-in sandbox sending its own signed events to Airlock's
// webhook route (nothing here is built or signed by the test): a refund made on the sandbox with a raw key (the
// official client pointed at the sandbox, not at Airlock) is a `stripe.outside` ledger event, an email to the
// reviewers through a real SMTP server, a Slack post and a count in airlock_outside_events_total, and it counts
// toward the next decision's velocity; a refund made through Airlock raises none of them; a kind the policy expects
// is recorded and not alerted. Forged, stale and replayed deliveries: test/integrity/stripe-webhooks.test.ts.
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { about, receivedFromSandbox, sandboxEvents } from '../helpers/sandbox-events.ts';
import { type SlackStandIn, startSlackStandIn } from '../helpers/slack.ts';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { charge, rejection, type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';
import { actions, ledger } from '../helpers/store-reads.ts';

const POLICY = [
  'default: review',
  'rules:',
  `  - "Allow if :read:"`,
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :account_refunds_usd_24h: + :amount_in_usd: > 5000"`,
  'outside_airlock:',
  '  expected:',
  '    - { type: payout.created, source: automation }',
];

let smtp: Mailbox;
let slack: SlackStandIn;
let stack: Stack;
beforeAll(async () => {
  smtp = await startMailbox();
  slack = await startSlackStandIn();
  // No STRIPE_WEBHOOK_SECRET: Airlock generates one and registers its route on the sandbox it starts.
  stack = await startStackWithPolicy(
    POLICY,
    {
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(smtp.port),
      SMTP_FROM: 'Airlock <airlock@example.com>',
      SLACK_BOT_TOKEN: 'xoxb-test-token',
      SLACK_SIGNING_SECRET: 'slack-signing-secret-for-tests',
      AIRLOCK_SLACK_CHANNEL: 'C0FINANCE',
      AIRLOCK_SLACK_API_URL: slack.apiUrl,
    },
    { builtInSandbox: true },
  );
});
afterAll(async () => {
  await stack?.close();
  await smtp?.close();
  await slack?.close();
});

/** Slack app posts that mention `text`. */
const slackPosts = (text: string) =>
  slack.callsTo('chat.postMessage').filter((c) => JSON.stringify(c.args).includes(text));

async function outsideMetric(type: string, source: string): Promise<number> {
  const text = await (await fetch(stack.airlock.metricsUrl!)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`airlock_outside_events_total{type="${type}",source="${source}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function outsideLedger(eventId: string) {
  return (await ledger(stack.airlock.store)).filter(
    (e) => e.type === 'stripe.outside' && JSON.parse(e.data).event === eventId,
  );
}

/** Every stripe.outside ledger event, and the object each names. */
async function allOutside() {
  return (await ledger(stack.airlock.store)).filter((e) => e.type === 'stripe.outside');
}

describe('money moved outside Airlock, as the sandbox reports it', () => {
  it('alerts a refund made on the sandbox with a raw key: ledger, email with amount and link, Slack, metric', async () => {
    const before = await outsideMetric('refund.created', 'outside');
    const ch = await charge(stack, 90_000);
    // Straight to the sandbox with a raw key: Airlock never sees the request.
    const refund: Stripe.Refund = await stack.direct.refunds.create({ charge: ch.id, amount: 31_415 });
    const { event, row } = await receivedFromSandbox(stack, 'refund.created', about(refund.id));
    expect(row).toMatchObject({ origin: 'outside', via: 'webhook', request_id: event.request.id });

    const recorded = await outsideLedger(event.id);
    expect(recorded).toHaveLength(1);
    expect(JSON.parse(recorded[0]!.data)).toMatchObject({
      type: 'refund.created',
      object: refund.id,
      amount: 31_415,
      currency: 'usd',
      source: 'outside',
      via: 'webhook',
    });
    expect((await verifyLedger(stack.airlock.store)).problems).toEqual([]);
    expect(await outsideMetric('refund.created', 'outside')).toBe(before + 1);

    const mail = await until(() =>
      smtp.inbox.find((m) => m.subject?.includes(refund.id) || m.text?.includes(refund.id)),
    );
    expect(mail.to && 'text' in mail.to ? mail.to.text : '').toContain('finance@example.com');
    expect(mail.subject).toContain('Outside Airlock');
    expect(mail.text).toContain('$314.15');
    expect(mail.text).toContain(`https://dashboard.stripe.com/test/refunds/${refund.id}`);
    expect(mail.text).toContain(`${stack.airlock.url}/review/outside`);
    expect(mail.text).toContain('outside Airlock (a raw key, the Dashboard or a script)');
    const post = await until(() => slackPosts(refund.id)[0]);
    expect(post.args['channel']).toBe('C0FINANCE');
    expect(JSON.stringify(post.args)).toContain('$314.15');

    // The sandbox reports the same refund on the charge too (charge.refunded): stored, not a second movement.
    const onCharge = await receivedFromSandbox(stack, 'charge.refunded', about(ch.id));
    expect(onCharge.row.origin).toBe('none');
    expect((await allOutside()).filter((e) => JSON.parse(e.data).object === refund.id)).toHaveLength(1);
    expect(await outsideMetric('refund.created', 'outside')).toBe(before + 1);
    expect(smtp.inbox.filter((m) => m.text?.includes(refund.id))).toHaveLength(1);
  });

  it('raises nothing for a refund made through Airlock', async () => {
    const metricBefore = await outsideMetric('refund.created', 'outside');
    const outsideBefore = (await allOutside()).length;
    const ch = await charge(stack, 20_000);
    const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 5_000 });
    const [action] = await actions(
      stack.airlock.store,
      (a) => a.kind === 'refund.create' && (a.response_body?.includes(refund.id) ?? false),
    );
    expect(action?.status).toBe('completed');
    // Every event the sandbox made for it, stored from its deliveries before anything is asserted.
    const created = await receivedFromSandbox(stack, 'refund.created', about(refund.id));
    expect(created.event.request.idempotency_key).toBe(`airlock-${action!.id}`);
    expect(created.row).toMatchObject({ origin: 'airlock', action_id: action!.id, via: 'webhook' });
    const onCharge = await receivedFromSandbox(stack, 'charge.refunded', about(ch.id));
    for (const id of [created.event.id, onCharge.event.id]) {
      expect(await outsideLedger(id)).toEqual([]);
      expect(await stack.airlock.store.stripeEvents.alertsFor(id)).toEqual([]);
    }
    expect((await allOutside()).length).toBe(outsideBefore);
    expect(await outsideMetric('refund.created', 'outside')).toBe(metricBefore);
    expect(smtp.inbox.filter((m) => m.text?.includes(refund.id))).toEqual([]);
    expect(slackPosts(refund.id)).toEqual([]);
  });

  it('records an automatic payout the policy expects without alerting', async () => {
    const before = await outsideMetric('payout.created', 'automation');
    const payout = stack.sandbox.automaticPayout({ amount: 250_000 });
    const { event, row } = await receivedFromSandbox(stack, 'payout.created', about(payout['id'] as string));
    expect(event.request).toEqual({ id: null, idempotency_key: null });
    expect(row.origin).toBe('automation');
    const recorded = await outsideLedger(event.id);
    expect(recorded).toHaveLength(1);
    expect(JSON.parse(recorded[0]!.data)).toMatchObject({ source: 'automation', expected: true });
    expect(await outsideMetric('payout.created', 'automation')).toBe(before + 1);
    expect(await stack.airlock.store.stripeEvents.alertsFor(event.id)).toEqual([]);
  });

  it('counts a raw-key refund toward the next decision: a refund it would have allowed is held', async () => {
    const ch = await charge(stack, 900_000);
    // Well inside every rule: allowed and made.
    const first = await stack.agent.refunds.create({ charge: ch.id, amount: 40_000 });
    expect(first.status).toBe('succeeded');
    const outside = await stack.direct.refunds.create({ charge: ch.id, amount: 450_000 });
    await receivedFromSandbox(stack, 'refund.created', about(outside.id));
    // $300 would pass on its own and with every refund so far but this one ($314.15 + $50 + $400 + $300); with
    // the outside $4,500 the account's day passes $5,000.
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 30_000 }));
    expect(err.code).toBe('approval_required');
    const held = await stack.airlock.store.getAction(err.raw.airlock_action);
    expect(JSON.parse(held!.decision).rules).toContain(
      "Review if :kind: = 'refund.create' and :account_refunds_usd_24h: + :amount_in_usd: > 5000",
    );
  });

  it('adds a dispute the sandbox reported on a charge to the risk of a refund on it, without a look-up', async () => {
    const disputed = await stack.direct.charges.create({
      amount: 30_000,
      currency: 'usd',
      source: 'tok_createDispute',
    });
    const clean = await charge(stack, 30_000);
    await receivedFromSandbox(stack, 'charge.dispute.created', (o) => o['charge'] === disputed.id);
    expect(sandboxEvents(stack, 'charge.dispute.created', (o) => o['charge'] === clean.id)).toEqual([]);
    // Held or not (the day's velocity rule holds them by now), each is decided and its risk recorded.
    for (const ch of [disputed, clean])
      await stack.agent.refunds.create({ charge: ch.id, amount: 1_000 }).catch((err) => {
        if (err.code !== 'approval_required') throw err;
      });
    const factors = async (chargeId: string) => {
      const [a] = await actions(stack.airlock.store, (r) => r.params.includes(chargeId));
      return JSON.parse(a!.decision).risk_factors as { name: string; points: number }[];
    };
    expect(await factors(disputed.id)).toContainEqual({ name: 'charge_disputed', points: 20 });
    expect((await factors(clean.id)).map((f) => f.name)).not.toContain('charge_disputed');
  });
});
