// The engine's vocabulary: what callers hand it and what it hands back. The systems and the Engine facade share it.
import type { AttrValue, Policy, PolicyDecision } from '../policy/index.ts';
import type { Agent } from '../store/credentials.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { VelocityTotals } from '../store/velocity.ts';
import type { Classification } from '../stripe/classify.ts';
import type { ContextLookups, FactSource, LookupMemo } from '../stripe/lookups.ts';
import type { Params } from '../stripe/params.ts';
import type { Completed } from './bind.ts';
import type { Clock } from './clock.ts';
import type { Status } from './status.ts';

export type { Agent };

export interface Reviewer {
  id: string;
  email: string;
  groups?: string[];
}

export type ActionMode = 'stripe' | 'http' | 'decide';

export interface Submission {
  /** The requesting agent; null when a reviewer asked for the action in the dashboard (see requestedBy). */
  agent: Agent | null;
  requestedBy?: Reviewer | null;
  /** stripe (default): a proxied Stripe call; http: a generic call (actions API); decide: decide-only. */
  mode?: ActionMode;
  url?: string | null;
  httpHeaders?: Record<string, string> | null;
  httpBody?: string | null;
  callbackUrl?: string | null;
  /** The caller asked for a person to decide (actions API `approve: true`), whatever the policy says. */
  forceReview?: boolean;
  details?: Record<string, unknown> | null;
  /**
   * The caller will dispatch an allowed action itself: the first claim is taken in the same transaction as the
   * decision, saving a durable commit on the allow path.
   */
  claimFor?: { owner: string; leaseMs: number } | null;
  method: string;
  path: string;
  params: Params;
  stripeAccount: string | null;
  /** Stripe-Context as received: forwarded, hashed, and read by the policy; it supersedes Stripe-Account. */
  stripeContext?: string | null;
  stripeVersion: string | null;
  idempotencyKey: string | null;
  classification: Classification;
  /** What a generic action's caller stated about it: the policy reads these as :declared_*:, never as facts. */
  declared?: { kind: string | null; amount: number | null; currency: string | null } | null;
  /** This request's upstream look-ups, so one decision reads each Stripe object once. */
  memo?: LookupMemo;
  /**
   * The classification completed with upstream facts, when submit looked them up before taking the agent's turn;
   * `classification` stays as the request stated it (a refund without an amount is a full refund).
   */
  completed?: Completed;
  /** The HTTP request that caused this action, recorded in its ledger event to tie logs to the ledger. */
  requestId?: string | null;
}

/** Who or what asked for a change, for the ledger: the HTTP request id when there is one. */
export interface ChangeContext {
  requestId?: string | null;
}

/** A change's context as ledger event data. */
export function requestIdOf(c: ChangeContext): { request_id?: string } {
  return c.requestId ? { request_id: c.requestId } : {};
}

export interface StoredDecision {
  outcome: PolicyDecision['outcome'];
  rules: string[];
  /** Each matched rule's `name:` (null for an unnamed one), beside `rules`; absent when no matched rule has a name. */
  rule_names?: (string | null)[];
  policy_version: string;
  risk_score: number | null;
  risk_factors: { name: string; points: number }[];
  reason: string;
  shadow_outcome: PolicyDecision['shadowOutcome'];
  notify: string[];
  reviewers: string[];
  /** `remind_before` of the rules that held it, in ms: reviewers who have not voted are told again. */
  remind_before_ms?: number;
  /** `escalate_after` of the rules that held it, in ms, and whom it adds (`escalate_to`). */
  escalate_after_ms?: number;
  escalate_to?: string[];
  /** Who the escalation made eligible, once it fired: added to `reviewers` (see eligibleReviewers). */
  escalated_to?: string[];
  /** Present when the rules that decided ask that the customer hear the outcome (`customer_notice:`). */
  customer_notice?: 'plain' | 'with_note';
  /** The decision made again when the quorum was reached, under the policy running then. */
  at_approval?: StoredDecision;
}

/** Changes a reviewer may make while approving: the amount only downwards, the reason and metadata freely. */
export interface ApprovalChanges {
  amount?: number;
  reason?: string;
  metadata?: Record<string, string>;
}

export interface AttributeContext {
  submission: Submission;
  classification: Classification;
  base: Readonly<Record<string, AttrValue>>;
  policy: Policy;
  now: Date;
  store: Store;
  /** An action already stored that must not count towards its own velocity windows (re-evaluation after changes). */
  excludeId?: string | null;
  /** The velocity totals this decision has read so far (the risk score reads a window the policy may name too). */
  velocityTotals?: VelocityTotals;
  /** This decision's upstream look-ups. */
  memo?: LookupMemo;
}

/**
 * Where attributes that need I/O plug in (velocity from the store, risk score, upstream look-ups). Only the
 * attributes a policy references need computing: `policy.referencedAttributes`.
 */
export interface AttributeResolver {
  resolve(
    ctx: AttributeContext,
  ): Promise<{ attributes: Record<string, AttrValue>; riskFactors?: { name: string; points: number }[] }>;
}

export interface EngineOptions {
  store: Store;
  policy: Policy;
  clock?: Clock;
  facts?: FactSource | null;
  resolvers?: AttributeResolver[];
  /** Cached read-only look-ups for what reviewers see beside a hold; null: the context shows the store's part only. */
  context?: ContextLookups | null;
}

export interface Evaluation {
  decision: PolicyDecision;
  classification: Completed;
  stored: StoredDecision;
}

export interface ActionChange {
  id: string;
  status: Status;
  /** An approved action already claimed for this instance's dispatcher, in the approval's own transaction. */
  claimed?: ActionRow;
}

/** Emitted once per new action when its decision is committed, including the allow path that skips `change`. */
export interface ActionDecided {
  id: string;
  kind: string;
  outcome: StoredDecision['outcome'];
  mode: ActionMode;
}
