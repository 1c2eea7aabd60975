import { endpointCoverage } from '../stripe/classify.ts';
import type { AttrValue } from './types.ts';

/** One reason a score is what it is, as a reviewer reads it on the decision. */
export interface RiskFactor {
  name: string;
  points: number;
}

export type RiskLevel = 'normal' | 'elevated' | 'highest';

/** Everything the score reads, as plain data; missing facts are null. */
export interface RiskInput {
  kind: string;
  read: boolean;
  amountUsd: number | null;
  businessHours: boolean;
  fullRefund: boolean;
  /** The agent's same-kind totals over the last hour, excluding this action. */
  agentKindUsd1h: number | null;
  agentKindCount1h: number | null;
  chargeAgeDays: number | null;
  chargeDisputed: boolean | null;
  customerAgeDays: number | null;
  /** Reviewer decisions on the agent's actions over the last 7 days. */
  agentReviews: { rejected: number; decided: number } | null;
  /** Names of the upstream look-ups that failed ('charge', 'customer'). */
  failedLookups: readonly string[];
}

const MONEY_KINDS = new Set([
  'refund.create',
  'payout.create',
  'transfer.create',
  'transfer_reversal.create',
  'payment_intent.create',
  'charge.capture',
  'payment_intent.capture',
]);

const KIND_POINTS: Readonly<Record<string, number>> = {
  'payout.create': 25,
  'transfer.create': 25,
  'payout.reverse': 20,
  'stripe.write': 20,
  'refund.create': 10,
  'transfer_reversal.create': 10,
  'subscription.cancel': 10,
  'customer.delete': 10,
  'invoice.void': 10,
};

/** The overlay's money writes (src/stripe/overlay.ts): without points of their own they score as an unknown write. */
const MONEY_WRITES = new Set(endpointCoverage().flatMap((e) => (e.money ? [e.kind] : [])));

function kindPoints(kind: string): number {
  return KIND_POINTS[kind] ?? (MONEY_WRITES.has(kind) ? KIND_POINTS['stripe.write']! : 5);
}

/** Amount steps in USD, highest first. */
const AMOUNT_STEPS: readonly [number, number][] = [
  [10_000, 35],
  [2_000, 25],
  [500, 15],
  [100, 5],
];

export const ELEVATED_FROM = 65;
export const HIGHEST_FROM = 75;

/** Radar's levels: elevated from 65, highest from 75. */
export function riskLevel(score: number): RiskLevel {
  if (score >= HIGHEST_FROM) return 'highest';
  if (score >= ELEVATED_FROM) return 'elevated';
  return 'normal';
}

/**
 * The risk score: a sum of named factors, capped at 100. Deterministic: the same facts always give the same
 * score, so a reviewer (and a policy test) can see exactly why. Reads score 0.
 */
export function riskScore(input: RiskInput): { score: number; level: RiskLevel; factors: RiskFactor[] } {
  const factors: RiskFactor[] = [];
  const add = (name: string, points: number) => factors.push({ name, points });
  if (!input.read) {
    add(`kind:${input.kind}`, kindPoints(input.kind));
    if (input.amountUsd !== null) {
      const step = AMOUNT_STEPS.find(([usd]) => input.amountUsd! >= usd);
      if (step) add(`amount_usd>=${step[0]}`, step[1]);
    } else if (MONEY_KINDS.has(input.kind) || MONEY_WRITES.has(input.kind)) {
      add('amount_unknown', 15);
    }
    // Velocity means earlier actions adding up: one large amount alone is the amount factor's business.
    const prior = input.agentKindUsd1h ?? 0;
    if (prior > 0 && prior + (input.amountUsd ?? 0) >= 2_000) {
      add('velocity:agent_usd_1h>=2000', 15);
    }
    if (input.agentKindCount1h !== null && input.agentKindCount1h + 1 >= 10) {
      add('velocity:agent_count_1h>=10', 10);
    }
    if (!input.businessHours) add('outside_business_hours', 15);
    if (input.fullRefund) add('full_refund', 5);
    if (input.chargeAgeDays !== null && input.chargeAgeDays > 60) add('charge_age_days>60', 10);
    if (input.chargeDisputed === true) add('charge_disputed', 20);
    if (input.customerAgeDays !== null && input.customerAgeDays < 7) add('new_customer', 5);
    const reviews = input.agentReviews;
    if (reviews && reviews.decided >= 2) {
      const rate = reviews.rejected / reviews.decided;
      if (rate >= 0.5) add('agent_rejection_rate>=50%', 20);
      else if (rate >= 0.25) add('agent_rejection_rate>=25%', 10);
    }
    if (input.failedLookups.length > 0) add(`lookup_failed:${input.failedLookups.join(',')}`, 20);
  }
  const score = Math.min(
    100,
    factors.reduce((sum, f) => sum + f.points, 0),
  );
  return { score, level: riskLevel(score), factors };
}

const num = (v: AttrValue): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const bool = (v: AttrValue): boolean | null => (typeof v === 'boolean' ? v : null);

/**
 * The risk input from a decision's attributes, for `policy test` and simulation, where no store or upstream is
 * at hand: whatever the attributes hold is used, the rest is treated as unknown (but not as a failed look-up).
 */
export function riskInputFromAttributes(a: Readonly<Record<string, AttrValue>>): RiskInput {
  const rate = num(a['agent_rejection_rate']);
  return {
    kind: typeof a['kind'] === 'string' ? a['kind'] : 'stripe.write',
    read: a['read'] === true,
    amountUsd: num(a['amount_in_usd']),
    businessHours: a['business_hours'] !== false,
    fullRefund: a['full_refund'] === true,
    agentKindUsd1h: num(a['agent_kind_usd_1h']),
    agentKindCount1h: num(a['agent_kind_count_1h']),
    chargeAgeDays: num(a['charge_age_days']),
    chargeDisputed: bool(a['charge_disputed']),
    customerAgeDays: num(a['customer_age_days']),
    agentReviews: rate === null ? null : { rejected: Math.round(rate * 100), decided: 100 },
    failedLookups: a['lookup_failed'] === true ? ['upstream'] : [],
  };
}
