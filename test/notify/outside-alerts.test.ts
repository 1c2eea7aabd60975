// An outside-money alert in each channel's form: the same facts and links whatever the channel, and a Teams alert is
// an Adaptive Card Teams accepts (one attachment, schema 1.4) with Open-in-Stripe and Outside-Airlock actions.
import { describe, expect, it } from 'vitest';
import { composeAlert, describeOutside } from '../../src/notify/outside.ts';
import type { TeamsMessage } from '../../src/notify/teams.ts';
import type { StripeEventRow } from '../../src/store/store.ts';

const BASE = 'https://airlock.example.com';

function outsideRefund(over: Partial<StripeEventRow> = {}): StripeEventRow {
  return {
    id: 'evt_1OutsideRefund',
    type: 'refund.created',
    created: 1_795_000_000,
    livemode: 0,
    object_id: 're_1Outside',
    request_id: 'req_raw_key',
    idempotency_key: null,
    origin: 'outside',
    kind: 'refund.create',
    amount: 450_000,
    currency: 'usd',
    amount_usd: 4500,
    customer: null,
    charge: 'ch_1Charged',
    account: null,
    action_id: null,
    expected: 0,
    via: 'webhook',
    payload: '{}',
    received_at: '2026-11-18T00:00:00.000Z',
    signed_at: 1_795_000_001,
    ...over,
  };
}

describe('outside-money alerts', () => {
  it('compose a Teams alert as one Adaptive Card with the amount, the source and links to Stripe and the dashboard', () => {
    const card = composeAlert('teams', 'webhook', describeOutside(outsideRefund(), BASE)) as TeamsMessage;
    expect(card.type).toBe('message');
    expect(card.attachments).toHaveLength(1);
    const content = card.attachments[0]!.content;
    expect(content).toMatchObject({ type: 'AdaptiveCard', version: '1.4' });
    expect(content.body[0]).toMatchObject({
      type: 'TextBlock',
      weight: 'Bolder',
      text: 'Money moved outside Airlock: refund.created of $4,500.00 made outside Airlock',
    });
    const text = content.body.map((b) => (b.type === 'TextBlock' ? b.text : '')).join('\n');
    expect(text).toContain('Amount: $4,500.00');
    expect(text).toContain('Stripe object: re_1Outside');
    expect(content.actions.map((a) => a.title)).toEqual(['Open it in Stripe', 'Outside Airlock']);
    expect(content.actions[1]!.url).toBe(`${BASE}/review/outside`);
  });

  it('leave out the Stripe link when the event names no object, in Teams and Slack alike', () => {
    const alert = describeOutside(outsideRefund({ object_id: null }), BASE);
    const card = composeAlert('teams', 'webhook', alert) as TeamsMessage;
    expect(card.attachments[0]!.content.actions.map((a) => a.title)).toEqual(['Outside Airlock']);
    const slack = composeAlert('slack', 'webhook', alert) as { text: string };
    expect(slack.text).not.toContain('Open it in Stripe');
    expect(slack.text).toContain(`<${BASE}/review/outside|Outside Airlock>`);
  });
});
