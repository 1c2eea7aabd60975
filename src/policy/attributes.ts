import { toUsd } from './currency.ts';
import type { AttrValue, Policy } from './types.ts';
import { parseVelocityName, VELOCITY_PATTERN } from './velocity.ts';

export type AttrType = 'number' | 'string' | 'boolean' | 'string[]';

/**
 * The resolvers the engine runs after the attributes computed here, in this order: risk reads what the others found.
 * An attribute that needs I/O (Stripe, the store) names one as its `source`; the engine implements each, by name,
 * in src/engine/resolvers/.
 */
export const RESOLVERS = ['upstream', 'velocity', 'risk'] as const;
export type ResolverName = (typeof RESOLVERS)[number];

/**
 * Where a value comes from, so the caller knows what it must compute before deciding: `request` and `clock` values
 * are computed here, without I/O (`baseAttributes`); the others by the resolver of that name.
 */
export type AttrSource = 'request' | 'clock' | ResolverName;

/** What the linter and the evaluator know of an attribute: its type, and where its value comes from. */
export interface AttributeSpec {
  type: AttrType;
  source: AttrSource;
  description: string;
}

export interface AttributePattern {
  pattern: RegExp;
  spec: AttributeSpec;
  /** How the docs write the family's names: '<scope>_<what>_<usd|count>_<window>'. */
  name?: string;
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

export const VELOCITY_ATTRIBUTE: AttributePattern = {
  pattern: VELOCITY_PATTERN,
  name: '<scope>_<what>_<usd|count>_<window>',
  accepts: (name) => parseVelocityName(name) !== null,
  spec: {
    type: 'number',
    source: 'velocity',
    description:
      'count or USD sum over a sliding window, excluding this action: :agent_refunds_usd_1h:, :customer_refunds_count_24h:, :account_payouts_usd_7d:',
  },
};

/** What the attributes computed here read: the request's facts, the policy, and `now` on its wall clock. */
export interface BaseInput {
  facts: RequestFacts;
  policy: Policy;
  /** The request's currency, lower case. */
  currency: string | null;
  /** The currency a generic action's caller named, lower case. */
  declaredCurrency: string | null;
  /** `now` in the policy's time zone: weekday (0 = Sunday), hour and minute. */
  local: { day: number; hour: number; minute: number };
}

type ValueOf<T extends AttrType> = {
  number: number;
  string: string;
  boolean: boolean;
  'string[]': readonly string[];
}[T];

/** An attribute computed here, from the request or the clock: `value` returns its type, or null when missing. */
type ComputedAttribute = {
  [T in AttrType]: AttributeSpec & {
    type: T;
    source: 'request' | 'clock';
    value: (input: BaseInput) => ValueOf<T> | null;
  };
}[AttrType];

/** An attribute that needs I/O: the resolver named by `source` sets it (or leaves it missing). */
type ResolvedAttribute = AttributeSpec & { source: ResolverName };

export type AttributeDeclaration = ComputedAttribute | ResolvedAttribute;

const toUsdOrNull = (amount: number | null | undefined, currency: string | null, policy: Policy) =>
  amount != null && currency !== null ? toUsd(amount, currency, policy.currencyRates) : null;

/**
 * Every attribute a rule may name, declared once: its type (the linter checks rules against it, the evaluator reads
 * values by it), its documentation (docs/policies.md's table is generated from it) and where its value comes from:
 * a pure `value` for the request and the clock, else the name of the engine's resolver that sets it. A new
 * attribute is one entry here (plus, if it needs I/O, a line in its resolver). Families of names, such as the
 * velocity windows, are patterns: VELOCITY_ATTRIBUTE.
 */
export const ATTRIBUTES = {
  kind: {
    type: 'string',
    source: 'request',
    description: "what the action does, e.g. 'refund.create'",
    value: ({ facts }) => facts.kind,
  },
  read: {
    type: 'boolean',
    source: 'request',
    description: 'true for calls that change nothing',
    value: ({ facts }) => facts.read,
  },
  method: {
    type: 'string',
    source: 'request',
    description: "HTTP method, upper case: 'POST'",
    value: ({ facts }) => facts.method,
  },
  path: {
    type: 'string',
    source: 'request',
    description: "request path: '/v1/refunds'",
    value: ({ facts }) => facts.path,
  },
  amount: {
    type: 'number',
    source: 'request',
    description:
      'amount in minor units (cents; yen for JPY); for a refund or capture, Stripe fills in what the request leaves out',
    value: ({ facts }) => facts.amount,
  },
  currency: {
    type: 'string',
    source: 'request',
    description: "lower-case ISO code: 'usd'",
    value: ({ currency }) => currency,
  },
  amount_in_usd: {
    type: 'number',
    source: 'request',
    description: 'amount converted to US dollars with the policy currency rates',
    value: ({ facts, currency, policy }) => toUsdOrNull(facts.amount, currency, policy),
  },
  agent: {
    type: 'string',
    source: 'request',
    description: 'name of the calling agent',
    value: ({ facts }) => facts.agent,
  },
  stripe_account: {
    type: 'string',
    source: 'request',
    description: 'connected account the call acts on (Stripe-Context, else Stripe-Account)',
    value: ({ facts }) => facts.stripe_account,
  },
  stripe_context: {
    type: 'string',
    source: 'request',
    description: 'the Stripe-Context header as sent',
    value: ({ facts }) => facts.stripe_context ?? null,
  },
  declared_kind: {
    type: 'string',
    source: 'request',
    description: "the kind a generic action's caller named (a claim, not a derived fact)",
    value: ({ facts }) => facts.declared?.kind ?? null,
  },
  declared_amount: {
    type: 'number',
    source: 'request',
    description: "the amount a generic action's caller named, in minor units (a claim)",
    value: ({ facts }) => facts.declared?.amount ?? null,
  },
  declared_currency: {
    type: 'string',
    source: 'request',
    description: "the currency a generic action's caller named (a claim)",
    value: ({ declaredCurrency }) => declaredCurrency,
  },
  declared_amount_in_usd: {
    type: 'number',
    source: 'request',
    description: 'the caller-named amount in US dollars (a claim)',
    value: ({ facts, declaredCurrency, policy }) =>
      toUsdOrNull(facts.declared?.amount, declaredCurrency, policy),
  },
  customer: {
    type: 'string',
    source: 'request',
    description: "customer id (for a refund or capture, also from the charge's customer)",
    value: ({ facts }) => facts.customer,
  },
  charge: {
    type: 'string',
    source: 'request',
    description: 'charge id',
    value: ({ facts }) => facts.charge,
  },
  destination: {
    type: 'string',
    source: 'request',
    description: 'payout or transfer destination',
    value: ({ facts }) => facts.destination,
  },
  payment_intent: {
    type: 'string',
    source: 'request',
    description: 'payment intent id',
    value: ({ facts }) => facts.payment_intent,
  },
  hour: {
    type: 'number',
    source: 'clock',
    description: 'hour of the day 0–23 in the policy timezone',
    value: ({ local }) => local.hour,
  },
  weekday: {
    type: 'string',
    source: 'clock',
    description: "day of the week in the policy timezone: 'mon' … 'sun'",
    value: ({ local }) => WEEKDAYS[local.day] ?? null,
  },
  business_hours: {
    type: 'boolean',
    source: 'clock',
    description: 'inside the policy business hours',
    value: ({ local, policy }) => {
      const bh = policy.businessHours;
      const minutes = local.hour * 60 + local.minute;
      return bh.days.includes(local.day) && minutes >= bh.fromMinutes && minutes < bh.toMinutes;
    },
  },
  full_refund: {
    type: 'boolean',
    source: 'upstream',
    description:
      'a refund that names no amount, so refunds whatever remains of its charge (known with the look-ups)',
  },
  refundable_amount: {
    type: 'number',
    source: 'upstream',
    description: "what remains refundable on the refund's charge, in minor units",
  },
  charge_age_days: {
    type: 'number',
    source: 'upstream',
    description: 'days since the charge being refunded or captured was created',
  },
  charge_disputed: {
    type: 'boolean',
    source: 'upstream',
    description: 'the charge being refunded has a dispute',
  },
  customer_age_days: {
    type: 'number',
    source: 'upstream',
    description: "days since the action's customer was created (looked up only when a rule uses it)",
  },
  lookup_failed: {
    type: 'boolean',
    source: 'upstream',
    description: 'an upstream look-up this decision needed failed',
  },
  agent_rejection_rate: {
    type: 'number',
    source: 'risk',
    description: "share of the agent's reviewed actions rejected in the last 7 days, 0–1",
  },
  risk_score: {
    type: 'number',
    source: 'risk',
    description: 'risk score 0–100, from named factors (see the decision)',
  },
  risk_level: {
    type: 'string',
    source: 'risk',
    description: "'normal', 'elevated' (65 and up) or 'highest' (75 and up)",
  },
} satisfies Record<string, AttributeDeclaration>;

export type AttributeName = keyof typeof ATTRIBUTES;

const DECLARED: Readonly<Record<string, AttributeDeclaration>> = ATTRIBUTES;

/** The names rules may use, with their types: ATTRIBUTES and the velocity family. */
export const KNOWN_ATTRIBUTES = new AttributeRegistry(DECLARED, [VELOCITY_ATTRIBUTE]);

/** The attributes computed here, in declaration order. */
const COMPUTED = Object.entries(DECLARED).flatMap(([name, d]) =>
  'value' in d ? [{ name, value: d.value }] : [],
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

/**
 * The request and clock attributes every decision can use: each ATTRIBUTES entry with a `value`. Upstream, velocity
 * and risk attributes come later, from the engine's resolvers.
 */
export function baseAttributes(facts: RequestFacts, now: Date, policy: Policy): Record<string, AttrValue> {
  const input: BaseInput = {
    facts,
    policy,
    currency: facts.currency === null ? null : facts.currency.toLowerCase(),
    declaredCurrency: facts.declared?.currency ? facts.declared.currency.toLowerCase() : null,
    local: localTime(now, policy.timezone),
  };
  const out: Record<string, AttrValue> = {};
  for (const { name, value } of COMPUTED) out[name] = value(input);
  return out;
}
