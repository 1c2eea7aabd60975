// The kill switch in the dashboard, in real Chromium (test/helpers/browser.ts finds it; playwright-core drives it), against a real
// Airlock on a real SQLite file: an admin freezes an agent and the official `stripe` client then gets the frozen
// answer; reviewers outside the admins group neither see the switch nor can press it.
import { expect, it } from 'vitest';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { useDashboard } from '../helpers/dashboard.ts';
import { rejection, stripeAt } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';
import { FormClient, logIn, PASSWORD } from './helpers.ts';

const ui = useDashboard(async (stack) => {
  await createReviewer(stack.airlock.store, 'ops@example.com', {
    passwordHash: await hashPassword(PASSWORD),
    groups: ['admins'],
  });
});

async function chargeOf(amount: number): Promise<string> {
  return (await ui.stack.direct.charges.create({ amount, currency: 'usd', source: 'tok_visa' })).id;
}

it('an admin freezes one agent from the dashboard: its refund gets the frozen answer until unfrozen', async () => {
  await logIn(ui.page, ui.base, 'ops@example.com');
  await Promise.all([ui.page.waitForURL(/\/review\/freeze$/), ui.page.click('#nav-freeze')]);
  await expect(ui.page.textContent('h1')).resolves.toBe('Kill switch');
  await expect(ui.page.textContent('table.freezes tbody')).resolves.toContain('Nothing is frozen.');

  await ui.page.selectOption('#freeze-form select[name=agent]', 'support-bot');
  await ui.page.fill('#freeze-form input[name=reason]', 'incident 9');
  await Promise.all([ui.page.waitForURL(/notice=frozen/), ui.page.click('#freeze')]);
  await expect(ui.page.textContent('.notice.ok')).resolves.toContain('Frozen.');
  const row = ui.page.locator('tr.freeze[data-agent="support-bot"]');
  await expect(row.textContent()).resolves.toContain('incident 9');

  // $100 is under the policy's $500 line: only the freeze stands in its way.
  const ch = await chargeOf(50_000);
  const err = await rejection(ui.stack.agent.refunds.create({ charge: ch, amount: 10_000 }));
  expect(err.type).toBe('StripePermissionError');
  expect(err.statusCode).toBe(403);
  expect(err.code).toBe('action_blocked');
  expect(err.message).toContain('money-out is frozen for this agent (incident 9)');
  expect(ui.stack.refundsFor(ch)).toHaveLength(0);
  // Another agent is not frozen.
  const other = stripeAt(
    (await createAgentKey(ui.stack.airlock.store, 'other-bot')).key,
    ui.stack.airlock.port,
  );
  expect((await other.refunds.create({ charge: ch, amount: 5_000 })).status).toBe('succeeded');

  await Promise.all([ui.page.waitForURL(/notice=unfrozen/), row.locator('button.unfreeze').click()]);
  await expect(ui.page.textContent('table.freezes tbody')).resolves.toContain('Nothing is frozen.');
  const refund = await ui.stack.agent.refunds.create({ charge: ch, amount: 10_000 });
  expect(refund.status).toBe('succeeded');
  expect(ui.stack.refundsFor(ch)).toHaveLength(2);
});

it('an admin freezes every agent from the dashboard, and the ledger names the admin', async () => {
  await logIn(ui.page, ui.base, 'ops@example.com');
  await ui.page.goto(`${ui.base}/review/freeze`);
  await ui.page.selectOption('#freeze-form select[name=agent]', '');
  await Promise.all([ui.page.waitForURL(/notice=frozen/), ui.page.click('#freeze')]);
  await expect(ui.page.textContent('tr.freeze[data-agent=""]')).resolves.toContain('Every agent');

  const ch = await chargeOf(20_000);
  const err = await rejection(ui.stack.agent.refunds.create({ charge: ch, amount: 1_000 }));
  expect(err.code).toBe('action_blocked');
  expect(err.message).toContain('money-out is frozen for every agent');
  expect(ui.stack.refundsFor(ch)).toHaveLength(0);

  await Promise.all([
    ui.page.waitForURL(/notice=unfrozen/),
    ui.page.locator('tr.freeze[data-agent=""] button.unfreeze').click(),
  ]);
  expect((await ui.stack.agent.refunds.create({ charge: ch, amount: 1_000 })).status).toBe('succeeded');
  const events = (await ledger(ui.stack.airlock.store, (e) => e.type.startsWith('freeze.'))).map(
    ({ type, actor }) => ({ type, actor }),
  );
  expect(events.slice(-2)).toEqual([
    { type: 'freeze.set', actor: 'reviewer:ops@example.com' },
    { type: 'freeze.lifted', actor: 'reviewer:ops@example.com' },
  ]);
});

it('a reviewer outside the admins group sees no kill switch, gets 403 on the page and on a valid POST', async () => {
  await logIn(ui.page, ui.base, 'carol@example.com');
  expect(await ui.page.locator('#nav-freeze').count()).toBe(0);
  const res = await ui.page.goto(`${ui.base}/review/freeze`);
  expect(res?.status()).toBe(403);
  await expect(ui.page.textContent('h1')).resolves.toBe('Admins only');

  // Even with her own valid session and CSRF token, the freeze is refused and nothing is frozen.
  const client = new FormClient(ui.base);
  expect(await client.logIn('carol@example.com')).toBe(303);
  const post = await client.request('/review/freeze', {
    form: { _csrf: await client.csrf(), agent: 'support-bot', reason: 'not mine to press' },
  });
  expect(post.status).toBe(403);
  const ch = await chargeOf(20_000);
  expect((await ui.stack.agent.refunds.create({ charge: ch, amount: 1_000 })).status).toBe('succeeded');
});

it('refuses an admin’s freeze posted from another site', async () => {
  const client = new FormClient(ui.base);
  expect(await client.logIn('ops@example.com')).toBe(303);
  const post = await client.request('/review/freeze', {
    form: { _csrf: await client.csrf(), agent: '' },
    headers: { origin: 'https://evil.example' },
  });
  expect(post.status).toBe(403);
  expect(post.text).toContain('posted from another site');
  const ch = await chargeOf(20_000);
  expect((await ui.stack.agent.refunds.create({ charge: ch, amount: 1_000 })).status).toBe('succeeded');
});
