import type { Outcome } from './outcome.ts';
import type { RuleAst } from './parser.ts';

export type { Outcome } from './outcome.ts';
export type PolicyMode = 'enforce' | 'shadow';

export type AttrValue = string | number | boolean | null | undefined | readonly string[];
/** Keys are attribute names without colons: 'kind', 'amount_in_usd'. */
export type Attributes = Readonly<Record<string, AttrValue>>;

export interface EvalInput {
  attributes: Attributes;
  /** What `::key::` reads. */
  metadata: Readonly<Record<string, string>>;
}

export interface RuleOptions {
  /** Distinct reviewers needed; default 1. */
  approvals: number;
  /** null: the policy's `expires_in` applies. */
  expiresInMs: number | null;
  notify: string[];
  reviewers: string[];
  mode: PolicyMode;
  /** Whether the customer hears the outcome (`customer_notice:`); `with_note` adds the reviewers' notes. */
  customerNotice: CustomerNotice;
  /** `remind_before:`: reviewers who have not voted are told again this long before the hold expires. */
  remindBeforeMs: number | null;
  /** `escalate_after:`: this long after the hold began, `escalateTo` become eligible and are told. */
  escalateAfterMs: number | null;
  /** `escalate_to:`, in the syntax of `reviewers:` (emails, `group:name`). */
  escalateTo: string[];
}

export type CustomerNotice = 'none' | 'plain' | 'with_note';

export interface CompiledRule {
  /** 'rule_1', 'rule_2', … in file order, or the rule's `name:`. */
  id: string;
  /** The rule's `name:`, what reviewers read; null for an unnamed rule. */
  name: string | null;
  text: string;
  outcome: Outcome;
  options: RuleOptions;
  /** Where the rule's text starts in the policy file (1-based). */
  line: number;
  column: number;
  ast: RuleAst;
  /** The condition compiled once at load time. */
  test: (input: EvalInput) => boolean;
}

export interface BusinessHours {
  /** 0 = Sunday … 6 = Saturday. */
  days: number[];
  /** Minutes after local midnight; the window is [fromMinutes, toMinutes). */
  fromMinutes: number;
  toMinutes: number;
}

export interface Policy {
  /** 'pol_' + the first 16 hex digits of the SHA-256 of the file text. */
  version: string;
  file: string;
  text: string;
  default: Outcome;
  mode: PolicyMode;
  timezone: string;
  businessHours: BusinessHours;
  rules: CompiledRule[];
  lists: Record<string, string[]>;
  /** USD per major unit, lower-case currency codes. */
  currencyRates: Record<string, number>;
  defaultExpiresInMs: number;
  /** Every :attr: any rule uses, so the caller computes (or looks up upstream) only what is needed. */
  referencedAttributes: ReadonlySet<string>;
  /** Money movements made outside Airlock: which are expected (recorded, not alerted) and who hears of the rest. */
  outsideAirlock: OutsideAirlock;
}

/** Where an outside event came from: Stripe's own automation (no request), or a request Airlock did not make. */
export type OutsideSource = 'automation' | 'outside';

export interface OutsideAirlock {
  /** Event types expected outside Airlock, each from any source or from one only. */
  expected: { type: string; source: OutsideSource | null }[];
  /** `email:` addresses for the alerts; empty: every reviewer. */
  notify: string[];
}

export interface PolicyDecision {
  /** What Airlock enforces. */
  outcome: Outcome;
  /** Texts of all matching rules, in file order. */
  rules: string[];
  matched: CompiledRule[];
  reason: string;
  /** Max `approvals` over the matching rules that produced the enforced outcome; 1 if none. */
  approvalsRequired: number;
  /** Min `expires_in` over those rules, else the policy default. */
  expiresInMs: number;
  notify: string[];
  reviewers: string[];
  /** Max `remind_before` over those rules (the earliest reminder); null when none asks. */
  remindBeforeMs: number | null;
  /** Min `escalate_after` over those rules (the earliest escalation); null when none asks. */
  escalateAfterMs: number | null;
  /** Union of `escalate_to` over the rules that escalate. */
  escalateTo: string[];
  /**
   * Asked for by any rule that produced the outcome; the notes go only when every such rule allows them, since a
   * note written for colleagues must not reach a customer by another rule's say-so.
   */
  customerNotice: CustomerNotice;
  /** True when shadow-mode rules (or global shadow mode) would have been more restrictive than what is enforced. */
  shadow: boolean;
  /** The outcome had shadow rules been enforced; null when no shadow evaluation took part. */
  shadowOutcome: Outcome | null;
}
