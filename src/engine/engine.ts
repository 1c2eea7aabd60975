// The Engine: the one owner of the action lifecycle, as a facade over systems that share one resources object
// (resources.ts). Every status change goes through transition.ts, checked against the table in status.ts.
import type { Policy } from '../policy/index.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { FactSource } from '../stripe/lookups.ts';
import type { HoldNotifications, OutcomeNotifications } from './callbacks.ts';
import type { Clock } from './clock.ts';
import { type ActionContext, loadContext } from './context.ts';
import type { FreezeCache } from './freeze.ts';
import { createResources, type EngineResources, type EngineSignals, readAction } from './resources.ts';
import { COUNTED_STATUSES, type Status } from './status.ts';
import { DispatchSystem } from './systems/dispatch.ts';
import { EvaluationSystem, historyWindowMs } from './systems/evaluation.ts';
import { ReminderSystem } from './systems/reminders.ts';
import { ReviewSystem } from './systems/review.ts';
import { SubmissionSystem, type SubmitResult } from './systems/submission.ts';
import { WaitSystem } from './systems/waits.ts';
import type {
  Agent,
  ApprovalChanges,
  AttributeResolver,
  ChangeContext,
  EngineOptions,
  Evaluation,
  Reviewer,
  Submission,
} from './types.ts';

export { effectiveAccount, onAccountOf, scopeOf } from './account.ts';
export { boundHash, boundRequestHash, type Completed, type Derived, requestHash } from './bind.ts';
export type { FollowUp, HoldNotifications, Notified } from './callbacks.ts';
export type { ActionContext, AirlockHistory, RuleLabel, StatedReason } from './context.ts';
export { MAX_REASON_LENGTH } from './context.ts';
export { isSettledAction } from './status.ts';
export { eligibleReviewers, mayDecide } from './systems/review.ts';
export type {
  ActionChange,
  ActionDecided,
  ActionMode,
  Agent,
  ApprovalChanges,
  AttributeContext,
  AttributeResolver,
  ChangeContext,
  EngineOptions,
  Evaluation,
  Reviewer,
  StoredDecision,
  Submission,
} from './types.ts';

export class Engine {
  readonly #r: EngineResources;
  readonly #evaluation: EvaluationSystem;
  readonly #submission: SubmissionSystem;
  readonly #review: ReviewSystem;
  readonly #dispatch: DispatchSystem;
  readonly #waits: WaitSystem;
  readonly #reminders: ReminderSystem;

  constructor(opts: EngineOptions) {
    const r = createResources(opts);
    this.#r = r;
    this.#evaluation = new EvaluationSystem(r);
    this.#submission = new SubmissionSystem(r, this.#evaluation);
    this.#review = new ReviewSystem(r, this.#evaluation);
    this.#dispatch = new DispatchSystem(r, this.#evaluation);
    this.#waits = new WaitSystem(r);
    this.#reminders = new ReminderSystem(r);
  }

  // --- resources ---------------------------------------------------------------------------------------------------

  /** `change` after every committed status change in this process; `decided` once per new action. */
  get changes(): EngineSignals {
    return this.#r.signals;
  }

  get store(): Store {
    return this.#r.store;
  }

  get clock(): Clock {
    return this.#r.clock;
  }

  get facts(): FactSource | null {
    return this.#r.facts;
  }

  get resolvers(): AttributeResolver[] {
    return this.#r.resolvers;
  }

  /** Freezes set with `airlock freeze`, read through a short cache so every instance sees them. */
  get freezes(): FreezeCache {
    return this.#r.freezes;
  }

  /** Queues reviewers' messages in the transaction that holds an action (an outbox); null when none are sent. */
  get notifications(): HoldNotifications | null {
    return this.#r.notifications;
  }

  set notifications(n: HoldNotifications | null) {
    this.#r.notifications = n;
  }

  /** Queues customer notices in the transaction that settles an action; null when none are sent. */
  get outcomeNotifications(): OutcomeNotifications | null {
    return this.#r.outcomeNotifications;
  }

  set outcomeNotifications(n: OutcomeNotifications | null) {
    this.#r.outcomeNotifications = n;
  }

  get policy(): Policy {
    return this.#r.policy;
  }

  /**
   * For the long-running server on a store one process owns: velocity windows and the risk score's counts come
   * from in-memory aggregates from now on, so a decision costs the same for a busy agent as for a new one.
   */
  keepHistoryInMemory(): Promise<void> {
    this.#historyInMemory = true;
    return this.#r.store.keepVelocityInMemory(
      COUNTED_STATUSES,
      () => this.#r.clock.now().getTime(),
      historyWindowMs(this.#r.policy),
    );
  }

  #historyInMemory = false;

