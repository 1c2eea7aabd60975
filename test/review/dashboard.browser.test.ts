// The reviewer dashboard in real Chromium (Debian's package, driven by playwright-core) against a real Airlock,
// a real SQLite file and the Stripe sandbox.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { launchChromium, logIn, type ReviewStack, startReviewStack } from './helpers.ts';

let stack: ReviewStack;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;

beforeAll(async () => {
  stack = await startReviewStack();
  base = stack.airlock.url;
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await stack?.close();
});
beforeEach(async () => {
  context = await browser.newContext();
  page = await context.newPage();
});
afterEach(async () => {
  await context.close();
});

async function statusOf(id: string): Promise<string> {
  return (await stack.airlock.engine.get(id)).status;
}

async function settled(id: string): Promise<string> {
  const row = await stack.airlock.engine.waitFor(id, (s) => s !== 'pending', 5000, 20);
  return row.status;
}

describe('logging in', () => {
  it('refuses a wrong password and lets the right one in to the queue', async () => {
    await page.goto(`${base}/review`);
    expect(page.url()).toContain('/review/login'); // no session: sent to log in
    await page.fill('input[name=email]', 'alice@example.com');
    await page.fill('input[name=password]', 'not the password');
    await page.click('button[type=submit]');
    await expect(page.textContent('.notice.error')).resolves.toContain('Wrong email or password');
    expect(page.url()).toContain('/review/login');

    await logIn(page, base, 'alice@example.com');
    await expect(page.textContent('h1')).resolves.toContain('Waiting for review');
    await expect(page.textContent('nav .who')).resolves.toBe('alice@example.com');
    const cookie = (await context.cookies()).find((c) => c.name === 'airlock_session');
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe('Lax');
  });
});

describe('deciding from the queue', () => {
  it('approves a held $600 refund from its queue row, and the sandbox gets exactly one refund', async () => {
    const { actionId, chargeId } = await stack.holdRefund(60_000);
    await logIn(page, base, 'alice@example.com');
    const row = page.locator(`#row-${actionId}`);
    await expect(row.textContent()).resolves.toContain('$600.00');
    await expect(row.textContent()).resolves.toContain('support-bot');
    await Promise.all([page.waitForURL(/notice=approved/), row.locator('button.approve').click()]);
    await expect(page.textContent('.notice.ok')).resolves.toContain('Approved');
    expect(await settled(actionId)).toBe('completed');
    const refunds = stack.refundsFor(chargeId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]!['amount']).toBe(60_000);
    expect(await page.locator(`#row-${actionId}`).count()).toBe(0);
  });

  it('rejects a held refund from the queue and nothing reaches the sandbox', async () => {
    const { actionId, chargeId } = await stack.holdRefund(75_000);
    await logIn(page, base, 'bob@example.com');
    await Promise.all([
      page.waitForURL(/notice=rejected/),
      page.locator(`#row-${actionId} button.reject`).click(),
    ]);
    expect(await statusOf(actionId)).toBe('rejected');
    await new Promise((r) => setTimeout(r, 200));
    expect(stack.refundsFor(chargeId)).toHaveLength(0);
  });
});

