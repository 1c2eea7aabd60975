// Five seconds on the receipt (issue 19, section 5), in real Chromium against a real Airlock and the Stripe sandbox:
// a held $600 refund by a named rule, with a stated reason, for a customer with an earlier refund and a dispute. Who,
// how much, why and what happened before must all be in the first screen, on a desktop and at 390 px.
// UPDATE_SCREENSHOTS=1 (or AIRLOCK_WRITE_SCREENSHOTS=1, as the phone test takes) rewrites
// docs/screenshots/receipt-context.png and phone-receipt-context.png.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/stack.ts';
import { holdWithReason, REASON, RULE_NAME, seedCustomer, startContextStack } from './context-seed.ts';
import { launchChromium, logIn, type ReviewStack } from './helpers.ts';

const SHOTS =
  process.env['UPDATE_SCREENSHOTS'] || process.env['AIRLOCK_WRITE_SCREENSHOTS']
    ? new URL('../../docs/screenshots/', import.meta.url).pathname
    : tempDir();

let stack: ReviewStack;
let browser: Browser;
let actionId: string;

beforeAll(async () => {
  stack = await startContextStack();
  const jane = await seedCustomer(stack);
  actionId = await holdWithReason(stack, jane);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

/** What a reviewer must read without scrolling, and what it must say. */
const FIRST_SCREEN: [selector: string, text: string | RegExp][] = [
  ['.receipt-head .amount', '$600.00'],
  ['[data-fact="Customer"] dd', /^Jane Doe <jane@example\.com> · customer for 2 years/],
  ['[data-fact="Charge"] dd', /^\$700\.00 on \d{4}-\d{2}-\d{2} · \$100\.00 already refunded$/],
  ['[data-fact="Stated reason"] dd', `“${REASON}” (Airlock-Reason)`],
  ['[data-fact="Held by"] dd', RULE_NAME],
  ['[data-fact="Before, in Airlock"] dd', '1 earlier refund: 1 completed ($50.00) · no disputes'],
  ['[data-fact="Before, in Stripe"] dd', 'refunds on 2 of 3 charges ($150.00) · 1 disputed charge'],
];

async function expectFirstScreen(page: Page, viewport: { width: number; height: number }): Promise<void> {
  for (const [selector, text] of FIRST_SCREEN) {
    const el = page.locator(selector);
    const content = (await el.textContent())?.trim() ?? '';
    if (typeof text === 'string') expect(content, selector).toBe(text);
    else expect(content, selector).toMatch(text);
    expect(await el.isVisible(), selector).toBe(true);
    const box = (await el.boundingBox())!;
    expect(box.y, `${selector} starts below the top`).toBeGreaterThanOrEqual(0);
    expect(box.y + box.height, `${selector} ends inside the first screen`).toBeLessThanOrEqual(
      viewport.height,
    );
    expect(box.x + box.width, `${selector} fits the width`).toBeLessThanOrEqual(viewport.width);
  }
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
  expect(scrollWidth).toBeLessThanOrEqual(clientWidth);
}

async function shoot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, name), await page.screenshot());
}

describe('the receipt of a refund with its context', () => {
  it('puts who, how much, why and what happened before in the first screen of a desktop', async () => {
    const viewport = { width: 1360, height: 760 };
    const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
    try {
      const page = await context.newPage();
      await logIn(page, stack.airlock.url, 'alice@example.com');
      await page.goto(`${stack.airlock.url}/review/actions/${actionId}`);
      await expectFirstScreen(page, viewport);
      // The why-panel names the rule too, with its text.
      await expect(page.locator('.why-panel .rule-name').textContent()).resolves.toBe(RULE_NAME);
      await shoot(page, 'receipt-context.png');
    } finally {
      await context.close();
    }
  });

  it('does the same at 390 px, without sideways scrolling', async () => {
    const viewport = { width: 390, height: 844 };
    const context = await browser.newContext({
      viewport,
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const page = await context.newPage();
      await logIn(page, stack.airlock.url, 'alice@example.com');
      await page.goto(`${stack.airlock.url}/review/actions/${actionId}`);
      await expectFirstScreen(page, viewport);
      await shoot(page, 'phone-receipt-context.png');
    } finally {
      await context.close();
    }
  });
});
