import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttributeContext, Submission } from '../../src/engine/engine.ts';
import { policyResolvers } from '../../src/engine/resolvers/index.ts';
import { type AttrValue, KNOWN_ATTRIBUTES, parsePolicy, RESOLVERS } from '../../src/policy/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import type { StripeLookups } from '../../src/stripe/lookups.ts';

const NOW = new Date('2024-03-12T15:00:00Z');
const DAY_MS = 86_400_000;
// Handed from the upstream resolver to the risk resolver (which look-ups failed); rules cannot name it.
const BETWEEN_RESOLVERS = new Set(['lookups_failed']);

let store: Store;
beforeEach(async () => {
  store = await openSqliteStore(':memory:');
});
afterEach(async () => {
  await store.close();
});

const policy = parsePolicy(
  [
    'rules:',
    '  - "Review if :refundable_amount: < :amount:"',
    '  - "Review if :customer_age_days: < 7"',
    '  - "Review if :agent_refunds_usd_1h: > 2000"',
    '  - "Review if :risk_score: > 50"',
    '',
  ].join('\n'),
  'p.yaml',
);

function lookups(found: boolean): StripeLookups {
  const fake = {
    charge: async () =>
      found
        ? { createdMs: NOW.getTime() - 3 * DAY_MS, disputed: true, refundable: 500, currency: 'usd' }
        : null,
    customer: async () => (found ? { createdMs: NOW.getTime() - 2 * DAY_MS } : null),
  };
  return fake as unknown as StripeLookups;
}

function context(amount: string | null): AttributeContext {
  const params = { charge: 'ch_1', customer: 'cus_1', ...(amount ? { amount } : {}) };
  const classification = classify({ method: 'POST', path: '/v1/refunds', params });
  const submission: Submission = {
    agent: { id: 'agt_a', name: 'support-bot' },
    method: 'POST',
    path: '/v1/refunds',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: null,
    classification,
  };
  // As the engine's fact source completes it: a full refund's amount and currency from its charge.
  const completed = {
    ...classification,
    amount: classification.amount ?? 500,
    currency: 'usd',
    customer: 'cus_1',
  };
  return { submission, classification: completed, base: {}, policy, now: NOW, store };
}

describe("the engine's resolvers", () => {
  it('set only attributes declared with their own name as the source', async () => {
    for (const found of [true, false]) {
      for (const amount of ['45000', null]) {
        const ctx = context(amount);
        let base: Record<string, AttrValue> = {};
        const resolvers = policyResolvers(lookups(found));
        expect(resolvers).toHaveLength(RESOLVERS.length);
        for (const [i, resolver] of resolvers.entries()) {
          const { attributes } = await resolver.resolve({ ...ctx, base });
          for (const name of Object.keys(attributes)) {
            if (BETWEEN_RESOLVERS.has(name)) continue;
            expect(KNOWN_ATTRIBUTES.lookup(name)?.source, `${name} from ${RESOLVERS[i]}`).toBe(RESOLVERS[i]);
          }
          base = { ...base, ...attributes };
        }
        expect(base).toHaveProperty('risk_score');
        expect(base).toHaveProperty('lookup_failed', !found);
      }
    }
  });
});
