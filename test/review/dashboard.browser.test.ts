// The reviewer dashboard in real Chromium (test/helpers/browser.ts finds it; playwright-core drives it) against a real Airlock,
// a real SQLite file and the Stripe sandbox.
import { describe, expect, it } from 'vitest';
import { useDashboard } from '../helpers/dashboard.ts';
import { logIn } from './helpers.ts';

const ui = useDashboard();

async function statusOf(id: string): Promise<string> {
  return (await ui.stack.airlock.engine.get(id)).status;
}

async function settled(id: string): Promise<string> {
  const row = await ui.stack.airlock.engine.waitFor(id, (s) => s !== 'pending', 5000, 20);
  return row.status;
}

describe('logging in', () => {
  it('refuses a wrong password and lets the right one in to the queue', async () => {
    await ui.page.goto(`${ui.base}/review`);
    expect(ui.page.url()).toContain('/review/login'); // no session: sent to log in
    await ui.page.fill('input[name=email]', 'alice@example.com');
    await ui.page.fill('input[name=password]', 'not the password');
    await ui.page.click('button[type=submit]');
    await expect(ui.page.textContent('.notice.error')).resolves.toContain('Wrong email or password');
    expect(ui.page.url()).toContain('/review/login');

    await logIn(ui.page, ui.base, 'alice@example.com');
    await expect(ui.page.textContent('h1')).resolves.toContain('Waiting for review');
    await expect(ui.page.textContent('nav .who')).resolves.toBe('alice@example.com');
    const cookie = (await ui.context.cookies()).find((c) => c.name === 'airlock_session');
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe('Lax');
  });
});

describe('deciding from the queue', () => {
  it('approves a held $600 refund from its queue row, and the sandbox gets exactly one refund', async () => {
    const { actionId, chargeId } = await ui.stack.holdRefund(60_000);
    await logIn(ui.page, ui.base, 'alice@example.com');
    const row = ui.page.locator(`#row-${actionId}`);
    await expect(row.textContent()).resolves.toContain('$600.00');
    await expect(row.textContent()).resolves.toContain('support-bot');
    await Promise.all([ui.page.waitForURL(/notice=approved/), row.locator('button.approve').click()]);
    await expect(ui.page.textContent('.notice.ok')).resolves.toContain('Approved');
    expect(await settled(actionId)).toBe('completed');
    const refunds = ui.stack.refundsFor(chargeId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]!['amount']).toBe(60_000);
    expect(await ui.page.locator(`#row-${actionId}`).count()).toBe(0);
  });

  it('rejects a held refund from the queue and nothing reaches the sandbox', async () => {
    const { actionId, chargeId } = await ui.stack.holdRefund(75_000);
    await logIn(ui.page, ui.base, 'bob@example.com');
    await Promise.all([
      ui.page.waitForURL(/notice=rejected/),
      ui.page.locator(`#row-${actionId} button.reject`).click(),
    ]);
    expect(await statusOf(actionId)).toBe('rejected');
    await new Promise((r) => setTimeout(r, 200));
    expect(ui.stack.refundsFor(chargeId)).toHaveLength(0);
  });
});

