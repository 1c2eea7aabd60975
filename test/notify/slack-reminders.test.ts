// A hold's reminder and escalation in Slack: each is a new bot message with the buttons that says "Reminder" or
// "Escalated"; a press counts only for reviewers the engine finds eligible, which the escalation widens; a decision
// updates every message of the hold. Time is moved by the engine's test clock; Slack is a local stand-in over HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkSlackUser } from '../../src/auth/slack-users.ts';
import { type SlackCall, type SlackStandIn, slackInteraction, startSlackStandIn } from '../helpers/slack.ts';
import { until } from '../helpers/stack.ts';
import { type ReviewStack, startReviewStack } from '../review/helpers.ts';

const SECRET = 'slack-signing-secret-for-tests';
const CHANNEL = 'C0REVIEWS';
const HOUR = 3_600_000;

// Support decides big refunds; finance is brought in after two hours.
const POLICY = `
timezone: UTC
default: review
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - name: big_refund
    rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
    reviewers: [group:support]
    expires_in: 4h
    remind_before: 1h
    escalate_after: 2h
    escalate_to: [group:finance]
`;

let slack: SlackStandIn;
let stack: ReviewStack;

beforeAll(async () => {
  slack = await startSlackStandIn();
  stack = await startReviewStack(
    {
      SLACK_BOT_TOKEN: 'xoxb-test-token',
      SLACK_SIGNING_SECRET: SECRET,
      AIRLOCK_SLACK_CHANNEL: CHANNEL,
      AIRLOCK_SLACK_API_URL: slack.apiUrl,
    },
    POLICY,
  );
  await linkSlackUser(stack.airlock.store, 'alice@example.com', 'U0ALICE', 'cli');
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await slack?.close();
});

const mentions = (c: SlackCall, id: string) => JSON.stringify(c.args['blocks'] ?? '').includes(id);

/** The bot's message for the action whose first section starts with `headline`. */
async function message(actionId: string, headline: string): Promise<{ ts: string; blocks: any[] }> {
  const post = await until(
    () =>
      slack
        .callsTo('chat.postMessage')
        .find((c) => mentions(c, actionId) && String(c.args['text']).startsWith(headline)),
    10_000,
  );
  return { ts: String(post.answer['ts']), blocks: post.args['blocks'] as any[] };
}

async function press(user: string, actionId: string, ts: string): Promise<number> {
  // Signed at Airlock's time: its signature window reads the same (moved) clock as the hold.
  const signed = slackInteraction(
    SECRET,
    { user, button: 'airlock_approve', actionId, channel: CHANNEL, ts },
    stack.clock.now(),
  );
  const res = await fetch(`${stack.airlock.url}/slack/interactions`, {
    method: 'POST',
    headers: signed.headers,
    body: signed.body,
  });
  return res.status;
}

describe('reminders and escalation in Slack', () => {
  it('posts "Escalated" and "Reminder" messages with buttons; an escalated reviewer approves from one; all are updated', async () => {
    stack.clock.offsetMs = 0;
    const { actionId, chargeId } = await stack.holdRefund(60_000);
    const first = await message(actionId, 'Held for review');

    // Alice is finance: not eligible yet, so her press is refused and changes nothing.
    expect(await press('U0ALICE', actionId, first.ts)).toBe(200);
    await until(() =>
      slack.callsTo('chat.postEphemeral').find((c) => c.args['user'] === 'U0ALICE') ? true : undefined,
    );
    const refusal = slack.callsTo('chat.postEphemeral').find((c) => c.args['user'] === 'U0ALICE')!;
    expect(String(refusal.args['text'])).toContain('needs a reviewer from group:support');
    expect((await stack.airlock.engine.get(actionId)).status).toBe('awaiting_approval');

    stack.clock.offsetMs = 2 * HOUR + 60_000;
    const escalated = await message(actionId, 'Escalated: held for review');
    expect(escalated.blocks[0].text.text).toContain('*Escalated: held for review:*');
    expect(escalated.blocks[0].text.text).toMatch(/Escalated to group:finance: no decision after 2h$/m);
    const buttons = escalated.blocks.find((b) => b.type === 'actions').elements;
    expect(buttons.map((b: any) => b.action_id)).toEqual([
      'airlock_approve',
      'airlock_reject',
      'airlock_open',
    ]);

    stack.clock.offsetMs = 3 * HOUR + 60_000;
    const reminder = await message(actionId, 'Reminder: still held for review');
    expect(reminder.blocks[0].text.text).toContain('*Reminder: still held for review:*');

    // Now eligible through the engine, Alice approves from the reminder; the refund executes once.
    expect(await press('U0ALICE', actionId, reminder.ts)).toBe(200);
    const done = await stack.airlock.engine.waitFor(actionId, (s) => s === 'completed', 10_000, 20);
    expect(done.status).toBe('completed');
    expect(stack.refundsFor(chargeId)).toHaveLength(1);

    // Every message of the hold loses its buttons and says who approved.
    for (const ts of [first.ts, escalated.ts, reminder.ts]) {
      const update = await until(
        () =>
          slack
            .callsTo('chat.update')
            .find(
              (c) => c.args['ts'] === ts && JSON.stringify(c.args['blocks']).includes('alice@example.com'),
            ),
        10_000,
      );
      expect(JSON.stringify(update.args['blocks'])).not.toContain('airlock_approve');
    }
    expect(slack.callsTo('chat.postMessage').filter((c) => mentions(c, actionId))).toHaveLength(3);
  });
});
