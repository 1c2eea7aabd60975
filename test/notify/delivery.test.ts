// Reviewers' notifications go through an outbox, over both stores: queued in the transaction that holds the action,
// sent once however often the hold is queued or the queue is swept, retried while SMTP is down, and shown on the
// receipt. A real SMTP server runs in the test; the sweeps are driven by hand.
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { Engine, type Submission } from '../../src/engine/engine.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import type { Channel } from '../../src/notify/channel.ts';
import { EmailChannel } from '../../src/notify/email.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { HoldOutbox } from '../../src/notify/outbox.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { receiptBody } from '../../src/review/pages/receipt.ts';
import { loadView } from '../../src/review/queries.ts';
import { ReviewStore } from '../../src/review/store.ts';
import type { Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from '../store/databases.ts';
import { type ControlledMailbox, recipientOf, startControlledMailbox } from './mailbox.ts';

const POLICY = `
default: allow
rules:
  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
`;

const log = pino({ level: 'silent' });
const RETRY = { backoffMs: 20, maxBackoffMs: 40, pollMs: 20, timeoutMs: 2_000, maxAttempts: 5 };

function refund(agent: { id: string; name: string }, cents: number): Submission {
  const params = { charge: 'ch_test', amount: String(cents) };
  const classification = { ...classify({ method: 'POST', path: '/v1/refunds', params }), currency: 'usd' };
  return {
    agent,
    method: 'POST',
    path: '/v1/refunds',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: null,
    classification,
  };
}

async function notifications(store: Store, actionId: string) {
  return store.outbox.notificationsFor(actionId);
}

async function ledgerTypes(store: Store, actionId: string): Promise<string[]> {
  return (await store.ledgerForAction(actionId)).map((e) => e.type);
}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`notification outbox on ${dialect}`, () => {
    let t: TestStore;
    let smtp: ControlledMailbox;
    let channels: Channel[];
    let engine: Engine;
    let outbox: HoldOutbox;
    let agent: { id: string; name: string };
    const started: Notifier[] = [];

    function notifier(on: Engine = engine, retry: Partial<typeof RETRY> = {}): Notifier {
      const n = new Notifier({
        engine: on,
        log,
        channels,
        baseUrl: 'https://airlock.example.com',
        linkTtlMs: 3600_000,
        retry: { ...RETRY, ...retry },
      });
      started.push(n);
      return n;
    }

    async function hold(cents = 60_000): Promise<string> {
      const { action } = await engine.submit(refund(agent, cents));
      expect(action.status).toBe('awaiting_approval');
      return action.id;
    }

    beforeAll(async () => {
      t = await openTestStore(dialect);
      smtp = await startControlledMailbox();
      channels = [
        new EmailChannel(
          { host: '127.0.0.1', port: smtp.port, secure: false, from: 'Airlock <airlock@example.com>' },
          2_000,
        ),
      ];
      engine = new Engine({ store: t.store, policy: parsePolicy(POLICY, 'test.yaml') });
      outbox = new HoldOutbox(channels);
      engine.notifications = outbox;
      for (const email of ['ann@example.com', 'bob@example.com'])
        await createReviewer(t.store, email, { groups: ['finance'] });
      agent = await t.store.findOrCreateAgent('agt_notify', 'notify-bot', new Date().toISOString());
    });

    afterEach(() => {
      smtp.stall = false;
      smtp.refuse.clear();
    });

    afterAll(async () => {
      for (const n of started) await n.stop();
      await smtp.down();
      await t.cleanup();
    });

    it('queues one message per reviewer in the transaction that holds the action, and none for an allowed one', async () => {
      const id = await hold();
      // Nothing has swept yet: the rows were committed with the hold itself.
      const rows = await notifications(t.store, id);
      expect(rows.map((r) => [r.channel, r.recipient, r.status, r.attempts])).toEqual([
        ['email', 'ann@example.com', 'queued', 0],
        ['email', 'bob@example.com', 'queued', 0],
      ]);
      expect(rows.every((r) => r.reviewer_id?.startsWith('rev_') && r.payload === null)).toBe(true);

      const { action: allowed } = await engine.submit(refund(agent, 10_000));
      expect(allowed.status).toBe('pending');
      expect(await notifications(t.store, allowed.id)).toHaveLength(0);
    });

    it('sends each message once, however often the hold is queued again or the queue is swept', async () => {
      const id = await hold(61_000);
      const row = (await t.store.getAction(id))!;
      // A redelivery of the hold (a retried transaction, a second path to the same hold) queues nothing new.
      for (let i = 0; i < 3; i++) {
        await t.store.transaction((tx) => outbox.enqueue(tx, row, new Date().toISOString()));
      }
      expect(await notifications(t.store, id)).toHaveLength(2);

      // Two senders sweep at once (two instances on PostgreSQL), then sweep again.
      const other = dialect === 'postgres' ? await t.openAnother() : t.store;
      const otherEngine = new Engine({ store: other, policy: parsePolicy(POLICY, 'test.yaml') });
      const [a, b] = [notifier(), notifier(otherEngine)];
      await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
      await Promise.all([a.tick(), b.tick()]);

      const mails = smtp.acceptedWith(id);
      expect(mails.map(recipientOf).sort()).toEqual(['ann@example.com', 'bob@example.com']);
      const rows = await notifications(t.store, id);
      expect(rows.map((r) => [r.recipient, r.status, r.attempts, r.last_status])).toEqual([
        ['ann@example.com', 'sent', 1, 250],
        ['bob@example.com', 'sent', 1, 250],
      ]);
      // The Message-ID is the notification's own, the same on any retry of it.
      expect(mails.map((m) => m.messageId).sort()).toEqual(rows.map((r) => `<${r.id}@airlock>`).sort());
      // Each reviewer got their own links.
      const approveLinks = mails.map((m) => /Approve: (\S+)/.exec(m.text ?? '')?.[1]);
      expect(new Set(approveLinks).size).toBe(2);
      expect(approveLinks.every((l) => l?.startsWith('https://airlock.example.com/review/links/lnk_'))).toBe(
        true,
      );
      expect((await ledgerTypes(t.store, id)).filter((e) => e === 'notification.sent')).toHaveLength(2);
      expect((await verifyLedger(t.store)).ok).toBe(true);
    });

    it('retries while SMTP is down and delivers once when it is back, with the same message', async () => {
      await smtp.down();
      const id = await hold(62_000);
      const n = notifier(engine, { backoffMs: 400, maxBackoffMs: 400 });
      await n.tick();
      let rows = await notifications(t.store, id);
      expect(rows.map((r) => [r.status, r.attempts])).toEqual([
        ['queued', 1],
        ['queued', 1],
      ]);
      expect(rows[0]!.last_error).toMatch(/ECONNREFUSED/);
      expect(await ledgerTypes(t.store, id)).not.toContain('notification.sent');
      const composed = rows.map((r) => r.payload);
      expect(composed.every((p) => p !== null)).toBe(true);

      // Back up, but not due again before the backoff: a sweep now sends nothing and counts no attempt.
      await smtp.up();
      await n.tick();
      expect((await notifications(t.store, id)).map((r) => r.attempts)).toEqual([1, 1]);
      expect(smtp.acceptedWith(id)).toHaveLength(0);
      await new Promise((r) => setTimeout(r, 450));
      for (let i = 0; i < 3; i++) await n.tick();
      rows = await notifications(t.store, id);
      expect(rows.map((r) => [r.recipient, r.status, r.attempts, r.last_error])).toEqual([
        ['ann@example.com', 'sent', 2, null],
        ['bob@example.com', 'sent', 2, null],
      ]);
      // The retry sent the message composed on the first try, links and all.
      expect(rows.map((r) => r.payload)).toEqual(composed);
      const mails = smtp.acceptedWith(id);
      expect(mails.map(recipientOf).sort()).toEqual(['ann@example.com', 'bob@example.com']);
      const sent = (await t.store.ledgerForAction(id)).filter((e) => e.type === 'notification.sent');
      expect(sent.map((e) => JSON.parse(e.data).attempts)).toEqual([2, 2]);
    });

    it('gives up at once on a mailbox the server refuses for good, and records it', async () => {
      smtp.refuse.add('bob@example.com');
      const id = await hold(63_000);
      await notifier().tick();
      const rows = await notifications(t.store, id);
      expect(rows.map((r) => [r.recipient, r.status, r.attempts])).toEqual([
        ['ann@example.com', 'sent', 1],
        ['bob@example.com', 'failed', 1],
      ]);
      expect(rows[1]!.last_status).toBe(550);
      expect(rows[1]!.gave_up_at).not.toBeNull();
      expect(smtp.acceptedWith(id).map(recipientOf)).toEqual(['ann@example.com']);
      expect(await ledgerTypes(t.store, id)).toContain('notification.failed');
    });

    it('skips the message of an action decided before it could be sent', async () => {
      const id = await hold(64_000);
      await engine.reject(id, { id: 'rev_someone', email: 'carol@example.com', groups: [] }, 'no');
      await notifier().tick();
      const rows = await notifications(t.store, id);
      expect(rows.map((r) => [r.status, r.attempts, r.last_error])).toEqual([
        ['skipped', 0, 'not sent: the action is rejected already'],
        ['skipped', 0, 'not sent: the action is rejected already'],
      ]);
      expect(smtp.acceptedWith(id)).toHaveLength(0);
    });

    it("shows each message's channel, recipient, status, attempts and last error on the receipt", async () => {
      smtp.refuse.add('bob@example.com');
      const id = await hold(65_000);
      await notifier().tick();
      const view = await loadView(engine, new ReviewStore(t.store), id, { ledger: true });
      expect(
        view.notifications.map((n) => [n.channel, n.recipient, n.status, n.attempts, n.last_status]),
      ).toEqual([
        ['email', 'ann@example.com', 'sent', 1, 250],
        ['email', 'bob@example.com', 'failed', 1, 550],
      ]);
      const page = receiptBody(view, new Date(), {
        kind: 'session',
        session: {
          reviewer: { id: 'rev_x', email: 'x@example.com', groups: [] },
          csrf: 'c',
          expiresAt: new Date(Date.now() + 60_000).toISOString(),
        },
      }).toString();
      const section = page.slice(page.indexOf('<h3>Notifications</h3>'));
      expect(section).toMatch(
        /<th>email<\/th><td>ann@example\.com<div class="sub">sent [^<]* · 1 attempt · last answer 250/,
      );
      expect(section).toMatch(
        /<th>email<\/th><td>bob@example\.com<div class="sub">gave up [^<]* · 1 attempt · last answer 550 · [^<]*No such mailbox/,
      );
      // The stored message holds the reviewers' links: the receipt never shows it.
      expect(page).not.toContain('/review/links/');
      expect(page).toContain('Notified ann@example.com by email');
    });
  });
}
