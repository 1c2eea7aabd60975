// Deciding: the facts a request leaves to Stripe completed, the attributes gathered, the policy applied, and the
// kill switch over all of it. Submission decides new actions with it; review and dispatch decide stored ones again.
import { type AttrValue, baseAttributes, decide, type Policy } from '../../policy/index.ts';
import { parseVelocityName } from '../../policy/velocity.ts';
import type { ActionRow, Store } from '../../store/store.ts';
import type { VelocityTotals } from '../../store/velocity.ts';
import { type Classification, classify, statedFacts } from '../../stripe/classify.ts';
import type { Params } from '../../stripe/params.ts';
import { onAccountOf, scopeOf } from '../account.ts';
import type { Completed } from '../bind.ts';
import { frozenReason } from '../freeze.ts';
import type { EngineResources } from '../resources.ts';
import type { ActionMode, Evaluation, StoredDecision, Submission } from '../types.ts';

export class EvaluationSystem {
  constructor(private readonly r: EngineResources) {}

  /** Completes the facts a request leaves to Stripe, gathers attributes and applies the policy. */
  async evaluate(
    sub: Submission,
    store: Store = this.r.store,
    opts: { excludeId?: string } = {},
  ): Promise<Evaluation> {
    const policy = this.r.policy;
    const now = this.r.clock.now();
    const memo = sub.memo ?? new Map();
    const facts = this.r.facts;
    const classification: Completed =
      sub.completed ??
      (facts ? await facts.complete(sub.classification, scopeOf(sub), memo) : sub.classification);
    const c = classification;
    const base = baseAttributes(
      {
        kind: c.kind,
        read: c.read,
        method: sub.method,
        path: sub.path,
        amount: c.amount,
        currency: c.currency,
        agent: sub.agent?.name ?? null,
        stripe_account: onAccountOf(sub),
        stripe_context: sub.stripeContext ?? null,
        declared: sub.declared ?? null,
        customer: c.customer,
        charge: c.charge,
        destination: c.destination,
        payment_intent: c.payment_intent,
      },
      now,
      policy,
    );
    let attributes: Record<string, AttrValue> = base;
    const riskFactors: { name: string; points: number }[] = [];
    const velocityTotals: VelocityTotals = new Map();
    for (const resolver of this.r.resolvers) {
      const extra = await resolver.resolve({
        submission: sub,
        classification,
        base: attributes,
        policy,
        now,
        store,
        excludeId: opts.excludeId ?? null,
        velocityTotals,
        memo,
      });
      attributes = { ...attributes, ...extra.attributes };
      if (extra.riskFactors) riskFactors.push(...extra.riskFactors);
    }
    const decision = decide(policy, { attributes, metadata: metadataOf(sub.params) });
    // The kill switch overrides the policy for every write, and is recorded as the decision's reason.
    const frozen = c.read ? null : await this.r.freezes.find(store, sub.agent?.id ?? null);
    if (frozen) {
      decision.outcome = 'block';
      decision.reason = frozenReason(frozen);
    }
    const risk = attributes['risk_score'];
    const stored: StoredDecision = {
      outcome: decision.outcome,
      rules: decision.rules,
      ...(decision.matched.some((r) => r.name !== null)
        ? { rule_names: decision.matched.map((r) => r.name) }
        : {}),
      policy_version: policy.version,
      risk_score: typeof risk === 'number' ? risk : null,
      risk_factors: riskFactors,
      reason: decision.reason,
      shadow_outcome: decision.shadowOutcome,
      notify: decision.notify,
      reviewers: decision.reviewers,
      ...(decision.outcome === 'review' && decision.remindBeforeMs !== null
        ? { remind_before_ms: decision.remindBeforeMs }
        : {}),
      ...(decision.outcome === 'review' && decision.escalateAfterMs !== null
        ? { escalate_after_ms: decision.escalateAfterMs, escalate_to: decision.escalateTo }
        : {}),
      ...(decision.customerNotice === 'none' ? {} : { customer_notice: decision.customerNotice }),
    };
    return { decision, classification, stored };
  }

  /** A stored action as a submission again (to decide it anew), with the params and facts given. */
  async resubmission(action: ActionRow, params: Params, classification: Classification): Promise<Submission> {
    const agent = action.agent_id ? ((await this.r.store.getAgent(action.agent_id)) ?? null) : null;
    return {
      agent,
      mode: action.mode as ActionMode,
      method: action.method,
      path: action.path,
      params,
      stripeAccount: action.stripe_account,
      stripeContext: action.stripe_context,
      stripeVersion: action.stripe_version,
      idempotencyKey: null,
      classification,
    };
  }

  /** The stored request evaluated again, as it will be sent, under the policy loaded now. */
  async redecide(action: ActionRow): Promise<Evaluation> {
    const params = JSON.parse(action.params) as Params;
    const amount = action.amount === null ? null : Number(action.amount);
    const classification: Classification =
      action.mode === 'stripe'
        ? classify({ method: action.method, path: action.path, params })
        : { ...statedFacts(action.kind, amount, action.currency, { customer: action.customer }) };
    const sub = await this.resubmission(action, params, classification);
    // A generic action keeps the facts its route derived, and its caller's claims, which can only make the decision
    // stricter; a Stripe call is completed from Stripe again.
    if (action.mode !== 'stripe') {
      sub.completed = classification;
      sub.declared = declaredClaims(action);
    }
    return this.evaluate(sub, this.r.store, { excludeId: action.id });
  }
}

/** What a generic action's caller claimed about it (kind, amount, currency), kept in its details. */
export function declaredClaims(action: ActionRow): Submission['declared'] {
  if (!action.details) return null;
  return (JSON.parse(action.details) as { declared?: Submission['declared'] }).declared ?? null;
}

const HOUR_MS = 3_600_000;

/** How far back the policy's windows reach: its longest velocity window, and the risk score's hour. */
export function historyWindowMs(policy: Policy): number {
  let longest = HOUR_MS;
  for (const name of policy.referencedAttributes) {
    const spec = parseVelocityName(name);
    if (spec && spec.windowMs > longest) longest = spec.windowMs;
  }
  return longest;
}

/** Velocity windows and the risk score read the agent's earlier actions. */
export function readsAgentHistory(policy: Policy): boolean {
  for (const name of policy.referencedAttributes) {
    if (name.startsWith('risk_') || parseVelocityName(name) !== null) return true;
  }
  return false;
}

function metadataOf(params: Params): Record<string, string> {
  const m = params['metadata'];
  const out: Record<string, string> = {};
  if (m && typeof m === 'object' && !Array.isArray(m)) {
    for (const [k, v] of Object.entries(m)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}
