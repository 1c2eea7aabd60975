// Stripe's 429 may say when to come back; the dispatcher waits at least that long before retrying the same key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryAfterMs } from '../../src/engine/dispatcher.ts';
import { charge, type Stack, startStack } from '../helpers/stack.ts';

describe('Retry-After', () => {
  it('reads seconds and HTTP dates, and ignores what it cannot read', () => {
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(retryAfterMs(undefined)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  describe('against the sandbox', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ AIRLOCK_DISPATCH_MAX_BACKOFF_MS: '5000' });
    });
    afterAll(async () => {
      await stack.close();
    });

    it('waits out a 429 with Retry-After: 1 and then completes with one refund', async () => {
      const ch = await charge(stack, 5000);
      stack.sandbox.setFaults({ failNext: 1, failStatus: 429, retryAfter: 1, pathPrefix: '/v1/refunds' });
      const refund = await stack.agent.refunds.create({ charge: ch.id, amount: 500 });
      expect(refund.object).toBe('refund');
      const attempts = stack.sandbox
        .requests()
        .filter(
          (r) => r.method === 'POST' && r.path === '/v1/refunds' && r.idempotencyKey?.startsWith('airlock-'),
        );
      expect(attempts).toHaveLength(2);
      expect(attempts[0]!.faulted).toBe(true);
      // A lower bound only: the retry may come later on a slow machine, never sooner.
      expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(950);
      expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);
    });
  });
});
