// Review email through a real SMTP server run in the test, and its signed links opened in real Chromium.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ParsedMail } from 'mailparser';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { FormClient, launchChromium, type ReviewStack, startReviewStack } from './helpers.ts';

let smtp: Mailbox;
let slack: Server;
const slackPosts: { text: string }[] = [];
let stack: ReviewStack;
let browser: Browser;

beforeAll(async () => {
  smtp = await startMailbox();

  slack = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      slackPosts.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => slack.listen(0, '127.0.0.1', resolve));
  const slackPort = (slack.address() as AddressInfo).port;

  stack = await startReviewStack({
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtp.port),
    SMTP_FROM: 'Airlock <airlock@example.com>',
    SLACK_WEBHOOK_URL: `http://127.0.0.1:${slackPort}/hook`,
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  await smtp.close();
  await new Promise<void>((resolve) => slack.close(() => resolve()));
});

async function mailsFor(actionId: string, count: number): Promise<ParsedMail[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = smtp.inbox.filter((m) => m.subject?.includes(actionId));
    if (found.length >= count || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 25));
  }
}

function recipient(m: ParsedMail): string {
  const to = Array.isArray(m.to) ? m.to[0] : m.to;
  return to?.value[0]?.address ?? '';
}

function links(m: ParsedMail): { approve: string; reject: string } {
  const approve = /Approve: (\S+)/.exec(m.text ?? '')?.[1];
  const reject = /Reject: +(\S+)/.exec(m.text ?? '')?.[1];
  if (!approve || !reject) throw new Error(`no links in ${m.text}`);
  return { approve, reject };
}

async function status(id: string): Promise<string> {
  return (await stack.airlock.engine.get(id)).status;
}

