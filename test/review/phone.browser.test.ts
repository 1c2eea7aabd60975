// The dashboard on a phone: real Chromium at a 390 px wide viewport (an iPhone's), against a real Airlock, a real
// SQLite file and the Stripe sandbox. Set AIRLOCK_WRITE_SCREENSHOTS=1 to rewrite docs/screenshots/phone-*.png.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { useDashboard } from '../helpers/dashboard.ts';
import { tempDir } from '../helpers/stack.ts';
import { logIn } from './helpers.ts';

const ui = useDashboard();
const PHONE = { width: 390, height: 844 };
const SHOTS = process.env['AIRLOCK_WRITE_SCREENSHOTS']
  ? new URL('../../docs/screenshots/', import.meta.url).pathname
  : tempDir();

let phone: BrowserContext | null = null;
afterEach(async () => {
  await phone?.close();
  phone = null;
});

async function phonePage(): Promise<Page> {
  phone = await ui.browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  return phone.newPage();
}

/** The page does not scroll sideways: nothing in it is wider than the screen. */
async function expectNoSidewaysScroll(page: Page): Promise<void> {
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
  expect(clientWidth).toBe(PHONE.width);
  expect(scrollWidth, `page is ${scrollWidth} px wide on a ${clientWidth} px screen`).toBeLessThanOrEqual(
    clientWidth,
  );
}

/** Wholly inside the screen's width, so it can be seen and tapped without scrolling sideways. */
async function expectOnScreen(target: Locator, minHeight = 0): Promise<void> {
  const box = await target.boundingBox();
  expect(box).not.toBeNull();
  expect(box!.x).toBeGreaterThanOrEqual(0);
  expect(box!.x + box!.width).toBeLessThanOrEqual(PHONE.width);
  expect(box!.height).toBeGreaterThanOrEqual(minHeight);
}

async function shoot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const png = await page.screenshot({ fullPage: true });
  // The PNG's width is the viewport's times the device scale: a 390 px screen, nothing wider.
  expect(png.readUInt32BE(16)).toBe(PHONE.width * 2);
  writeFileSync(join(SHOTS, name), png);
}

describe('the queue on a phone', () => {
  it('shows holds as cards with the amount and Approve/Reject on screen, a one-row nav, and no sideways scroll', async () => {
    const big = await ui.stack.holdRefund(640_000);
    await ui.stack.holdRefund(60_000);
    const cus = await ui.stack.direct.customers.create({ email: 'jane@example.com' });
    const ch = await ui.stack.direct.charges.create({
      amount: 250_000,
      currency: 'usd',
      source: 'tok_visa',
      customer: cus.id,
    });
    await ui.stack.agent.refunds.create({ charge: ch.id, amount: 99_000 }).catch(() => null);
    const page = await phonePage();
    await logIn(page, ui.base, 'alice@example.com');
    await expectNoSidewaysScroll(page);

    const rows = page.locator('#queue-rows tr[data-id]');
    expect(await rows.count()).toBeGreaterThanOrEqual(3);
    await expect(page.locator('table.queue thead').isVisible()).resolves.toBe(false);
    for (const row of await rows.all()) {
      // A card, not a table row.
      expect(await row.evaluate((el) => getComputedStyle(el).display)).toBe('block');
      await expectOnScreen(row);
      await expectOnScreen(row.locator('.amount'));
      await expectOnScreen(row.locator('button.approve'), 44);
      await expectOnScreen(row.locator('button.reject'), 44);
    }
    await expect(page.locator(`#row-${big.actionId} .amount`).textContent()).resolves.toBe('$6,400.00');

    // The dark band spans the screen, and its links stay on one row (scrolling inside it) instead of wrapping.
    const nav = await page.locator('nav').boundingBox();
    expect(nav!.x).toBe(0);
    expect(nav!.width).toBe(PHONE.width);
    const tops = await page
      .locator('nav .links a')
      .evaluateAll((as) => as.map((a) => a.getBoundingClientRect().top));
    expect(tops.length).toBeGreaterThanOrEqual(4);
    expect(new Set(tops).size).toBe(1);
    expect(nav!.height).toBeLessThan(110);
    await shoot(page, 'phone-queue.png');
  });

  it('approves a hold with one tap on its card, and the sandbox gets exactly one refund', async () => {
    const { actionId, chargeId } = await ui.stack.holdRefund(61_000);
    const page = await phonePage();
    await logIn(page, ui.base, 'bob@example.com');
    await Promise.all([
      page.waitForURL(/notice=approved/),
      page.locator(`#row-${actionId} button.approve`).tap(),
    ]);
    const row = await ui.stack.airlock.engine.waitFor(actionId, (s) => s !== 'pending', 5000, 20);
    expect(row.status).toBe('completed');
    expect(ui.stack.refundsFor(chargeId)).toHaveLength(1);
    await expectNoSidewaysScroll(page);
  });
});

