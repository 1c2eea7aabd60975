import { toUsd } from './currency.ts';
import type { AttrValue, Policy } from './types.ts';
import { parseVelocityName, VELOCITY_PATTERN } from './velocity.ts';

export type AttrType = 'number' | 'string' | 'boolean' | 'string[]';

/** Where a value comes from, so the caller knows what it must compute before deciding. */
export type AttrSource = 'request' | 'clock' | 'upstream' | 'velocity' | 'risk';

export interface AttributeSpec {
  type: AttrType;
  source: AttrSource;
  description: string;
}

export interface AttributePattern {
  pattern: RegExp;
  spec: AttributeSpec;
  /** A further check a name matching `pattern` must pass (say, a window of at most 90 days). */
  accepts?: (name: string) => boolean;
}

/**
 * The attribute names a rule may use, with their types. Exact names, plus patterns for families such as
 * velocity counters (/^agent_[a-z_]+_(usd|count)_\d+[hd]$/) that are registered with `with()`.
 */
export class AttributeRegistry {
  readonly #exact: ReadonlyMap<string, AttributeSpec>;
  readonly #patterns: readonly AttributePattern[];

  constructor(exact: Record<string, AttributeSpec>, patterns: readonly AttributePattern[] = []) {
    this.#exact = new Map(Object.entries(exact));
    this.#patterns = patterns;
  }

  lookup(name: string): AttributeSpec | undefined {
    return (
      this.#exact.get(name) ??
      this.#patterns.find((p) => p.pattern.test(name) && (p.accepts?.(name) ?? true))?.spec
    );
  }

  has(name: string): boolean {
    return this.lookup(name) !== undefined;
  }

  /** Exact names, in registration order. */
  names(): string[] {
    return [...this.#exact.keys()];
  }

  patterns(): readonly AttributePattern[] {
    return this.#patterns;
  }

  /** A new registry with more names or patterns; this one is unchanged. */
  with(exact: Record<string, AttributeSpec>, patterns: readonly AttributePattern[] = []): AttributeRegistry {
    return new AttributeRegistry({ ...Object.fromEntries(this.#exact), ...exact }, [
      ...this.#patterns,
      ...patterns,
    ]);
  }
}

const req = (type: AttrType, description: string): AttributeSpec => ({
  type,
  source: 'request',
  description,
});
const clock = (type: AttrType, description: string): AttributeSpec => ({
  type,
  source: 'clock',
  description,
});

const upstream = (type: AttrType, description: string): AttributeSpec => ({
  type,
  source: 'upstream',
  description,
});
const risk = (type: AttrType, description: string): AttributeSpec => ({ type, source: 'risk', description });

export const VELOCITY_ATTRIBUTE: AttributePattern = {
  pattern: VELOCITY_PATTERN,
  accepts: (name) => parseVelocityName(name) !== null,
  spec: {
    type: 'number',
    source: 'velocity',
    description:
      'count or USD sum over a sliding window, excluding this action: :agent_refunds_usd_1h:, :customer_refunds_count_24h:, :account_payouts_usd_7d:',
  },
};

export const KNOWN_ATTRIBUTES = new AttributeRegistry(
  {
    kind: req('string', "what the action does, e.g. 'refund.create'"),
    read: req('boolean', 'true for calls that change nothing'),
    method: req('string', "HTTP method, upper case: 'POST'"),
    path: req('string', "request path: '/v1/refunds'"),
    amount: req('number', 'amount in minor units (cents; yen for JPY)'),
    currency: req('string', "lower-case ISO code: 'usd'"),
    amount_in_usd: req('number', 'amount converted to US dollars with the policy currency rates'),
    agent: req('string', 'name of the calling agent'),
    stripe_account: req('string', 'connected account the call acts on (Stripe-Context, else Stripe-Account)'),
    stripe_context: req('string', 'the Stripe-Context header as sent'),
    declared_kind: req('string', "the kind a generic action's caller named (a claim, not a derived fact)"),
    declared_amount: req('number', "the amount a generic action's caller named, in minor units (a claim)"),
    declared_currency: req('string', "the currency a generic action's caller named (a claim)"),
    declared_amount_in_usd: req('number', 'the caller-named amount in US dollars (a claim)'),
    customer: req('string', 'customer id'),
    charge: req('string', 'charge id'),
    destination: req('string', 'payout or transfer destination'),
    payment_intent: req('string', 'payment intent id'),
    hour: clock('number', 'hour of the day 0–23 in the policy timezone'),
    weekday: clock('string', "day of the week in the policy timezone: 'mon' … 'sun'"),
    business_hours: clock('boolean', 'inside the policy business hours'),
    full_refund: req('boolean', 'a refund that names no amount, so refunds whatever remains'),
    refundable_amount: upstream('number', "what remains refundable on the refund's charge, in minor units"),
    charge_age_days: upstream('number', 'days since the charge being refunded or captured was created'),
    charge_disputed: upstream('boolean', 'the charge being refunded has a dispute'),
    customer_age_days: upstream('number', "days since the action's customer was created"),
    lookup_failed: upstream('boolean', 'an upstream look-up this decision needed failed'),
    agent_rejection_rate: risk(
      'number',
      "share of the agent's reviewed actions rejected in the last 7 days, 0–1",
    ),
    risk_score: risk('number', 'risk score 0–100, from named factors (see the decision)'),
    risk_level: risk('string', "'normal', 'elevated' (65 and up) or 'highest' (75 and up)"),
  },
  [VELOCITY_ATTRIBUTE],
);

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** What the classifier knows about one request. */
export interface RequestFacts {
  kind: string;
  read: boolean;
  method: string;
  path: string;
  amount: number | null;
  currency: string | null;
  agent: string | null;
  stripe_account: string | null;
  stripe_context?: string | null;
  /** What a generic action's caller stated; never the derived kind or amount. */
  declared?: { kind: string | null; amount: number | null; currency: string | null } | null;
  customer: string | null;
  charge: string | null;
  destination: string | null;
  payment_intent: string | null;
}

// Building an Intl formatter costs far more than using one.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timezone, f);
  }
  return f;
}

