// The dashboard's Outside Airlock view: outside money events from signed Stripe webhooks, newest first, with time,
// type, amount, source and a link to the object in Stripe; nothing Airlock made and no event that moves no money.
// The first test sends hand-made events because it sets their `created` times (the order); the second has the
// built-in sandbox send its own events for a raw-key refund and a refund made through Airlock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { newId } from '../../src/ids.ts';
import { about, receivedFromSandbox } from '../helpers/sandbox-events.ts';
import { charge, startStackWithPolicy } from '../helpers/stack.ts';
import { deliver, refundEvent, WEBHOOK_SECRET } from '../helpers/stripe-events.ts';
import { FormClient, PASSWORD, type ReviewStack, startReviewStack } from './helpers.ts';

let stack: ReviewStack;
beforeAll(async () => {
  stack = await startReviewStack({ STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET });
});
afterAll(async () => {
  await stack?.close();
});

describe('Outside Airlock', () => {
  it('lists outside events with amount, source and a Stripe link, behind the login', async () => {
    const older = { ...refundEvent({ amount: 1234, refund: 're_page_older' }), created: 1_900_000_000 };
    const newer = {
      id: newId('evt'),
      object: 'event',
      created: 1_900_000_100,
      type: 'payout.created',
      data: { object: { id: 'po_page_auto', object: 'payout', amount: 500_000, currency: 'eur' } },
      request: { id: null, idempotency_key: null },
    };
    const quiet = {
      id: newId('evt'),
      object: 'event',
      created: 1_900_000_200,
      type: 'charge.succeeded',
      data: { object: { id: 'ch_page_quiet', object: 'charge', amount: 100, currency: 'usd' } },
      request: { id: null, idempotency_key: null },
    };
    for (const e of [older, newer, quiet])
      expect((await deliver(stack.airlock.url, JSON.stringify(e))).status).toBe(200);

    const anonymous = new FormClient(stack.airlock.url);
    const refused = await anonymous.request('/review/outside');
    expect(refused.status).toBe(303);

    const client = new FormClient(stack.airlock.url);
    expect(await client.logIn(stack.reviewers.carol.email)).toBe(303);
    const page = await client.request('/review/outside');
    expect(page.status).toBe(200);
    expect(page.text).toContain('id="nav-outside"');
    expect(page.text).toContain('href="https://dashboard.stripe.com/test/refunds/re_page_older"');
    expect(page.text).toContain('href="https://dashboard.stripe.com/test/payouts/po_page_auto"');
    expect(page.text).toContain('$12.34');
    expect(page.text).toContain('outside Airlock (raw key, Dashboard or script)');
    expect(page.text).toContain('Stripe&#39;s automation');
    expect(page.text).not.toContain('ch_page_quiet');
    // Newest first.
    expect(page.text.indexOf('po_page_auto')).toBeLessThan(page.text.indexOf('re_page_older'));
  });

  it('lists a raw-key refund the sandbox reported, and not a refund made through Airlock', async () => {
    const loop = await startStackWithPolicy(['default: allow'], {}, { builtInSandbox: true });
    try {
      const ch = await charge(loop, 50_000);
      const outside = await loop.direct.refunds.create({ charge: ch.id, amount: 2_718 });
      const own = await loop.agent.refunds.create({ charge: ch.id, amount: 1_414 });
      await receivedFromSandbox(loop, 'refund.created', about(outside.id));
      expect((await receivedFromSandbox(loop, 'refund.created', about(own.id))).row.origin).toBe('airlock');

      await createReviewer(loop.airlock.store, 'dana@example.com', {
        passwordHash: await hashPassword(PASSWORD),
      });
      const client = new FormClient(loop.airlock.url);
      expect(await client.logIn('dana@example.com')).toBe(303);
      const page = await client.request('/review/outside');
      expect(page.status).toBe(200);
      expect(page.text).toContain(`href="https://dashboard.stripe.com/test/refunds/${outside.id}"`);
      expect(page.text).toContain('$27.18');
      expect(page.text).not.toContain(own.id);
    } finally {
      await loop.close();
    }
  });
});
