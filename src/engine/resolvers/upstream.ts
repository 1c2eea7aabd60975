import type { AttrValue } from '../../policy/index.ts';
import type { StripeLookups } from '../../stripe/lookups.ts';
import { scopeOf } from '../account.ts';
import type { AttributeContext, AttributeResolver } from '../types.ts';

const DAY_MS = 86_400_000;
const CHARGE_KINDS = new Set(['refund.create', 'charge.capture']);

/**
 * Facts only Stripe knows: the age and dispute status of the charge being refunded, what remains refundable,
 * the customer's age. Read fresh from Stripe, once per decision. A look-up that fails leaves its attributes
 * missing (every comparison on them is false) and sets :lookup_failed:, which the risk score counts.
 */
export class UpstreamResolver implements AttributeResolver {
  constructor(private readonly lookups: StripeLookups | null) {}

  async resolve(ctx: AttributeContext): Promise<{ attributes: Record<string, AttrValue> }> {
    const c = ctx.classification;
    const attributes: Record<string, AttrValue> = {};
    if (c.read) return { attributes };
    const failed: string[] = [];
    if (c.kind === 'refund.create') {
      attributes['full_refund'] = ctx.submission.classification.amount === null;
      // The refund's amount or currency is still unknown: completing it from the charge failed.
      if (c.amount === null || c.currency === null) failed.push('charge');
    }
    const wanted = ctx.policy.referencedAttributes;
    if (CHARGE_KINDS.has(c.kind) && c.charge && this.lookups && !failed.includes('charge')) {
      const charge = await this.lookups.charge(c.charge, scopeOf(ctx.submission), ctx.memo, {
        refundable: wanted.has('refundable_amount'),
      });
      if (charge) {
        attributes['charge_age_days'] = Math.floor((ctx.now.getTime() - charge.createdMs) / DAY_MS);
        attributes['charge_disputed'] = charge.disputed;
        if (charge.refundable !== null) attributes['refundable_amount'] = charge.refundable;
      } else {
        failed.push('charge');
      }
    }
    if (c.customer && this.lookups && wanted.has('customer_age_days')) {
      const customer = await this.lookups.customer(c.customer, scopeOf(ctx.submission), ctx.memo);
      if (customer)
        attributes['customer_age_days'] = Math.floor((ctx.now.getTime() - customer.createdMs) / DAY_MS);
      else failed.push('customer');
    }
    attributes['lookup_failed'] = failed.length > 0;
    if (failed.length > 0) attributes['lookups_failed'] = failed;
    return { attributes };
  }
}
