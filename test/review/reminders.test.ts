// Reminders and escalation end to end, with time advanced by the engine's test clock: a real server on a SQLite file,
// a real SMTP server, the official stripe client through Airlock to the sandbox. The dispatcher's own sweep sends
// them; the test only moves the clock and reads what arrived.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParsedMail } from 'mailparser';
import pino from 'pino';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { type RunningAirlock, startAirlock } from '../../src/server.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { rejection, stripeAt, tempDir } from '../helpers/stack.ts';
import { FormClient, PASSWORD, TestClock } from './helpers.ts';

const POLICY = `
timezone: UTC
default: review
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - name: big_refund
    rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
    approvals: 2
    reviewers: [group:finance]
    expires_in: 4h
    remind_before: 1h
    escalate_after: 2h
    escalate_to: [group:managers, outside@example.com]
`;

const HOUR = 3_600_000;
const log = pino({ level: 'silent' });

let dir: string;
let sandbox: Sandbox;
let smtp: Mailbox;
let config: Config;
let airlock: RunningAirlock;
let agent: Stripe;
let direct: Stripe;
const clock = new TestClock();
const people: Record<string, { id: string; email: string; token: string }> = {};

let agentKey = '';

/** Starts (or restarts) the server on the same file; the agent's client follows it to its new port. */
async function start(): Promise<void> {
  airlock = await startAirlock(config, log, { clock });
  if (agentKey) agent = stripeAt(agentKey, airlock.port);
}

beforeAll(async () => {
  dir = tempDir();
  sandbox = await startSandbox();
  smtp = await startMailbox();
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  config = loadConfig(
    {
      PORT: '0',
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      AIRLOCK_POLICY: join(dir, 'policy.yaml'),
      STRIPE_API_BASE: sandbox.url,
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(smtp.port),
      SMTP_FROM: 'Airlock <airlock@example.com>',
      AIRLOCK_DISPATCH_BACKOFF_MS: '10',
      AIRLOCK_DISPATCH_MAX_BACKOFF_MS: '50',
      AIRLOCK_DISPATCH_POLL_MS: '50',
    },
    undefined,
  );
  await start();
  agentKey = (await createAgentKey(airlock.store, 'support-bot')).key;
  agent = stripeAt(agentKey, airlock.port);
  direct = stripeAt('sk_test_direct', sandbox.port);
  const passwordHash = await hashPassword(PASSWORD);
  for (const [name, groups] of [
    ['ann', ['finance']],
    ['bob', ['finance']],
    ['dan', ['managers']],
    ['sue', ['support']],
  ] as const) {
    const r = await createReviewer(airlock.store, `${name}@example.com`, {
      passwordHash,
      groups: [...groups],
    });
    people[name] = { id: r.id, email: r.email, token: r.token };
  }
});

afterAll(async () => {
  await airlock?.close();
  await sandbox?.close();
  await smtp?.close();
});

async function holdRefund(amount: number): Promise<{ actionId: string; chargeId: string }> {
  clock.offsetMs = 0;
  const ch = await direct.charges.create({ amount: amount + 10_000, currency: 'usd', source: 'tok_visa' });
  const err = await rejection(agent.refunds.create({ charge: ch.id, amount }));
  expect(err?.code).toBe('approval_required');
  return { actionId: err.raw.airlock_action as string, chargeId: ch.id };
}

function recipient(m: ParsedMail): string {
  const to = Array.isArray(m.to) ? m.to[0] : m.to;
  return to?.value[0]?.address ?? '';
}

/** Once every message of this kind for the action has been sent, who received one: the inbox is then complete. */
async function settledMails(actionId: string, event: string, tag: string): Promise<ParsedMail[]> {
  await expect
    .poll(
      async () => {
        const rows = (await airlock.store.outbox.notificationsFor(actionId)).filter((n) => n.event === event);
        return rows.length > 0 && rows.every((n) => n.status === 'sent');
      },
      { timeout: 10_000, interval: 25 },
    )
    .toBe(true);
  return smtp.inbox.filter((m) => m.subject?.includes(actionId) && m.subject.startsWith(`[Airlock] ${tag}:`));
}

async function ledger(actionId: string, type: string) {
  return (await airlock.store.ledgerForAction(actionId)).filter((e) => e.type === type);
}

