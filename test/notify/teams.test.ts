// Microsoft Teams: each hold is posted to the configured webhook as an Adaptive Card with the summary and a link to
// the receipt, through the notification outbox like email and Slack.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TeamsMessage } from '../../src/notify/teams.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { type ReviewStack, startReviewStack } from '../review/helpers.ts';

let teams: Receiver;
let stack: ReviewStack;

beforeAll(async () => {
  teams = await startReceiver();
  // A Workflows URL answers 202 Accepted.
  teams.respond = () => ({ status: 202 });
  stack = await startReviewStack({ TEAMS_WEBHOOK_URL: `${teams.url}/workflows/hook?sig=secret-signature` });
});

afterAll(async () => {
  await stack?.close();
  await teams?.close();
});

function cards(): TeamsMessage[] {
  return teams.received.map((r) => JSON.parse(r.body) as TeamsMessage);
}

describe('Teams notifications', () => {
  it('posts a hold as an Adaptive Card with the summary and an Open-receipt action, and no parameters or secrets', async () => {
    const { actionId } = await stack.holdRefund(60_000);
    await expect
      .poll(() => cards().some((c) => JSON.stringify(c).includes(actionId)), { timeout: 5000 })
      .toBe(true);
    const card = cards().find((c) => JSON.stringify(c).includes(actionId))!;
    expect(card.type).toBe('message');
    const [attachment] = card.attachments;
    expect(attachment?.contentType).toBe('application/vnd.microsoft.card.adaptive');
    const content = attachment!.content;
    expect(content.type).toBe('AdaptiveCard');
    expect(content.body[0]).toMatchObject({
      type: 'TextBlock',
      text: expect.stringContaining('Refund $600.00'),
    });
    const facts = content.body.flatMap((b) => (b.type === 'FactSet' ? b.facts : []));
    expect(facts.find((f) => f.title === 'Why held')?.value).toContain(':amount_in_usd: > 500');
    expect(content.actions).toEqual([
      {
        type: 'Action.OpenUrl',
        title: 'Open the receipt to decide',
        url: `${stack.airlock.url}/review/actions/${actionId}`,
      },
    ]);
    const text = JSON.stringify(card);
    expect(text).not.toMatch(/ch_|sk_|ak_|"amount"|secret-signature/);
    expect(text).not.toMatch(/approve\?|token=/); // a shared room gets no decision links

    await expect
      .poll(async () =>
        (await stack.airlock.store.outbox.notificationsFor(actionId)).find((n) => n.channel === 'teams'),
      )
      .toMatchObject({ recipient: 'webhook', status: 'sent' });
  });
});