describe('the receipt and its decision form on a phone', () => {
  it('puts the decision right after why it was held, fits the screen, and records a vote from it', async () => {
    const { actionId } = await ui.stack.holdRefund(640_000); // two finance approvals
    const page = await phonePage();
    await logIn(page, ui.base, 'bob@example.com');
    await page.goto(`${ui.base}/review/actions/${actionId}`);
    await expectNoSidewaysScroll(page);
    const y = async (selector: string) => (await page.locator(selector).first().boundingBox())!.y;
    expect(await y('.panel.why-panel')).toBeLessThan(await y('.panel.decide'));
    expect(await y('.panel.decide')).toBeLessThan(await y('.panel:has(table.kv)'));
    await expectOnScreen(page.locator('#approve-form input[name=note]'));
    await expectOnScreen(page.locator('#approve-form button.approve'), 44);
    await expectOnScreen(page.locator('#reject-form button.reject'), 44);
    // Inputs at 16 px or more, so the phone does not zoom in when one is tapped.
    const fontSize = await page
      .locator('#approve-form input[name=note]')
      .evaluate((el) => getComputedStyle(el).fontSize);
    expect(Number.parseFloat(fontSize)).toBeGreaterThanOrEqual(16);

    await page
      .locator('#approve-form input[name=note]')
      .fill('Matches ticket SUP-4411; customer double-charged');
    await Promise.all([
      page.waitForURL(/notice=recorded/),
      page.locator('#approve-form button.approve').tap(),
    ]);
    expect((await ui.stack.airlock.engine.get(actionId)).status).toBe('awaiting_approval');

    await logIn(page, ui.base, 'alice@example.com');
    await page.goto(`${ui.base}/review/actions/${actionId}`);
    await expect(page.locator('.receipt-head').textContent()).resolves.toContain('1 of 2');
    await expectNoSidewaysScroll(page);
    await shoot(page, 'phone-receipt.png');
  });
});

describe('logging in on a phone', () => {
  it('fits the screen with thumb-sized controls and logs in', async () => {
    const page = await phonePage();
    await page.goto(`${ui.base}/review/login`);
    await expectNoSidewaysScroll(page);
    await expectOnScreen(page.locator('input[name=email]'));
    await expectOnScreen(page.locator('button[type=submit]'), 44);
    await logIn(page, ui.base, 'alice@example.com');
    await expect(page.textContent('h1')).resolves.toContain('Waiting for review');
  });
});

describe('the desktop layout', () => {
  it('keeps the queue a table, the nav one row and the receipt two columns at 1360 px', async () => {
    const { actionId } = await ui.stack.holdRefund(62_000);
    await ui.page.setViewportSize({ width: 1360, height: 760 });
    await logIn(ui.page, ui.base, 'alice@example.com');
    const row = ui.page.locator(`#row-${actionId}`);
    expect(await row.evaluate((el) => getComputedStyle(el).display)).toBe('table-row');
    await expect(ui.page.locator('table.queue thead').isVisible()).resolves.toBe(true);
    expect(await ui.page.locator('nav .links').evaluate((el) => getComputedStyle(el).display)).toBe(
      'contents',
    );
    expect((await ui.page.locator('nav').boundingBox())!.height).toBeLessThan(50);
    await ui.page.goto(`${ui.base}/review/actions/${actionId}`);
    const why = (await ui.page.locator('.panel.why-panel').boundingBox())!;
    const decide = (await ui.page.locator('.panel.decide').boundingBox())!;
    expect(decide.x).toBeGreaterThan(why.x + why.width - 1); // the right-hand column
  });
});