describe('review email', () => {
  it('mails each eligible reviewer a summary with their own approve and reject links, and posts to Slack', async () => {
    const { actionId } = await stack.holdRefund(60_000);
    const mails = await mailsFor(actionId, 3);
    expect(mails.map(recipient).sort()).toEqual([
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
    ]);
    const alice = mails.find((m) => recipient(m) === 'alice@example.com')!;
    expect(alice.subject).toContain('Refund $600.00 by agent support-bot');
    expect(alice.text).toContain("Why held: Review if :kind: = 'refund.create' and :amount_in_usd: > 500");
    expect(alice.html).toContain('Approve…');
    // Everyone gets different links.
    const all = mails.map((m) => links(m).approve);
    expect(new Set(all).size).toBe(3);

    await expect.poll(() => slackPosts.some((p) => p.text.includes(actionId)), { timeout: 5000 }).toBe(true);
    const post = slackPosts.find((p) => p.text.includes(actionId))!;
    expect(post.text).toContain('Refund $600.00 by agent support-bot');
    expect(post.text).toContain(`${stack.airlock.url}/review/actions/${actionId}`);
    expect(post.text).not.toMatch(/ch_|sk_|ak_|"amount"/); // no raw parameters, no credentials
  });

  it('opens the receipt from the link without deciding; the button decides; the link then shows the outcome and its sibling is spent', async () => {
    const { actionId, chargeId } = await stack.holdRefund(65_000);
    const mails = await mailsFor(actionId, 3);
    const alice = links(mails.find((m) => recipient(m) === 'alice@example.com')!);
    const bob = links(mails.find((m) => recipient(m) === 'bob@example.com')!);

    // A mail scanner fetching the link decides nothing.
    for (let i = 0; i < 2; i++) expect((await fetch(alice.approve)).status).toBe(200);
    expect(await status(actionId)).toBe('awaiting_approval');

    const page = await browser.newPage();
    try {
      await page.goto(alice.approve);
      await expect(page.textContent('.receipt-head')).resolves.toContain('$650.00');
      await expect(page.textContent('.decide h2')).resolves.toContain('Approve as alice@example.com');
      expect(await status(actionId)).toBe('awaiting_approval');
      await page.fill('#link-form input[name=note]', 'ok from my phone');
      await Promise.all([page.waitForURL(/done=1/), page.click('#link-form button')]);
      await expect(page.textContent('.notice.ok')).resolves.toMatch(
        /Done: this action is now (pending|completed)/,
      );
      await stack.airlock.engine.waitFor(actionId, (s) => s === 'completed', 5000, 20);
      expect(stack.refundsFor(chargeId)).toHaveLength(1);

      // Reopened, the link shows the outcome and no button.
      await page.goto(alice.approve);
      await expect(page.textContent('#outcome')).resolves.toContain('completed');
      expect(await page.locator('#link-form').count()).toBe(0);

      // The sibling (reject) link was spent with it: it shows the outcome and its POST is refused.
      await page.goto(alice.reject);
      await expect(page.textContent('.notice.error')).resolves.toContain('has been used');
      expect(await page.locator('#link-form').count()).toBe(0);
      const replay = await fetch(alice.reject, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'note=late',
      });
      expect(replay.status).toBe(409);
      expect(await status(actionId)).toBe('completed');

      // Another reviewer's link for the decided action shows the outcome; its button is gone.
      await page.goto(bob.reject);
      await expect(page.textContent('#outcome')).resolves.toContain('completed');
      const late = await fetch(bob.reject, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'note=too late',
      });
      expect(late.status).toBe(409);
      expect(await late.text()).toContain('Already decided by alice@example.com (approved)');
      expect(stack.refundsFor(chargeId)).toHaveLength(1);
    } finally {
      await page.close();
    }
  });

  it('a link and the dashboard deciding at once make one transition; the loser is told who decided', async () => {
    const { actionId, chargeId } = await stack.holdRefund(68_000);
    const mail = (await mailsFor(actionId, 3)).find((m) => recipient(m) === 'alice@example.com')!;
    const bob = new FormClient(stack.airlock.url);
    await bob.logIn('bob@example.com');
    const csrf = await bob.csrf();
    const [viaLink, viaDashboard] = await Promise.all([
      fetch(links(mail).approve, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'note=link',
        redirect: 'manual',
      }),
      bob.request(`/review/actions/${actionId}/approve`, { form: { _csrf: csrf, note: 'dashboard' } }),
    ]);
    expect([viaLink.status, viaDashboard.status].sort()).toEqual([303, 409]);
    const loserText = viaLink.status === 409 ? await viaLink.text() : viaDashboard.text;
    expect(loserText).toMatch(/Already decided by (alice|bob)@example\.com \(approved\)/);
    await stack.airlock.engine.waitFor(actionId, (s) => s === 'completed', 5000, 20);
    expect(await stack.airlock.store.listApprovals(actionId)).toHaveLength(1);
    expect(stack.refundsFor(chargeId)).toHaveLength(1);
  });

  it('refuses a forged link and a link moved to another action', async () => {
    const { actionId } = await stack.holdRefund(66_000);
    const mail = (await mailsFor(actionId, 3)).find((m) => recipient(m) === 'bob@example.com')!;
    const { approve } = links(mail);
    const [prefix, token] = approve.split('/review/links/') as [string, string];
    const [id, sig] = token.split('.') as [string, string];
    const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    for (const forged of [`${id}.${flipped}`, `lnk_madeUpId00000000000.${sig}`, id, `${id}.${sig}.x`]) {
      const res = await fetch(`${prefix}/review/links/${forged}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'note=x',
      });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('This link is not valid');
    }
    expect(await status(actionId)).toBe('awaiting_approval');
  });

  it('refuses an expired link and never decides with it', async () => {
    const { actionId, chargeId } = await stack.holdRefund(67_000);
    const mail = (await mailsFor(actionId, 3)).find((m) => recipient(m) === 'alice@example.com')!;
    const { approve } = links(mail);
    stack.clock.offsetMs = 73 * 3600_000; // past the link's (and the hold's) 72h lifetime
    try {
      const get = await fetch(approve);
      expect(get.status).toBe(410);
      expect(await get.text()).toContain('This link has expired');
      const post = await fetch(approve, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'note=x',
      });
      expect(post.status).toBe(410);
      expect(stack.refundsFor(chargeId)).toHaveLength(0);
      expect(['awaiting_approval', 'expired']).toContain(await status(actionId));
    } finally {
      stack.clock.offsetMs = 0;
    }
  });
});