  setPolicy(policy: Policy): void {
    // A policy with a longer window than the aggregates hold widens them; until rebuilt, the database answers.
    if (this.#historyInMemory) {
      void this.#r.store
        .keepVelocityInMemory(COUNTED_STATUSES, () => this.#r.clock.now().getTime(), historyWindowMs(policy))
        .catch(() => {});
    }
    this.#r.policy = policy;
  }

  /** The dispatcher that claims approved actions in the approval's transaction; null when none runs here. */
  claimApprovalsFor(claim: { owner: string; leaseMs: number } | null): void {
    this.#r.approvalClaim = claim;
  }

  // --- submission (systems/submission.ts, systems/evaluation.ts) --------------------------------------------------

  /** Completes the facts a request leaves to Stripe, gathers attributes and applies the policy. */
  evaluate(
    sub: Submission,
    store: Store = this.#r.store,
    opts: { excludeId?: string } = {},
  ): Promise<Evaluation> {
    return this.#evaluation.evaluate(sub, store, opts);
  }

  /**
   * Records a new action and its decision before anything is forwarded. A repeat of the same agent
   * Idempotency-Key returns the existing action instead of creating a second one.
   */
  submit(sub: Submission): Promise<SubmitResult> {
    return this.#submission.submit(sub);
  }

  get(id: string): Promise<ActionRow> {
    return readAction(this.#r, id);
  }

  /**
   * What a reviewer reads beside a hold (context.ts): the stated reason, the rules by name, the charge, the
   * customer and their history. Read-only; look-ups that fail or outlast `timeoutMs` say so instead.
   */
  context(row: ActionRow, opts: { timeoutMs?: number } = {}): Promise<ActionContext> {
    return loadContext(this.#r.store, this.#r.context, row, opts);
  }

  // --- review (systems/review.ts) ---------------------------------------------------------------------------------

  /**
   * One reviewer's approval. With changes, the changed request is classified and decided again, bound anew, and
   * recorded as such; approvals given to the earlier version no longer count towards the quorum.
   */
  approve(
    id: string,
    reviewer: Reviewer,
    note: string | null,
    changes: ApprovalChanges | null = null,
    context: ChangeContext = {},
  ): Promise<ActionRow> {
    return this.#review.approve(id, reviewer, note, changes, context);
  }

  reject(
    id: string,
    reviewer: Reviewer,
    note: string | null,
    context: ChangeContext = {},
  ): Promise<ActionRow> {
    return this.#review.reject(id, reviewer, note, context);
  }

  /** The requesting agent withdraws a held action. */
  cancel(id: string, agent: Agent): Promise<ActionRow> {
    return this.#review.cancel(id, agent);
  }

  /** Moves holds past their deadline to `expired`; they never execute. */
  expireDue(): Promise<number> {
    return this.#review.expireDue();
  }

  /**
   * Sends holds' reminders and escalations that are due (systems/reminders.ts): each once, whichever instance
   * sweeps first. They never decide anything; a hold still ends `expired` when time runs out.
   */
  sendDueReminders(): Promise<number> {
    return this.#reminders.sendDue();
  }

  // --- dispatch (systems/dispatch.ts; called by the dispatcher only) ----------------------------------------------

  /** Claims a pending action for one upstream attempt; null when someone else holds it or it moved on. */
  claim(id: string, owner: string, leaseMs: number): Promise<ActionRow | null> {
    return this.#dispatch.claim(id, owner, leaseMs);
  }

  /** Looks a value derived from Stripe up again before dispatch; true when a rise sent the action back. */
  revalueIfRisen(action: ActionRow, owner: string): Promise<boolean> {
    return this.#dispatch.revalueIfRisen(action, owner);
  }

  /** Checks that every approval was given for exactly this request under this policy version. */
  approvalsBindTo(action: ActionRow): Promise<boolean> {
    return this.#dispatch.approvalsBindTo(action);
  }

  complete(id: string, owner: string, code: number, body: unknown, durable = true): Promise<ActionRow> {
    return this.#dispatch.complete(id, owner, code, body, durable);
  }

  fail(id: string, owner: string, code: number | null, body: unknown, error: string): Promise<void> {
    return this.#dispatch.fail(id, owner, code, body, error);
  }

  /** A completed action whose object Stripe later reported failed or cancelled; false when it was not completed. */
  failedUpstream(
    id: string,
    e: { event: string; type: string; object: string; status: string; reason: string | null },
  ): Promise<boolean> {
    return this.#dispatch.failedUpstream(id, e);
  }

  scheduleRetry(id: string, owner: string, error: string, retryAt: Date): Promise<void> {
    return this.#dispatch.scheduleRetry(id, owner, error, retryAt);
  }

  // --- waits (systems/waits.ts) -----------------------------------------------------------------------------------

  /** Resolves when the action reaches a status that satisfies `until`, or after timeoutMs with its latest row. */
  waitFor(id: string, until: (s: Status) => boolean, timeoutMs: number, pollMs = 250): Promise<ActionRow> {
    return this.#waits.waitFor(id, until, timeoutMs, pollMs);
  }
}
