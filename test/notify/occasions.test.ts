// Every channel says why a hold's message goes out: held, a reminder, or an escalation (with whom and after how long).
import { describe, expect, it } from 'vitest';
import { reviewEmail } from '../../src/notify/email.ts';
import { slackMessage } from '../../src/notify/slack.ts';
import { holdMessage } from '../../src/notify/slack-app.ts';
import { summarize } from '../../src/notify/summary.ts';
import { teamsMessage } from '../../src/notify/teams.ts';
import { actionRow } from '../helpers/action-row.ts';

const now = new Date('2026-01-01T02:01:00.000Z');
const row = actionRow({
  id: 'act_occasion',
  amount: 60_000,
  created_at: '2026-01-01T00:00:00.000Z',
  expires_at: '2026-01-01T04:00:00.000Z',
  decision: JSON.stringify({
    outcome: 'review',
    rules: ['Review if :amount_in_usd: > 500'],
    policy_version: 'pol_test',
    risk_score: null,
    risk_factors: [],
    reason: 'Review',
    shadow_outcome: null,
    notify: [],
    reviewers: ['group:finance'],
    escalate_after_ms: 7_200_000,
    escalate_to: ['group:managers', 'alice@example.com'],
  }),
});

describe('what each channel says on each occasion', () => {
  it.each([
    ['held', 'Held for review', 'Review'],
    ['remind', 'Reminder: still held for review', 'Reminder'],
    ['escalate', 'Escalated: held for review', 'Escalated'],
  ] as const)('%s', (occasion, headline, tag) => {
    const s = summarize(row, 'agent support-bot', now, 'https://airlock.example.com', occasion);
    const mail = reviewEmail('bob@example.com', s, null);
    expect(mail.subject).toBe(`[Airlock] ${tag}: ${s.title} (act_occasion)`);
    expect(mail.text.split('\n')[0]).toBe(`${headline}: ${s.title}`);
    expect(mail.html).toContain(`<b>${headline}:</b>`);
    expect(slackMessage(s).text).toContain(`*${headline}:*`);
    const app = holdMessage('C0REVIEWS', s);
    expect(app.text).toBe(`${headline}: ${s.title}`);
    expect(JSON.stringify(app.blocks)).toContain('airlock_approve');
    expect(teamsMessage(s).attachments[0]!.content.body[0]).toMatchObject({
      text: `${headline}: ${s.title}`,
    });
    const escalationLine = 'Escalated to group:managers, alice@example.com: no decision after 2h';
    expect(s.lines.includes(escalationLine)).toBe(occasion === 'escalate');
  });
});
