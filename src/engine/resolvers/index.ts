import type { StripeLookups } from '../../stripe/lookups.ts';
import type { AttributeResolver } from '../types.ts';
import { RiskResolver } from './risk.ts';
import { UpstreamResolver } from './upstream.ts';
import { VelocityResolver } from './velocity.ts';

export { RiskResolver } from './risk.ts';
export { UpstreamResolver } from './upstream.ts';
export { type ResolveContext, VelocityResolver } from './velocity.ts';

/** The resolvers every decision runs, in order: risk reads what the others found. */
export function policyResolvers(lookups: StripeLookups | null): AttributeResolver[] {
  return [new UpstreamResolver(lookups), new VelocityResolver(), new RiskResolver()];
}