describe('approving with changes', () => {
  it('approves a $600 refund lowered to $300: one $300 refund in the sandbox and both versions on the receipt', async () => {
    const { actionId, chargeId } = await stack.holdRefund(60_000);
    await logIn(page, base, 'alice@example.com');
    await page.goto(`${base}/review/actions/${actionId}`);
    await page.click('#changes summary');
    await page.fill('#approve-form input[name=amount]', '300.00');
    await page.fill('#approve-form input[name=note]', 'Half refund agreed with the customer');
    await Promise.all([page.waitForURL(/notice=approved/), page.click('#approve-form button.approve')]);
    expect(await settled(actionId)).toBe('completed');

    const refunds = stack.refundsFor(chargeId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]!['amount']).toBe(30_000);

    await page.reload();
    const versions = page.locator('table.versions tr.changed');
    await expect(versions.textContent()).resolves.toMatch(
      /amount\s*60000 \(\$600\.00\)\s*30000 \(\$300\.00\)/,
    );
    await expect(page.textContent('.timeline')).resolves.toContain('Changed by a reviewer');
    await expect(page.textContent('.votes')).resolves.toContain('Half refund agreed with the customer');
    await expect(page.textContent('.receipt-head')).resolves.toContain('$300.00');
  });

  it('refuses to raise the amount and leaves the action held', async () => {
    const { actionId, chargeId } = await stack.holdRefund(60_000);
    await logIn(page, base, 'alice@example.com');
    await page.goto(`${base}/review/actions/${actionId}`);
    await page.click('#changes summary');
    await page.fill('#approve-form input[name=amount]', '900.00');
    await page.click('#approve-form button.approve');
    await expect(page.textContent('.notice.error')).resolves.toContain('only lower the amount');
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(stack.refundsFor(chargeId)).toHaveLength(0);
  });
});

describe('live queue', () => {
  it('shows a newly held action without reloading the page', async () => {
    await logIn(page, base, 'alice@example.com');
    await page.evaluate(() => {
      (window as unknown as { marker: string }).marker = 'same page';
    });
    // Wait until the event stream is open before the hold happens.
    await page.waitForSelector('body[data-live=open]');
    const { actionId } = await stack.holdRefund(88_800);
    await page.waitForSelector(`#row-${actionId}`, { timeout: 5000 });
    await expect(page.textContent(`#row-${actionId}`)).resolves.toContain('$888.00');
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe('same page');
  });
});

describe('CSRF', () => {
  it('refuses an approval whose CSRF token was tampered with, and the action stays held', async () => {
    const { actionId, chargeId } = await stack.holdRefund(61_000);
    await logIn(page, base, 'alice@example.com');
    await page.goto(`${base}/review/actions/${actionId}`);
    await page.evaluate(() => {
      const input = document.querySelector<HTMLInputElement>('#approve-form input[name=_csrf]')!;
      input.value = 'forged-token';
    });
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith(`/review/actions/${actionId}/approve`)),
      page.click('#approve-form button.approve'),
    ]);
    expect(response.status()).toBe(403);
    await expect(page.textContent('.notice.error')).resolves.toContain('not sent by the dashboard');
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(stack.refundsFor(chargeId)).toHaveLength(0);
  });

  it('refuses a form another site posts to Airlock in the logged-in browser', async () => {
    const { actionId } = await stack.holdRefund(62_000);
    await logIn(page, base, 'alice@example.com');
    // A page on another origin that auto-submits a form to Airlock, as a cross-site request forgery would.
    await context.route('http://evil.test/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<form method="post" action="${base}/review/actions/${actionId}/approve"><input name="note" value="pwned"></form>
<script>document.forms[0].submit()</script>`,
      }),
    );
    const evil = await context.newPage();
    const [response] = await Promise.all([
      evil.waitForResponse((r) => r.url().includes(`/review/actions/${actionId}/approve`)),
      evil.goto('http://evil.test/'),
    ]);
    expect([401, 403]).toContain(response.status());
    expect(await statusOf(actionId)).toBe('awaiting_approval');
  });
});

describe('logging out', () => {
  it('ends the session: the old cookie no longer opens the queue', async () => {
    await logIn(page, base, 'alice@example.com');
    const before = (await context.cookies()).find((c) => c.name === 'airlock_session')!;
    await Promise.all([page.waitForURL(/\/review\/login/), page.click('#logout')]);
    await expect(page.textContent('.notice.ok')).resolves.toContain('logged out');
    await page.goto(`${base}/review`);
    expect(page.url()).toContain('/review/login');
    // Replaying the old cookie does not bring the session back: it was deleted on the server.
    const res = await fetch(`${base}/review`, {
      headers: { cookie: `airlock_session=${before.value}` },
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toContain('/review/login');
  });
});