const SHORT_DAY: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

// Every time zone's offset is a whole number of minutes, so one UTC minute is one wall-clock minute everywhere:
// formatting once per minute and zone serves every decision in it.
let lastLocal: {
  minute: number;
  timezone: string;
  value: { day: number; hour: number; minute: number };
} | null = null;

/** Weekday (0 = Sunday), hour and minute of `now` on the wall clock of `timezone`. */
export function localTime(now: Date, timezone: string): { day: number; hour: number; minute: number } {
  const epochMinute = Math.floor(now.getTime() / 60_000);
  if (lastLocal && lastLocal.minute === epochMinute && lastLocal.timezone === timezone)
    return lastLocal.value;
  const value = formatLocalTime(now, timezone);
  lastLocal = { minute: epochMinute, timezone, value };
  return value;
}

function formatLocalTime(now: Date, timezone: string): { day: number; hour: number; minute: number } {
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const part of formatterFor(timezone).formatToParts(now)) {
    if (part.type === 'weekday') day = SHORT_DAY[part.value] ?? 0;
    else if (part.type === 'hour') hour = Number(part.value) % 24;
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return { day, hour, minute };
}

/** The request and clock attributes every decision can use. Upstream, velocity and risk attributes come later. */
export function baseAttributes(facts: RequestFacts, now: Date, policy: Policy): Record<string, AttrValue> {
  const currency = facts.currency === null ? null : facts.currency.toLowerCase();
  const amountInUsd =
    facts.amount !== null && currency !== null ? toUsd(facts.amount, currency, policy.currencyRates) : null;
  const declaredCurrency = facts.declared?.currency ? facts.declared.currency.toLowerCase() : null;
  const { day, hour, minute } = localTime(now, policy.timezone);
  const minutes = hour * 60 + minute;
  const bh = policy.businessHours;
  return {
    kind: facts.kind,
    read: facts.read,
    method: facts.method,
    path: facts.path,
    amount: facts.amount,
    currency,
    amount_in_usd: amountInUsd,
    agent: facts.agent,
    stripe_account: facts.stripe_account,
    stripe_context: facts.stripe_context ?? null,
    declared_kind: facts.declared?.kind ?? null,
    declared_amount: facts.declared?.amount ?? null,
    declared_currency: declaredCurrency,
    declared_amount_in_usd:
      facts.declared?.amount != null && declaredCurrency !== null
        ? toUsd(facts.declared.amount, declaredCurrency, policy.currencyRates)
        : null,
    customer: facts.customer,
    charge: facts.charge,
    destination: facts.destination,
    payment_intent: facts.payment_intent,
    hour,
    weekday: WEEKDAYS[day],
    business_hours: bh.days.includes(day) && minutes >= bh.fromMinutes && minutes < bh.toMinutes,
  };
}
