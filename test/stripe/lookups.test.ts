// Look-ups pin an API version, so the fields they read mean what src/stripe/lookups.ts assumes whatever the
// account's default version is; and they act on the same account as the call they value.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextLookups, LOOKUP_STRIPE_VERSION, StripeLookups } from '../../src/stripe/lookups.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { StripeUpstream } from '../../src/stripe/upstream.ts';
import { ROOT } from '../helpers/process.ts';
import { stripeAt } from '../helpers/stack.ts';

describe('upstream look-ups', () => {
  let sandbox: Sandbox;
  let upstream: StripeUpstream;
  beforeAll(async () => {
    sandbox = await startSandbox();
    upstream = new StripeUpstream(sandbox.url, 'sk_test_lookups');
  });
  afterAll(async () => {
    await upstream.close();
    await sandbox.close();
  });

  it('pin the API version of the stripe client the project is tested with', () => {
    const text = readFileSync(join(ROOT, 'node_modules', 'stripe', 'esm', 'apiVersion.js'), 'utf8');
    expect(text).toContain(`ApiVersion = '${LOOKUP_STRIPE_VERSION}'`);
  });

  it('send the pinned version and the caller account headers, and read fresh each time', async () => {
    const direct = stripeAt('sk_test_direct', sandbox.port);
    const ch = await direct.charges.create(
      { amount: 50_000, currency: 'usd', source: 'tok_visa' },
      { stripeAccount: 'acct_lookup' },
    );
    const lookups = new StripeLookups(upstream);
    const scope = { stripeAccount: null, stripeContext: 'acct_lookup' };
    expect((await lookups.refundable(ch.id, scope))?.amount).toBe(50_000);
    const reads = sandbox.requests().filter((r) => r.method === 'GET');
    expect(reads.length).toBeGreaterThan(0);
    for (const r of reads) {
      expect(r.stripeVersion).toBe(LOOKUP_STRIPE_VERSION);
      expect(r.stripeContext).toBe('acct_lookup');
    }
    // A refund made behind the look-ups' back is seen by the very next one: nothing is cached between requests.
    await direct.refunds.create({ charge: ch.id, amount: 20_000 }, { stripeAccount: 'acct_lookup' });
    expect((await lookups.refundable(ch.id, scope))?.amount).toBe(30_000);
    // The platform cannot see the connected account's charge, so the look-up says nothing rather than guess.
    expect(await lookups.refundable(ch.id, { stripeAccount: null, stripeContext: null })).toBeNull();
  });

  describe("the reviewers' context look-ups", () => {
    const platform = { stripeAccount: null, stripeContext: null };

    it('reuse an answer for the TTL and ask again after it, keep at most maxEntries, and never write', async () => {
      const direct = stripeAt('sk_test_direct', sandbox.port);
      const chs = await Promise.all(
        [1, 2, 3].map(() => direct.charges.create({ amount: 1_000, currency: 'usd', source: 'tok_visa' })),
      );
      let now = 1_000_000;
      const lookups = new ContextLookups(upstream, { ttlMs: 60_000, maxEntries: 2, now: () => now });
      const gets = () => sandbox.requests().filter((r) => r.path === `/v1/charges/${chs[0]!.id}`).length;
      const before = sandbox.requests().length;
      expect(await lookups.charge(chs[0]!.id, platform)).toMatchObject({
        ok: true,
        value: { amount: 1_000 },
      });
      const first = gets();
      await direct.refunds.create({ charge: chs[0]!.id, amount: 400 });
      now += 59_999;
      // Within the TTL: the cached answer, no call.
      expect(await lookups.charge(chs[0]!.id, platform)).toMatchObject({ value: { amountRefunded: 0 } });
      expect(gets()).toBe(first);
      now += 1;
      expect(await lookups.charge(chs[0]!.id, platform)).toMatchObject({ value: { amountRefunded: 400 } });
      expect(gets()).toBe(first + 1);
      await lookups.charge(chs[1]!.id, platform);
      await lookups.charge(chs[2]!.id, platform);
      expect(lookups.size).toBe(2);
      // The oldest went: asking for it again is a call.
      await lookups.charge(chs[0]!.id, platform);
      expect(gets()).toBe(first + 2);
      // Besides the test's own refund, only reads reached the sandbox.
      const mine = sandbox
        .requests()
        .slice(before)
        .filter((r) => r.path !== '/v1/refunds');
      expect(mine.length).toBe(first + 4);
      expect(mine.every((r) => r.method === 'GET')).toBe(true);
    });

    it('answer a failure in words and do not keep it: a missing object, a 500, no answer in time', async () => {
      const lookups = new ContextLookups(upstream, { timeoutMs: 300 });
      expect(await lookups.customer('cus_missing', platform)).toMatchObject({
        ok: false,
        error: expect.stringMatching(/^Stripe answered 404: No such customer/),
      });
      const direct = stripeAt('sk_test_direct', sandbox.port);
      const cus = await direct.customers.create({ email: 'x@example.com' });
      sandbox.setFaults({ failNext: 1, failStatus: 500, pathPrefix: '/v1/customers' });
      expect(await lookups.customer(cus.id, platform)).toMatchObject({
        ok: false,
        error: expect.stringMatching(/^Stripe answered 500/),
      });
      // Not cached: the next call asks again and gets the customer.
      expect(await lookups.customer(cus.id, platform)).toMatchObject({
        ok: true,
        value: { email: 'x@example.com' },
      });
      sandbox.setFaults({ delayMs: 5_000, pathPrefix: '/v1/charges' });
      try {
        expect(await lookups.customerHistory(cus.id, platform)).toEqual({
          ok: false,
          error: 'no answer within 300 ms',
        });
      } finally {
        sandbox.clearFaults();
      }
      expect(await lookups.customer('../v1/refunds', platform)).toMatchObject({ ok: false });
    });
  });
});
