// Every hold notification carries the context a reviewer decides on (issue 19, section 5): the customer, the charge
// and what is already refunded, the stated reason, the rule by name, and the customer's history, through a real SMTP
// server, the local Slack stand-in (@slack/web-api, Block Kit) and a Teams receiver. A failed look-up is a line in
// the message, never a message not sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TeamsMessage } from '../../src/notify/teams.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { type SlackStandIn, startSlackStandIn } from '../helpers/slack.ts';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { until } from '../helpers/stack.ts';
import {
  holdWithReason,
  REASON,
  RULE_NAME,
  seedCustomer,
  startContextStack,
} from '../review/context-seed.ts';
import type { ReviewStack } from '../review/helpers.ts';

let smtp: Mailbox;
let slack: SlackStandIn;
let teams: Receiver;
let stack: ReviewStack;

beforeAll(async () => {
  smtp = await startMailbox();
  slack = await startSlackStandIn();
  teams = await startReceiver();
  teams.respond = () => ({ status: 202 });
  stack = await startContextStack({
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtp.port),
    SMTP_FROM: 'Airlock <airlock@example.com>',
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_SIGNING_SECRET: 'slack-signing-secret-for-tests',
    AIRLOCK_SLACK_CHANNEL: 'C0REVIEWS',
    AIRLOCK_SLACK_API_URL: slack.apiUrl,
    TEAMS_WEBHOOK_URL: `${teams.url}/workflows/hook?sig=secret-signature`,
  });
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await teams?.close();
  await slack?.close();
  await smtp?.close();
});

/** What each channel delivered about one action, once all three have. */
async function delivered(
  actionId: string,
): Promise<{ email: string; slack: string; teams: Record<string, string> }> {
  const email = await until(() => smtp.inbox.find((m) => m.subject?.includes(actionId))?.text, 10_000);
  const post = await until(
    () =>
      slack
        .callsTo('chat.postMessage')
        .find((c) => JSON.stringify(c.args['blocks'] ?? '').includes(actionId)),
    10_000,
  );
  const card = await until(
    () =>
      teams.received
        .map((r) => JSON.parse(r.body) as TeamsMessage)
        .find((c) => JSON.stringify(c).includes(actionId)),
    10_000,
  );
  const blocks = post.args['blocks'] as { type: string; text?: { text: string } }[];
  const facts = card.attachments[0]!.content.body.flatMap((b) => (b.type === 'FactSet' ? b.facts : []));
  return {
    email,
    // As a Slack client shows it: mrkdwn's escapes undone.
    slack: blocks
      .map((b) => b.text?.text ?? '')
      .join('\n')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&amp;/g, '&'),
    teams: Object.fromEntries(facts.map((f) => [f.title, f.value])),
  };
}

describe('hold notifications', () => {
  it('tell every channel who is refunded, the charge, the stated reason, the rule by name and the history', async () => {
    const jane = await seedCustomer(stack);
    const actionId = await holdWithReason(stack, jane);
    const got = await delivered(actionId);
    const lines = {
      Customer: /Jane Doe <jane@example\.com> · customer for 2 years \(since \d{4}-\d{2}-\d{2}\)/,
      Charge: /\$700\.00 on \d{4}-\d{2}-\d{2} · \$100\.00 already refunded/,
      'Stated reason': `“${REASON}” (Airlock-Reason)`,
      'Before, in Airlock': '1 earlier refund: 1 completed ($50.00) · no disputes',
      'Before, in Stripe': 'refunds on 2 of 3 charges ($150.00) · 1 disputed charge',
      'Why held': RULE_NAME,
    };
    for (const [label, value] of Object.entries(lines)) {
      const line = (text: string) =>
        text.split('\n').find((l) => l.replace(/^• /, '').startsWith(`${label}: `)) ?? `(no ${label} line)`;
      if (typeof value === 'string') {
        expect(line(got.email)).toContain(value);
        expect(line(got.slack)).toContain(value);
        expect(got.teams[label]).toBe(value);
      } else {
        expect(line(got.email)).toMatch(value);
        expect(line(got.slack)).toMatch(value);
        expect(got.teams[label]).toMatch(value);
      }
    }
    // A shared room still gets no ids of charges, parameters or secrets.
    expect(JSON.stringify(got.teams)).not.toMatch(/ch_|sk_|secret-signature/);
  });

  it('are still sent, each with the failure line, when Stripe answers 500 for customers', async () => {
    const bo = await seedCustomer(stack, { name: 'Bo Failing', email: 'bo@example.com' });
    stack.sandbox.setFaults({ failNext: 1000, failStatus: 500, pathPrefix: '/v1/customers' });
    try {
      const actionId = await holdWithReason(stack, bo, 'Wrong size');
      const got = await delivered(actionId);
      const failure = `${bo.customer} · Could not load the customer from Stripe: Stripe answered 500`;
      expect(got.email).toContain(`Customer: ${failure}`);
      expect(got.slack).toContain(`Customer: ${failure}`);
      expect(got.teams['Customer']).toContain(failure);
      // What did load is there all the same.
      expect(got.teams['Charge']).toContain('$700.00');
      expect(got.teams['Stated reason']).toBe('“Wrong size” (Airlock-Reason)');
      // Every message of the hold was sent, none failed for the look-up.
      await expect
        .poll(async () => {
          const all = await stack.airlock.store.outbox.notificationsFor(actionId);
          return all.length > 0 && all.every((n) => n.status === 'sent');
        })
        .toBe(true);
    } finally {
      stack.sandbox.clearFaults();
    }
  });

  it('are not held back by a slow Stripe: the customer line says it had no answer in time', async () => {
    const cy = await seedCustomer(stack, { name: 'Cy Slow', email: 'cy@example.com' });
    // Slower than a message waits (CONTEXT_TIMEOUT_MS, 1.5 s), faster than the decision's own look-ups give up.
    stack.sandbox.setFaults({ delayMs: 4_000, pathPrefix: '/v1/customers' });
    try {
      const actionId = await holdWithReason(stack, cy, 'Never delivered');
      const got = await delivered(actionId);
      // The look-ups share the message's deadline, so the wait named is at most 1500 ms.
      const late = /Could not load the customer from Stripe: no answer within (\d+) ms/;
      expect(got.teams['Customer']).toMatch(new RegExp(`^${cy.customer} · ${late.source}$`));
      expect(Number(late.exec(got.teams['Customer']!)![1])).toBeLessThanOrEqual(1500);
      expect(got.email).toMatch(late);
      expect(got.teams['Stated reason']).toBe('“Never delivered” (Airlock-Reason)');
    } finally {
      stack.sandbox.clearFaults();
    }
  }, 30_000);

  it("escapes an agent's reason for Slack, so '<!channel>' mentions nobody and stays text", async () => {
    const dee = await seedCustomer(stack, { name: 'Dee <b>', email: 'dee@example.com' });
    const actionId = await holdWithReason(
      stack,
      dee,
      '<!channel> refund me & now <https://evil.example|click>',
    );
    await delivered(actionId);
    const post = slack
      .callsTo('chat.postMessage')
      .find((c) => JSON.stringify(c.args['blocks'] ?? '').includes(actionId))!;
    const text = (post.args['blocks'] as { text?: { text: string } }[])[0]!.text!.text;
    expect(text).toContain('“&lt;!channel&gt; refund me &amp; now &lt;https://evil.example|click&gt;”');
    expect(text).toContain('Dee &lt;b&gt; &lt;dee@example.com&gt;');
    expect(text).not.toMatch(/<!channel>|<https:\/\/evil/);
  });
});
