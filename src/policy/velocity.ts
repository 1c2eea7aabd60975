/**
 * Velocity attributes: how much one agent, one customer or the whole account has done recently.
 * Named `<scope>_<what>_<usd|count>_<window>`, e.g. `agent_refunds_usd_1h`, `customer_refunds_count_24h`,
 * `account_payouts_usd_7d`. Any window from 1m to 90d can be named; the value never includes the action
 * being decided.
 */
import { MS_PER_UNIT } from '../time.ts';

export type VelocityScope = 'agent' | 'customer' | 'account';
export type VelocityMeasure = 'usd' | 'count';

/** What a velocity attribute counts: a fixed set of kinds, every write, or the kind of the action being decided. */
export type VelocityKinds = { kinds: readonly string[] } | 'writes' | 'same_kind';

export const VELOCITY_SUBJECTS: Readonly<Record<string, VelocityKinds>> = {
  refunds: { kinds: ['refund.create'] },
  payouts: { kinds: ['payout.create'] },
  transfers: { kinds: ['transfer.create'] },
  transfer_reversals: { kinds: ['transfer_reversal.create'] },
  cancellations: { kinds: ['subscription.cancel'] },
  customer_deletions: { kinds: ['customer.delete'] },
  money_out: { kinds: ['refund.create', 'payout.create', 'transfer.create'] },
  writes: 'writes',
  kind: 'same_kind',
};

export const MAX_WINDOW_MS = 90 * 86_400_000;

export interface VelocitySpec {
  name: string;
  scope: VelocityScope;
  subject: string;
  kinds: VelocityKinds;
  measure: VelocityMeasure;
  windowMs: number;
}

const subjects = Object.keys(VELOCITY_SUBJECTS).join('|');

export const VELOCITY_PATTERN = new RegExp(
  `^(agent|customer|account)_(${subjects})_(usd|count)_([1-9]\\d{0,4})([mhd])$`,
);

/** The parts of a velocity attribute name, or null when it is not one (or its window is over 90 days). */
export function parseVelocityName(name: string): VelocitySpec | null {
  const m = VELOCITY_PATTERN.exec(name);
  if (!m) return null;
  const windowMs = Number(m[4]) * MS_PER_UNIT[m[5] as 'm' | 'h' | 'd'];
  if (windowMs > MAX_WINDOW_MS) return null;
  return {
    name,
    scope: m[1] as VelocityScope,
    subject: m[2]!,
    kinds: VELOCITY_SUBJECTS[m[2]!]!,
    measure: m[3] as VelocityMeasure,
    windowMs,
  };
}
