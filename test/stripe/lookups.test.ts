// Look-ups pin an API version, so the fields they read mean what src/stripe/lookups.ts assumes whatever the
// account's default version is; and they act on the same account as the call they value.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOKUP_STRIPE_VERSION, StripeLookups } from '../../src/stripe/lookups.ts';
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
});