describe('approving with changes', () => {
  it('approves a $600 refund lowered to $300: one $300 refund in the sandbox and both versions on the receipt', async () => {
    const { actionId, chargeId } = await ui.stack.holdRefund(60_000);
    await logIn(ui.page, ui.base, 'alice@example.com');
    await ui.page.goto(`${ui.base}/review/actions/${actionId}`);
    await ui.page.click('#changes summary');
    await ui.page.fill('#approve-form input[name=amount]', '300.00');
    await ui.page.fill('#approve-form input[name=note]', 'Half refund agreed with the customer');
    await Promise.all([ui.page.waitForURL(/notice=approved/), ui.page.click('#approve-form button.approve')]);
    expect(await settled(actionId)).toBe('completed');

    const refunds = ui.stack.refundsFor(chargeId);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]!['amount']).toBe(30_000);

    await ui.page.reload();
    const versions = ui.page.locator('table.versions tr.changed');
    await expect(versions.textContent()).resolves.toMatch(
      /amount\s*60000 \(\$600\.00\)\s*30000 \(\$300\.00\)/,
    );
    await expect(ui.page.textContent('.timeline')).resolves.toContain('Changed by a reviewer');
    await expect(ui.page.textContent('.votes')).resolves.toContain('Half refund agreed with the customer');
    await expect(ui.page.textContent('.receipt-head')).resolves.toContain('$300.00');
  });

  it('refuses to raise the amount and leaves the action held', async () => {
    const { actionId, chargeId } = await ui.stack.holdRefund(60_000);
    await logIn(ui.page, ui.base, 'alice@example.com');
    await ui.page.goto(`${ui.base}/review/actions/${actionId}`);
    await ui.page.click('#changes summary');
    await ui.page.fill('#approve-form input[name=amount]', '900.00');
    await ui.page.click('#approve-form button.approve');
    await expect(ui.page.textContent('.notice.error')).resolves.toContain('only lower the amount');
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(ui.stack.refundsFor(chargeId)).toHaveLength(0);
  });
});

describe('live queue', () => {
  it('shows a newly held action without reloading the page', async () => {
    await logIn(ui.page, ui.base, 'alice@example.com');
    await ui.page.evaluate(() => {
      (window as unknown as { marker: string }).marker = 'same page';
    });
    // Wait until the event stream is open before the hold happens.
    await ui.page.waitForSelector('body[data-live=open]');
    const { actionId } = await ui.stack.holdRefund(88_800);
    await ui.page.waitForSelector(`#row-${actionId}`, { timeout: 5000 });
    await expect(ui.page.textContent(`#row-${actionId}`)).resolves.toContain('$888.00');
    expect(await ui.page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe('same page');
  });
});

describe('CSRF', () => {
  it('refuses an approval whose CSRF token was tampered with, and the action stays held', async () => {
    const { actionId, chargeId } = await ui.stack.holdRefund(61_000);
    await logIn(ui.page, ui.base, 'alice@example.com');
    await ui.page.goto(`${ui.base}/review/actions/${actionId}`);
    await ui.page.evaluate(() => {
      const input = document.querySelector<HTMLInputElement>('#approve-form input[name=_csrf]')!;
      input.value = 'forged-token';
    });
    const [response] = await Promise.all([
      ui.page.waitForResponse((r) => r.url().endsWith(`/review/actions/${actionId}/approve`)),
      ui.page.click('#approve-form button.approve'),
    ]);
    expect(response.status()).toBe(403);
    await expect(ui.page.textContent('.notice.error')).resolves.toContain('not sent by the dashboard');
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(ui.stack.refundsFor(chargeId)).toHaveLength(0);
  });

  it('refuses a form another site posts to Airlock in the logged-in browser', async () => {
    const { actionId } = await ui.stack.holdRefund(62_000);
    await logIn(ui.page, ui.base, 'alice@example.com');
    // A page on another origin that auto-submits a form to Airlock, as a cross-site request forgery would.
    await ui.context.route('http://evil.test/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<form method="post" action="${ui.base}/review/actions/${actionId}/approve"><input name="note" value="pwned"></form>
<script>document.forms[0].submit()</script>`,
      }),
    );
    const evil = await ui.context.newPage();
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
    await logIn(ui.page, ui.base, 'alice@example.com');
    const before = (await ui.context.cookies()).find((c) => c.name === 'airlock_session')!;
    await Promise.all([ui.page.waitForURL(/\/review\/login/), ui.page.click('#logout')]);
    await expect(ui.page.textContent('.notice.ok')).resolves.toContain('logged out');
    await ui.page.goto(`${ui.base}/review`);
    expect(ui.page.url()).toContain('/review/login');
    // Replaying the old cookie does not bring the session back: it was deleted on the server.
    const res = await fetch(`${ui.base}/review`, {
      headers: { cookie: `airlock_session=${before.value}` },
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toContain('/review/login');
  });
});
