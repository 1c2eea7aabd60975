import type { AttrValue } from '../../policy/index.ts';
import { parseVelocityName, type VelocitySpec } from '../../policy/velocity.ts';
import { sharedVelocityTotal } from '../../store/velocity.ts';
import { onAccountOf } from '../account.ts';
import { COUNTED_STATUSES } from '../status.ts';
import type { AttributeContext, AttributeResolver } from '../types.ts';

/** Simulation re-decides stored actions, which must not count themselves. */
export type ResolveContext = AttributeContext & { excludeId?: string | null };

/** The agent (by id), customer or account a velocity total is about; undefined when the action has none. */
function subjectOf(ctx: AttributeContext, spec: VelocitySpec): string | null | undefined {
  switch (spec.scope) {
    case 'agent':
      return ctx.submission.agent?.id ?? undefined;
    case 'customer':
      return ctx.classification.customer ?? undefined;
    case 'account':
      return null;
  }
}

/**
 * Computes the velocity attributes the policy names (and only those), one indexed query per distinct
 * (scope, what, window). An action without an agent or customer leaves that scope's attributes missing.
 */
export class VelocityResolver implements AttributeResolver {
  async resolve(ctx: ResolveContext): Promise<{ attributes: Record<string, AttrValue> }> {
    const attributes: Record<string, AttrValue> = {};
    if (ctx.classification.read) return { attributes };
    const groups = new Map<string, VelocitySpec[]>();
    for (const name of ctx.policy.referencedAttributes) {
      const spec = parseVelocityName(name);
      if (!spec) continue;
      const key = `${spec.scope}|${spec.subject}|${spec.windowMs}`;
      groups.set(key, [...(groups.get(key) ?? []), spec]);
    }
    for (const specs of groups.values()) {
      const spec = specs[0]!;
      const subject = subjectOf(ctx, spec);
      if (subject === undefined) continue;
      const total = await sharedVelocityTotal(ctx.velocityTotals, ctx.store, {
        scope: spec.scope,
        subject,
        account: onAccountOf(ctx.submission),
        statuses: COUNTED_STATUSES,
        kinds:
          spec.kinds === 'writes'
            ? 'writes'
            : spec.kinds === 'same_kind'
              ? [ctx.classification.kind]
              : spec.kinds.kinds,
        since: new Date(ctx.now.getTime() - spec.windowMs).toISOString(),
        until: ctx.now.toISOString(),
        excludeId: ctx.excludeId ?? null,
      });
      for (const s of specs) attributes[s.name] = s.measure === 'usd' ? total.usd : total.count;
    }
    return { attributes };
  }
}
