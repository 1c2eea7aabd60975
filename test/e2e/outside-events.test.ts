// Issue 18, bypass detection, end to end: a refund made on the sandbox with a raw key (not through Airlock), reported
// by a signed Stripe event, is a `stripe.outside` ledger event, an email to the reviewers through a real SMTP server
// and a count in airlock_outside_events_total; a refund made through Airlock raises none of them; a kind the policy
// expects is recorded and not alerted.
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { newId } from '../../src/ids.ts';
import { type SlackStandIn, startSlackStandIn } from '../helpers/slack.ts';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { charge, rejection, type Stack, startStackWithPolicy, until } from '../helpers/stack.ts';
import { actions, ledger } from '../helpers/store-reads.ts';
import { deliver, WEBHOOK_SECRET } from '../helpers/stripe-events.ts';

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
  stack = await startStackWithPolicy(POLICY, {
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtp.port),
    SMTP_FROM: 'Airlock <airlock@example.com>',
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_SIGNING_SECRET: 'slack-signing-secret-for-tests',
    AIRLOCK_SLACK_CHANNEL: 'C0FINANCE',
    AIRLOCK_SLACK_API_URL: slack.apiUrl,
  });
});
afterAll(async () => {
  await stack?.close();
  await smtp?.close();
  await slack?.close();
});

/** Slack app posts that mention `text`. */
const slackPosts = (text: string) =>
  slack.callsTo('chat.postMessage').filter((c) => JSON.stringify(c.args).includes(text));

/** The event Stripe sends for an object, in the Event object's shape. */
function eventFor(
  type: string,
  object: object,
  request: { id: string | null; idempotency_key: string | null },
): Record<string, unknown> {
  return {
    id: newId('evt'),
    object: 'event',
    api_version: '2025-01-27.acacia',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    type,
    data: { object },
    request,
  };
}

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

describe('money moved outside Airlock', () => {
  it('alerts a refund made with a raw key: ledger, email with amount and link, metric', async () => {
    const ch = await charge(stack, 90_000);
    // Straight to the sandbox with a raw key: Airlock never sees the request.
    const refund: Stripe.Refund = await stack.direct.refunds.create({ charge: ch.id, amount: 31_415 });
    const event = eventFor('refund.created', refund, { id: newId('req'), idempotency_key: 'script-run-7' });
    const before = await outsideMetric('refund.created', 'outside');
    const res = await deliver(stack.airlock.url, JSON.stringify(event));
    expect(res.status).toBe(200);

    const recorded = await outsideLedger(event.id as string);
    expect(recorded).toHaveLength(1);
    expect(JSON.parse(recorded[0]!.data)).toMatchObject({
      type: 'refund.created',
      object: refund.id,
      amount: 31_415,
      currency: 'usd',
      source: 'outside',
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
    // And in the Slack app's channel.
    const post = await until(() => slackPosts(refund.id)[0]);
    expect(post.args['channel']).toBe('C0FINANCE');
    expect(JSON.stringify(post.args)).toContain('$314.15');

    // Stripe delivers it again: still one of everything.
    expect((await deliver(stack.airlock.url, JSON.stringify(event))).body.duplicate).toBe(true);
    expect(await outsideLedger(event.id as string)).toHaveLength(1);
    expect(await outsideMetric('refund.created', 'outside')).toBe(before + 1);
  });

  it('raises nothing for a refund made through Airlock', async () => {
    const ch = await charge(stack, 20_000);
    const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 5_000 });
    const [action] = await actions(
      stack.airlock.store,
      (a) => a.kind === 'refund.create' && (a.response_body?.includes(refund.id) ?? false),
    );
    expect(action?.status).toBe('completed');
    // As Stripe reports it: the dispatcher's Idempotency-Key, and the object tagged with the action.
    const event = eventFor(
      'refund.created',
      { ...refund, metadata: { ...refund.metadata, airlock_action: action!.id } },
      { id: newId('req'), idempotency_key: `airlock-${action!.id}` },
    );
    const mailsBefore = smtp.inbox.length;
    const metricBefore = await outsideMetric('refund.created', 'outside');
    const res = await deliver(stack.airlock.url, JSON.stringify(event));
    expect(res.status).toBe(200);
    expect((await stack.airlock.store.stripeEvents.get(event.id as string))?.origin).toBe('airlock');
    expect(await outsideLedger(event.id as string)).toEqual([]);
    expect(await stack.airlock.store.stripeEvents.alertsFor(event.id as string)).toEqual([]);
    expect(await outsideMetric('refund.created', 'outside')).toBe(metricBefore);
    expect(smtp.inbox.length).toBe(mailsBefore);
    expect(slackPosts(refund.id)).toEqual([]);
  });

  it('records an expected automatic payout without alerting', async () => {
    const payout = { id: newId('po'), object: 'payout', amount: 250_000, currency: 'usd', metadata: {} };
    const event = eventFor('payout.created', payout, { id: null, idempotency_key: null });
    const before = await outsideMetric('payout.created', 'automation');
    expect((await deliver(stack.airlock.url, JSON.stringify(event))).status).toBe(200);
    const recorded = await outsideLedger(event.id as string);
    expect(recorded).toHaveLength(1);
    expect(JSON.parse(recorded[0]!.data)).toMatchObject({ source: 'automation', expected: true });
    expect(await outsideMetric('payout.created', 'automation')).toBe(before + 1);
    expect(await stack.airlock.store.stripeEvents.alertsFor(event.id as string)).toEqual([]);
  });

  it('counts an outside refund towards the next decision: a refund it would have allowed is held', async () => {
    const ch = await charge(stack, 900_000);
    // Well inside every rule: allowed and made.
    const first = await stack.agent.refunds.create({ charge: ch.id, amount: 40_000 });
    expect(first.status).toBe('succeeded');
    const outside = await stack.direct.refunds.create({ charge: ch.id, amount: 450_000 });
    const event = eventFor('refund.created', outside, { id: newId('req'), idempotency_key: null });
    expect((await deliver(stack.airlock.url, JSON.stringify(event))).status).toBe(200);
    // $300 would pass on its own (and with Airlock's own refunds so far); with the outside $4,500 the account's
    // day passes $5,000.
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 30_000 }));
    expect(err.code).toBe('approval_required');
    const held = await stack.airlock.store.getAction(err.raw.airlock_action);
    expect(JSON.parse(held!.decision).rules).toContain(
      "Review if :kind: = 'refund.create' and :account_refunds_usd_24h: + :amount_in_usd: > 5000",
    );
  });

  it('adds a dispute Stripe reported on a charge to the risk of a refund on it, without a look-up', async () => {
    const disputed = await charge(stack, 30_000);
    const clean = await charge(stack, 30_000);
    const dispute = eventFor(
      'charge.dispute.created',
      {
        id: newId('dp'),
        object: 'dispute',
        charge: disputed.id,
        amount: 30_000,
        currency: 'usd',
        status: 'needs_response',
      },
      { id: null, idempotency_key: null },
    );
    expect((await deliver(stack.airlock.url, JSON.stringify(dispute))).status).toBe(200);
    // The sandbox's charges have no dispute: only the event can have put it there.
    // Held or not (the day's velocity rule may hold them by now), each is decided and its risk recorded.
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
