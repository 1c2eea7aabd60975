import { describe, expect, it } from 'vitest';
import {
  baseAttributes,
  decide,
  KNOWN_ATTRIBUTES,
  loadPolicyFile,
  minorUnitExponent,
  parsePolicy,
  type RequestFacts,
  toUsd,
} from '../../src/policy/index.ts';

const starter = loadPolicyFile();

// 2024-03-12 is a Tuesday; New York is on EDT (UTC-4) then.
const TUESDAY_2AM_NY = new Date('2024-03-12T06:00:00Z');
const TUESDAY_11AM_NY = new Date('2024-03-12T15:00:00Z');

function facts(overrides: Partial<RequestFacts>): RequestFacts {
  return {
    kind: 'refund.create',
    read: false,
    method: 'POST',
    path: '/v1/refunds',
    amount: null,
    currency: null,
    agent: 'support-bot',
    stripe_account: null,
    customer: null,
    charge: 'ch_1',
    destination: null,
    payment_intent: null,
    ...overrides,
  };
}

function decideStarter(f: Partial<RequestFacts>, now = TUESDAY_11AM_NY) {
  return decide(starter, { attributes: baseAttributes(facts(f), now, starter), metadata: {} });
}

describe('the starter policy', () => {
  it('allows a $20 refund', () => {
    const d = decideStarter({ amount: 2000, currency: 'usd' });
    expect(d.outcome).toBe('allow');
    expect(d.rules).toEqual(["Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"]);
  });

  it('holds a $600 refund for review', () => {
    const d = decideStarter({ amount: 60_000, currency: 'usd' });
    expect(d.outcome).toBe('review');
    expect(d.rules).toEqual(["Review if :kind: = 'refund.create' and :amount_in_usd: > 500"]);
  });

  it('allows a refund of exactly $500 and holds one of $500.01', () => {
    expect(decideStarter({ amount: 50_000, currency: 'usd' }).outcome).toBe('allow');
    expect(decideStarter({ amount: 50_001, currency: 'usd' }).outcome).toBe('review');
  });

  it('holds a refund without an amount (a full refund) by default', () => {
    const d = decideStarter({ amount: null, currency: null });
    expect([d.outcome, d.rules, d.reason]).toEqual([
      'review',
      [],
      'No rule matched; policy default is review',
    ]);
  });

  it('holds a large refund in another currency after conversion', () => {
    expect(decideStarter({ amount: 50_000, currency: 'EUR' }).outcome).toBe('review');
    expect(decideStarter({ amount: 50_000, currency: 'jpy' }).outcome).toBe('allow');
  });

  it('blocks a payout at 02:00 New York time and holds one at 11:00', () => {
    const night = decideStarter(
      { kind: 'payout.create', path: '/v1/payouts', amount: 100, currency: 'usd' },
      TUESDAY_2AM_NY,
    );
    expect(night.outcome).toBe('block');
    expect(night.rules).toEqual([
      "Block if :kind: = 'payout.create' and not :business_hours:",
      "Review if :kind: IN ('payout.create', 'transfer.create')",
    ]);
    const day = decideStarter({ kind: 'payout.create', path: '/v1/payouts', amount: 100, currency: 'usd' });
    expect(day.outcome).toBe('review');
  });

  it('allows a read', () => {
    const d = decideStarter({ kind: 'charge.read', read: true, method: 'GET', path: '/v1/charges/ch_1' });
    expect([d.outcome, d.rules]).toEqual(['allow', ['Allow if :read:']]);
  });

  it('holds subscription cancellations, customer deletions, transfers and unknown writes', () => {
    for (const kind of ['subscription.cancel', 'customer.delete', 'transfer.create', 'stripe.write']) {
      expect({ kind, outcome: decideStarter({ kind }).outcome }).toEqual({ kind, outcome: 'review' });
    }
  });

  it('only references attributes the caller can compute', () => {
    expect([...starter.referencedAttributes].sort()).toEqual([
      'amount_in_usd',
      'business_hours',
      'kind',
      'read',
    ]);
    for (const name of starter.referencedAttributes) expect(KNOWN_ATTRIBUTES.has(name)).toBe(true);
  });
});

