// Issue 20 in real Chromium (test/helpers/browser.ts finds it; playwright-core drives it), against a real Airlock on a
// real SQLite file and a real upstream: a reviewer lowers a held generic call's amount on its receipt, and the
// upstream receives the caller's body with only that amount changed, once.
import { afterAll, expect, it } from 'vitest';
import { createAgentKey } from '../../src/auth/credentials.ts';
import { useDashboard } from '../helpers/dashboard.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { ledger } from '../helpers/store-reads.ts';
import { logIn } from './helpers.ts';

const ROUTE = {
  method: 'POST',
  path: '/v1/orders/:id/refund',
  kind: 'refund.create',
  amount: '/refund/amount',
  currency: '/refund/currency',
};

let upstream: Receiver;
let agentKey: string;
const ui = useDashboard(
  async (stack) => {
    upstream = await startReceiver();
    agentKey = (await createAgentKey(stack.airlock.store, 'shop-bot')).key;
  },
  {
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([{ host: '127.0.0.1', allow_private: true, routes: [ROUTE] }]),
  },
);

afterAll(async () => {
  await upstream?.close();
});

/** The caller's body, laid out as the caller wrote it: spacing, key order and the other fields are its own. */
const body = (amount: number) =>
  `{\n  "order": "ord_42",\n  "refund": { "currency": "usd",  "amount": ${amount} },\n  "note": "café, 2 of 3"\n}`;

async function holdGenericRefund(amount: number): Promise<string> {
  const res = await fetch(`${ui.base}/api/actions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${agentKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: `${upstream.url}/v1/orders/42/refund`, method: 'POST', body: body(amount) }),
  });
  const action = (await res.json()) as { id: string; status: string; amount: number };
  expect(action).toMatchObject({ status: 'awaiting_approval', amount });
  return action.id;
}

const sentFor = (id: string) =>
  upstream.received.filter((r) => r.headers['idempotency-key'] === `airlock-${id}`);

it('lowers a generic call’s amount on the receipt: the upstream gets the caller’s body with only the amount changed', async () => {
  const id = await holdGenericRefund(60_000);
  await logIn(ui.page, ui.base, 'alice@example.com');
  await ui.page.goto(`${ui.base}/review/actions/${id}`);
  await ui.page.click('#changes summary');
  // A generic call's body is the caller's: only its amount can change.
  expect(await ui.page.locator('#approve-form input[name=reason]').count()).toBe(0);
  expect(await ui.page.locator('#approve-form textarea[name=metadata]').count()).toBe(0);
  await ui.page.fill('#approve-form input[name=amount]', '250.00');
  await ui.page.fill('#approve-form input[name=note]', 'Two of three items came back');
  await Promise.all([ui.page.waitForURL(/notice=approved/), ui.page.click('#approve-form button.approve')]);

  const row = await ui.stack.airlock.engine.waitFor(id, (s) => s === 'completed' || s === 'failed', 5000, 20);
  expect(row.status).toBe('completed');
  const sent = sentFor(id);
  expect(sent).toHaveLength(1);
  expect(sent[0]!.body).toBe(body(25_000));

  await ui.page.reload();
  await expect(ui.page.textContent('.receipt-head')).resolves.toContain('$250.00');
  await expect(ui.page.textContent('table.versions tr.changed')).resolves.toContain('"amount": 25000');
  await expect(ui.page.textContent('.timeline')).resolves.toContain('Changed by a reviewer');
  await expect(ui.page.textContent('.votes')).resolves.toContain('Two of three items came back');
  const modified = await ledger(
    ui.stack.airlock.store,
    (e) => e.action_id === id && e.type === 'action.modified',
  );
  expect(modified).toHaveLength(1);
  expect(JSON.parse(modified[0]!.data).changes).toEqual({ amount: 25_000 });
});

it('refuses to raise a generic call’s amount on the receipt, and nothing is sent', async () => {
  const id = await holdGenericRefund(70_000);
  await logIn(ui.page, ui.base, 'bob@example.com');
  await ui.page.goto(`${ui.base}/review/actions/${id}`);
  await ui.page.click('#changes summary');
  await ui.page.fill('#approve-form input[name=amount]', '900.00');
  await ui.page.click('#approve-form button.approve');
  await expect(ui.page.textContent('.notice.error')).resolves.toContain('only lower the amount');
  expect((await ui.stack.airlock.engine.get(id)).status).toBe('awaiting_approval');
  expect(sentFor(id)).toEqual([]);
});
