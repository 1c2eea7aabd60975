import { describe, expect, it } from 'vitest';
import { type RiskInput, riskLevel, riskScore } from '../../src/policy/risk.ts';

const base: RiskInput = {
  kind: 'refund.create',
  read: false,
  amountUsd: 20,
  businessHours: true,
  fullRefund: false,
  agentKindUsd1h: 0,
  agentKindCount1h: 0,
  chargeAgeDays: 3,
  chargeDisputed: false,
  customerAgeDays: 400,
  agentReviews: { rejected: 0, decided: 0 },
  failedLookups: [],
};

describe('the risk score', () => {
  it('scores a $15,000 payout at night as highest (75) and at 11:00 as normal (60), naming each factor', () => {
    const night = riskScore({ ...base, kind: 'payout.create', amountUsd: 15_000, businessHours: false });
    expect(night).toEqual({
      score: 75,
      level: 'highest',
      factors: [
        { name: 'kind:payout.create', points: 25 },
        { name: 'amount_usd>=10000', points: 35 },
        { name: 'outside_business_hours', points: 15 },
      ],
    });
    const day = riskScore({ ...base, kind: 'payout.create', amountUsd: 15_000 });
    expect([day.score, day.level]).toEqual([60, 'normal']);
  });

  it('adds velocity only when earlier actions add up, not for one large amount alone', () => {
    expect(riskScore({ ...base, amountUsd: 450, agentKindUsd1h: 1800 }).factors).toContainEqual({
      name: 'velocity:agent_usd_1h>=2000',
      points: 15,
    });
    expect(
      riskScore({ ...base, amountUsd: 450, agentKindUsd1h: 1500 }).factors.map((f) => f.name),
    ).not.toContain('velocity:agent_usd_1h>=2000');
    expect(
      riskScore({ ...base, amountUsd: 5000, agentKindUsd1h: 0 }).factors.map((f) => f.name),
    ).not.toContain('velocity:agent_usd_1h>=2000');
  });

  it('counts failed look-ups, an unknown amount, full refunds, old and disputed charges and rejections', () => {
    const r = riskScore({
      ...base,
      amountUsd: null,
      fullRefund: true,
      chargeAgeDays: 120,
      chargeDisputed: true,
      agentReviews: { rejected: 2, decided: 3 },
      failedLookups: ['customer'],
    });
    expect(r.factors).toEqual([
      { name: 'kind:refund.create', points: 10 },
      { name: 'amount_unknown', points: 15 },
      { name: 'full_refund', points: 5 },
      { name: 'charge_age_days>60', points: 10 },
      { name: 'charge_disputed', points: 20 },
      { name: 'agent_rejection_rate>=50%', points: 20 },
      { name: 'lookup_failed:customer', points: 20 },
    ]);
    expect(r.score).toBe(100);
  });

  it('ignores a rejection rate over fewer than two reviews, and caps the score at 100', () => {
    expect(riskScore({ ...base, agentReviews: { rejected: 1, decided: 1 } }).score).toBe(
      riskScore(base).score,
    );
    const worst = riskScore({
      ...base,
      kind: 'payout.create',
      amountUsd: 50_000,
      businessHours: false,
      agentKindUsd1h: 10_000,
      agentKindCount1h: 20,
      failedLookups: ['charge'],
    });
    expect(worst.score).toBe(100);
  });

  it('scores reads 0 and is deterministic', () => {
    expect(riskScore({ ...base, read: true, kind: 'charge.read' })).toEqual({
      score: 0,
      level: 'normal',
      factors: [],
    });
    expect(riskScore(base)).toEqual(riskScore({ ...base }));
  });

  it('uses Radar levels: elevated from 65, highest from 75', () => {
    expect([riskLevel(64), riskLevel(65), riskLevel(74), riskLevel(75), riskLevel(100)]).toEqual([
      'normal',
      'elevated',
      'elevated',
      'highest',
      'highest',
    ]);
  });
});