async function api(path: string, token: string, body: unknown = {}) {
  const res = await fetch(`${airlock.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** Whether the reviewer's queue offers them the Approve button for this action. */
async function queueOffers(name: string, actionId: string): Promise<boolean> {
  const client = new FormClient(airlock.url);
  expect(await client.logIn(`${name}@example.com`)).toBe(303);
  const page = await client.request('/review');
  expect(page.text).toContain(actionId);
  return page.text.includes(`/review/actions/${actionId}/approve`);
}

describe('reminders and escalation', () => {
  it('escalates to a manager who then approves, reminds only those who have not voted, and refunds once', async () => {
    const { actionId, chargeId } = await holdRefund(60_000);
    const first = await settledMails(actionId, 'review_requested', 'Review');
    expect(first.map(recipient).sort()).toEqual(['ann@example.com', 'bob@example.com']);

    // Before the escalation a manager may not decide: not by the API, not in the dashboard.
    expect((await api(`/api/actions/${actionId}/approve`, people['dan']!.token)).status).toBe(403);
    expect(await queueOffers('dan', actionId)).toBe(false);
    expect((await api(`/api/actions/${actionId}/approve`, people['ann']!.token, { note: 'ok' })).status).toBe(
      200,
    );

    // Two hours in, nobody has finished deciding: the managers and the named address are told.
    clock.offsetMs = 2 * HOUR + 60_000;
    const escalation = await settledMails(actionId, 'review_escalated', 'Escalated');
    expect(escalation.map(recipient).sort()).toEqual(['dan@example.com', 'outside@example.com']);
    const danEscalated = escalation.find((m) => recipient(m) === 'dan@example.com')!;
    expect(danEscalated.text).toMatch(/^Escalated: held for review: Refund \$600\.00/);
    expect(danEscalated.text).toMatch(
      /^Escalated to group:managers, outside@example\.com: no decision after 2h$/m,
    );
    expect(danEscalated.text).toMatch(/Approve: http/);
    // The outsider is no reviewer: the summary, no links.
    expect(escalation.find((m) => recipient(m) === 'outside@example.com')!.text).not.toContain('Approve:');
    expect(await queueOffers('dan', actionId)).toBe(true);
    expect(await queueOffers('sue', actionId)).toBe(false);

    // An hour before expiry: a reminder for those eligible who have not voted (Ann has).
    clock.offsetMs = 3 * HOUR + 60_000;
    const reminders = await settledMails(actionId, 'review_reminder', 'Reminder');
    expect(reminders.map(recipient).sort()).toEqual(['bob@example.com', 'dan@example.com']);
    const danReminder = reminders.find((m) => recipient(m) === 'dan@example.com')!;
    expect(danReminder.text).toMatch(/^Reminder: still held for review/);

    // Dan approves from the reminder's own link: the second distinct approval, and the refund executes once.
    const link = /Approve: (\S+)/.exec(danReminder.text ?? '')![1]!;
    const posted = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'note=escalated+to+me',
      redirect: 'manual',
    });
    expect(posted.status).toBeLessThan(400);
    const done = await airlock.engine.waitFor(actionId, (s) => s === 'completed', 10_000, 20);
    expect(done.status).toBe('completed');
    const refunds = await direct.refunds.list({ charge: chargeId });
    expect(refunds.data.map((r) => r.amount)).toEqual([60_000]);

    expect(await ledger(actionId, 'action.escalated')).toHaveLength(1);
    expect(await ledger(actionId, 'action.reminded')).toHaveLength(1);
    // The receipt's timeline says both, and who may decide.
    const client = new FormClient(airlock.url);
    await client.logIn('sue@example.com');
    const receipt = await client.request(`/review/actions/${actionId}`);
    expect(receipt.text).toContain('Escalated to group:managers, outside@example.com (2 messages queued)');
    expect(receipt.text).toContain('Reminder sent (2 messages queued)');
    expect(receipt.text).toContain('decided by group:finance, group:managers, outside@example.com');
    const approved = await ledger(actionId, 'action.approved');
    expect(approved.map((e) => e.actor)).toEqual(['reviewer:dan@example.com']);
    expect((await verifyLedger(airlock.store)).ok).toBe(true);
  });

  it('ends an escalated hold nobody decides as expired: never an approval, nothing refunded, no reminder after', async () => {
    const { actionId, chargeId } = await holdRefund(61_000);
    clock.offsetMs = 2 * HOUR + 60_000;
    await expect
      .poll(async () => (await ledger(actionId, 'action.escalated')).length, { timeout: 10_000 })
      .toBe(1);
    clock.offsetMs = 4 * HOUR + 60_000;
    const row = await airlock.engine.waitFor(actionId, (s) => s !== 'awaiting_approval', 10_000, 20);
    expect(row.status).toBe('expired');
    const late = await api(`/api/actions/${actionId}/approve`, people['dan']!.token);
    expect(late.status).toBeGreaterThanOrEqual(400);
    expect(late.status).toBeLessThan(500);
    expect(late.body.error.code).toBe('already_decided');
    expect((await airlock.engine.get(actionId)).status).toBe('expired');
    expect(await airlock.engine.sendDueReminders()).toBe(0);
    expect(await ledger(actionId, 'action.reminded')).toHaveLength(0);
    expect((await direct.refunds.list({ charge: chargeId })).data).toHaveLength(0);
    expect((await verifyLedger(airlock.store)).ok).toBe(true);
  });

  it('fires once across restarts: due while the server was down, and swept again after', async () => {
    const { actionId } = await holdRefund(62_000);
    await settledMails(actionId, 'review_requested', 'Review');
    await airlock.close();
    clock.offsetMs = 2 * HOUR + 60_000;
    await start();
    const escalation = await settledMails(actionId, 'review_escalated', 'Escalated');
    expect(escalation.map(recipient).sort()).toEqual(['dan@example.com', 'outside@example.com']);
    await airlock.close();
    await start();
    expect(await airlock.engine.sendDueReminders()).toBe(0);
    await airlock.dispatcher.tick();
    expect(await ledger(actionId, 'action.escalated')).toHaveLength(1);
    expect(await settledMails(actionId, 'review_escalated', 'Escalated')).toHaveLength(2);
    expect((await verifyLedger(airlock.store)).ok).toBe(true);
  });
});
