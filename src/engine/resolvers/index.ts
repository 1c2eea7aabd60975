import { RESOLVERS, type ResolverName } from '../../policy/index.ts';
import type { StripeLookups } from '../../stripe/lookups.ts';
import type { AttributeResolver } from '../types.ts';
import { RiskResolver } from './risk.ts';
import { UpstreamResolver } from './upstream.ts';
import { VelocityResolver } from './velocity.ts';

export { RiskResolver } from './risk.ts';
export { UpstreamResolver } from './upstream.ts';
export { type ResolveContext, VelocityResolver } from './velocity.ts';

/**
 * The resolvers every decision runs, in the order the policy's RESOLVERS gives (risk reads what the others found).
 * Each is the implementation of the name an attribute's declaration gives as its `source`: a new name there fails
 * to compile here until it has one.
 */
export function policyResolvers(lookups: StripeLookups | null): AttributeResolver[] {
  const byName = {
    upstream: new UpstreamResolver(lookups),
    velocity: new VelocityResolver(),
    risk: new RiskResolver(),
  } satisfies Record<ResolverName, AttributeResolver>;
  return RESOLVERS.map((name) => byName[name]);
}
