// Regenerates docs/screenshots/*.png from a real Airlock and real Chromium:
//   npx tsx test/review/screenshots.ts
import { mkdirSync } from 'node:fs';
import { launchChromium, logIn, startReviewStack } from './helpers.ts';

async function main(): Promise<void> {
  const stack = await startReviewStack();
  const browser = await launchChromium();
  try {
    const out = new URL('../../docs/screenshots/', import.meta.url).pathname;
    mkdirSync(out, { recursive: true });
    const big = await stack.holdRefund(640_000); // $6,400: two finance approvals
    await stack.holdRefund(60_000);
    await stack.holdRefund(129_900);
    // A customer-attached refund for variety in the queue.
    const cus = await stack.direct.customers.create({ email: 'jane@example.com' });
    const ch = await stack.direct.charges.create({
      amount: 250_000,
      currency: 'usd',
      source: 'tok_visa',
      customer: cus.id,
    });
    await stack.agent.refunds.create({ charge: ch.id, amount: 99_000 }).catch(() => null);

    const context = await browser.newContext({
      viewport: { width: 1360, height: 760 },
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    await logIn(page, stack.airlock.url, 'bob@example.com');
    // One approval of two on the big refund, so the receipt shows a quorum in progress.
    await page.goto(`${stack.airlock.url}/review/actions/${big.actionId}`);
    await page.fill('#approve-form input[name=note]', 'Matches ticket SUP-4411; customer double-charged');
    await page.click('#approve-form button.approve');
    await page.waitForURL(/notice=recorded/);

    await logIn(page, stack.airlock.url, 'alice@example.com');
    await page.screenshot({ path: `${out}queue.png`, fullPage: true });
    await page.goto(`${stack.airlock.url}/review/actions/${big.actionId}`);
    await page.screenshot({ path: `${out}receipt.png`, fullPage: true });
    process.stdout.write(`wrote ${out}queue.png and ${out}receipt.png\n`);
  } finally {
    await browser.close();
    await stack.close();
  }
}

await main();