describe('business hours and the clock', () => {
  it('reads the time in the policy timezone', () => {
    const night = baseAttributes(facts({}), TUESDAY_2AM_NY, starter);
    expect([night.hour, night.weekday, night.business_hours]).toEqual([2, 'tue', false]);
    const day = baseAttributes(facts({}), TUESDAY_11AM_NY, starter);
    expect([day.hour, day.weekday, day.business_hours]).toEqual([11, 'tue', true]);
  });

  it('follows daylight saving time', () => {
    // 2024-01-16 is a Tuesday on EST (UTC-5): 13:30Z is 08:30 local, 14:00Z is 09:00.
    expect(baseAttributes(facts({}), new Date('2024-01-16T13:30:00Z'), starter).business_hours).toBe(false);
    expect(baseAttributes(facts({}), new Date('2024-01-16T14:00:00Z'), starter).business_hours).toBe(true);
  });

  it('uses the local weekday when it differs from UTC, and treats the end of the window as outside', () => {
    // Friday 17:59 local is inside; 18:00 is not; Saturday is never inside.
    const fri = baseAttributes(facts({}), new Date('2024-03-15T21:59:00Z'), starter);
    expect([fri.weekday, fri.business_hours]).toEqual(['fri', true]);
    expect(baseAttributes(facts({}), new Date('2024-03-15T22:00:00Z'), starter).business_hours).toBe(false);
    // Saturday 01:00 UTC is still Friday 21:00 in New York.
    const late = baseAttributes(facts({}), new Date('2024-03-16T01:00:00Z'), starter);
    expect([late.weekday, late.hour, late.business_hours]).toEqual(['fri', 21, false]);
    const sat = baseAttributes(facts({}), new Date('2024-03-16T15:00:00Z'), starter);
    expect([sat.weekday, sat.business_hours]).toEqual(['sat', false]);
  });

  it('honours a different timezone and window', () => {
    const tokyo = parsePolicy(
      'timezone: Asia/Tokyo\nbusiness_hours: { days: [sat], from: "00:00", to: "24:00" }\n',
      'p.yaml',
    );
    // 2024-03-15T16:00Z is Saturday 01:00 in Tokyo.
    const a = baseAttributes(facts({}), new Date('2024-03-15T16:00:00Z'), tokyo);
    expect([a.weekday, a.hour, a.business_hours]).toEqual(['sat', 1, true]);
  });
});

describe('currencies', () => {
  it('knows zero- and three-decimal currencies', () => {
    expect(['jpy', 'KRW', 'vnd', 'xof', 'clp'].map(minorUnitExponent)).toEqual([0, 0, 0, 0, 0]);
    expect(['bhd', 'KWD', 'jod', 'omr', 'tnd'].map(minorUnitExponent)).toEqual([3, 3, 3, 3, 3]);
    expect(['usd', 'eur', 'gbp'].map(minorUnitExponent)).toEqual([2, 2, 2]);
  });

  it('converts minor units to dollars with the policy rates', () => {
    const rates = starter.currencyRates;
    expect(toUsd(1000, 'jpy', rates)).toBeCloseTo(6.7, 2);
    expect(toUsd(1000, 'kwd', rates)).toBeCloseTo(3.25, 2);
    expect(toUsd(60_000, 'usd', rates)).toBe(600);
    expect(toUsd(10_000, 'EUR', rates)).toBe(108);
    expect(toUsd(100, 'xyz', rates)).toBeNull();
  });

  it('computes amount_in_usd, and leaves it missing without a currency or a rate', () => {
    expect(baseAttributes(facts({ amount: 1000, currency: 'JPY' }), TUESDAY_11AM_NY, starter)).toMatchObject({
      amount: 1000,
      currency: 'jpy',
      amount_in_usd: 6.7,
    });
    expect(
      baseAttributes(facts({ amount: 1000, currency: null }), TUESDAY_11AM_NY, starter).amount_in_usd,
    ).toBeNull();
    expect(
      baseAttributes(facts({ amount: 1000, currency: 'xyz' }), TUESDAY_11AM_NY, starter).amount_in_usd,
    ).toBeNull();
  });

  it('lets the policy override a rate', () => {
    const policy = parsePolicy('currency_rates: { jpy: 0.01 }\n', 'p.yaml');
    expect(
      baseAttributes(facts({ amount: 1000, currency: 'jpy' }), TUESDAY_11AM_NY, policy).amount_in_usd,
    ).toBe(10);
  });
});
