import type { AttrValue } from '../../policy/index.ts';
import { type RiskInput, riskScore } from '../../policy/risk.ts';
import { reviewVotes, sharedVelocityTotal } from '../../store/velocity.ts';
import { COUNTED_STATUSES } from '../status.ts';
import type { AttributeResolver } from '../types.ts';
import type { ResolveContext } from './velocity.ts';

const HOUR_MS = 3_600_000;
const WEEK_MS = 7 * 86_400_000;

const num = (v: AttrValue): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Gathers what the score reads (the agent's last hour of the same kind, its reviewers' verdicts over the last
 * week, and the upstream facts resolved before it) and sets :risk_score:, :risk_level: and the named factors.
 * Runs after the velocity and upstream resolvers.
 */
export class RiskResolver implements AttributeResolver {
  async resolve(
    ctx: ResolveContext,
  ): Promise<{ attributes: Record<string, AttrValue>; riskFactors: { name: string; points: number }[] }> {
    const a = ctx.base;
    const c = ctx.classification;
    if (c.read) return { attributes: { risk_score: 0, risk_level: 'normal' }, riskFactors: [] };
    const agentId = ctx.submission.agent?.id ?? null;
    let agentKind: { count: number; usd: number } | null = null;
    let reviews: { rejected: number; decided: number } | null = null;
    if (agentId) {
      agentKind = await sharedVelocityTotal(ctx.velocityTotals, ctx.store, {
        scope: 'agent',
        subject: agentId,
        kinds: [c.kind],
        statuses: COUNTED_STATUSES,
        since: new Date(ctx.now.getTime() - HOUR_MS).toISOString(),
        until: ctx.now.toISOString(),
        excludeId: ctx.excludeId ?? null,
      });
      reviews = await reviewVotes(ctx.store, agentId, new Date(ctx.now.getTime() - WEEK_MS).toISOString());
    }
    const failed = a['lookups_failed'];
    // A dispute Stripe reported by webhook counts without a look-up (and when the look-up is not made or failed).
    const disputedByEvent = c.charge ? await ctx.store.stripeEvents.disputed(c.charge) : false;
    const input: RiskInput = {
      kind: c.kind,
      read: false,
      amountUsd: num(a['amount_in_usd']),
      businessHours: a['business_hours'] === true,
      fullRefund: a['full_refund'] === true,
      agentKindUsd1h: agentKind?.usd ?? null,
      agentKindCount1h: agentKind?.count ?? null,
      chargeAgeDays: num(a['charge_age_days']),
      chargeDisputed:
        disputedByEvent || (typeof a['charge_disputed'] === 'boolean' ? a['charge_disputed'] : null),
      customerAgeDays: num(a['customer_age_days']),
      agentReviews: reviews,
      failedLookups: Array.isArray(failed) ? failed : a['lookup_failed'] === true ? ['upstream'] : [],
    };
    const { score, level, factors } = riskScore(input);
    const attributes: Record<string, AttrValue> = { risk_score: score, risk_level: level };
    if (reviews && reviews.decided > 0) {
      attributes['agent_rejection_rate'] = Math.round((reviews.rejected / reviews.decided) * 100) / 100;
    }
    return { attributes, riskFactors: factors };
  }
}
