import { EventEmitter } from 'node:events';
import { AirlockError, TransitionConflict } from '../errors.ts';
import { newId, sha256Hex } from '../ids.ts';
import {
  type AttrValue,
  baseAttributes,
  decide,
  type Policy,
  type PolicyDecision,
  toUsd,
} from '../policy/index.ts';
import { parseVelocityName } from '../policy/velocity.ts';
import { FreezeCache, frozenReason } from '../reliability/freeze.ts';
import type { ActionRow, LedgerEventInput, Store } from '../store/store.ts';
import type { VelocityTotals } from '../store/velocity.ts';
import { type Classification, classify, statedFacts } from '../stripe/classify.ts';
import { bindRequest, encodingFor, withValue } from '../stripe/encoding.ts';
import type { AccountScope, FactSource, LookupMemo } from '../stripe/lookups.ts';
import { canonicalJson, type Params } from '../stripe/params.ts';
import { amountFieldOf, bindUpstream, bodyMatches, type Completed, type Derived } from './bind.ts';

export type { Completed, Derived } from './bind.ts';

import { enqueueCallback, type HoldNotifications } from './callbacks.ts';
import { type Clock, systemClock } from './clock.ts';
import { assertNever, isTerminal, type Status } from './status.ts';

export interface Agent {
  id: string;
  name: string;
}

export interface Reviewer {
  id: string;
  email: string;
  groups?: string[];
}

interface Modification {
  fromHash: string;
  params: Params;
  /** The changed request's bytes, for a Stripe call. */
  body: string | null;
  changes: ApprovalChanges;
  evaluation: Evaluation;
  requestHash: string;
}

/** A rule's `reviewers:` list names emails or `group:name`; an empty list lets any reviewer decide. */
export function mayDecide(reviewer: Reviewer, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  return allowed.some((entry) =>
    entry.startsWith('group:') ? (reviewer.groups ?? []).includes(entry.slice(6)) : entry === reviewer.email,
  );
}

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

export interface StoredDecision {
  outcome: PolicyDecision['outcome'];
  rules: string[];
  policy_version: string;
  risk_score: number | null;
  risk_factors: { name: string; points: number }[];
  reason: string;
  shadow_outcome: PolicyDecision['shadowOutcome'];
  notify: string[];
  reviewers: string[];
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

/** Hash of the canonical request as the caller sent it: what a repeated Idempotency-Key must match. */
export function requestHash(
  method: string,
  path: string,
  params: Params,
  stripeAccount: string | null,
  stripeContext: string | null = null,
): string {
  const context = stripeContext === null ? {} : { stripe_context: stripeContext };
  return sha256Hex(canonicalJson({ method, path, params, stripe_account: stripeAccount, ...context }));
}

/** Hash of the exact bytes sent upstream and the headers that say whose account they act on: what approvals bind to. */
export function boundRequestHash(
  action: Pick<ActionRow, 'method' | 'path' | 'stripe_account' | 'stripe_context' | 'body' | 'derived'>,
): string {
  return sha256Hex(
    canonicalJson({
      method: action.method,
      path: action.path,
      stripe_account: action.stripe_account,
      stripe_context: action.stripe_context,
      body: action.body,
      // A value derived but not written into the bytes (an endpoint without an amount) is part of what was approved.
      ...(action.derived ? { derived: action.derived } : {}),
    }),
  );
}

/** The account a call acts on: Stripe-Context's (which Stripe lets supersede Stripe-Account), else Stripe-Account. */
export function effectiveAccount(stripeAccount: string | null, stripeContext: string | null): string | null {
  if (stripeContext) {
    const accounts = stripeContext.match(/acct_[A-Za-z0-9]+/g);
    // A context that names no account is still not the platform: policies see it as it is.
    return accounts?.at(-1) ?? stripeContext;
  }
  return stripeAccount;
}

export function onAccountOf(sub: Pick<Submission, 'stripeAccount' | 'stripeContext'>): string | null {
  return effectiveAccount(sub.stripeAccount, sub.stripeContext ?? null);
}

export function scopeOf(sub: Pick<Submission, 'stripeAccount' | 'stripeContext'>): AccountScope {
  return { stripeAccount: sub.stripeAccount, stripeContext: sub.stripeContext ?? null };
}

export function boundHash(action: Pick<ActionRow, 'request_hash' | 'policy_version'>): string {
  return sha256Hex(`${action.request_hash}\n${action.policy_version}`);
}

export type ActionMode = 'stripe' | 'http' | 'decide';

/** Whether an action has reached its end: decide-only actions end at `approved`, the others execute first. */
export function isSettledAction(row: Pick<ActionRow, 'status' | 'mode'>): boolean {
  return isTerminal(row.status as Status) || (row.mode === 'decide' && row.status === 'approved');
}

function targetStatus(outcome: PolicyDecision['outcome'], mode: ActionMode): Status {
  switch (outcome) {
    case 'allow':
      return mode === 'decide' ? 'approved' : 'pending';
    case 'review':
      return 'awaiting_approval';
    case 'block':
      return 'blocked';
    default:
      return assertNever(outcome);
  }
}

/**
 * The one owner of the action lifecycle. Every status change goes through `transition`, which names the status it
 * expects to leave and writes the ledger event in the same transaction.
 */
export class Engine {
  readonly changes = new EventEmitter<{ change: [ActionChange]; decided: [ActionDecided] }>();
  #policy: Policy;

  readonly store: Store;
  readonly clock: Clock;
  readonly facts: FactSource | null;
  readonly resolvers: AttributeResolver[];

  constructor(opts: EngineOptions) {
    this.store = opts.store;
    this.#policy = opts.policy;
    this.clock = opts.clock ?? systemClock;
    this.facts = opts.facts ?? null;
    this.resolvers = opts.resolvers ?? [];
    this.changes.setMaxListeners(0);
  }

  #approvalClaim: { owner: string; leaseMs: number } | null = null;

  /** The dispatcher that claims approved actions in the approval's transaction; null when none runs here. */
  claimApprovalsFor(claim: { owner: string; leaseMs: number } | null): void {
    this.#approvalClaim = claim;
  }

  /** Freezes set with `airlock freeze`, read through a short cache so every instance sees them. */
  readonly freezes = new FreezeCache();

  /** Queues reviewers' messages in the transaction that holds an action (an outbox); null when none are sent. */
  notifications: HoldNotifications | null = null;

  get policy(): Policy {
    return this.#policy;
  }

  setPolicy(policy: Policy): void {
    this.#policy = policy;
  }

  /** Completes the facts a request leaves to Stripe, gathers attributes and applies the policy. */
  async evaluate(
    sub: Submission,
    store: Store = this.store,
    opts: { excludeId?: string } = {},
  ): Promise<Evaluation> {
    const policy = this.#policy;
    const now = this.clock.now();
    const memo = sub.memo ?? new Map();
    const classification: Completed =
      sub.completed ??
      (this.facts ? await this.facts.complete(sub.classification, scopeOf(sub), memo) : sub.classification);
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
    for (const resolver of this.resolvers) {
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
    const frozen = c.read ? null : await this.freezes.find(store, sub.agent?.id ?? null);
    if (frozen) {
      decision.outcome = 'block';
      decision.reason = frozenReason(frozen);
    }
    const risk = attributes['risk_score'];
    const stored: StoredDecision = {
      outcome: decision.outcome,
      rules: decision.rules,
      policy_version: policy.version,
      risk_score: typeof risk === 'number' ? risk : null,
      risk_factors: riskFactors,
      reason: decision.reason,
      shadow_outcome: decision.shadowOutcome,
      notify: decision.notify,
      reviewers: decision.reviewers,
    };
    return { decision, classification, stored };
  }

  /**
   * Records a new action and its decision before anything is forwarded. A repeat of the same agent
   * Idempotency-Key returns the existing action instead of creating a second one.
   */
  async submit(sub: Submission): Promise<{ action: ActionRow; created: boolean; claimed?: boolean }> {
    // A decision that reads the agent's own history must see the one decided just before it, on any instance.
    // The upstream look-ups (a refund's charge) do not depend on that history, so they are made before the
    // agent's turn: a Stripe round trip inside it would serialise the agent's requests behind each other's.
    const serialized = sub.agent !== null && readsAgentHistory(this.#policy);
    const memo = sub.memo ?? new Map();
    const prepared: Submission =
      serialized && this.facts && !sub.completed && !(await this.#repeatOf(sub))
        ? { ...sub, memo, completed: await this.facts.complete(sub.classification, scopeOf(sub), memo) }
        : { ...sub, memo };
    const result =
      serialized && sub.agent
        ? await this.store.serializeAgent(sub.agent.id, (store) => this.#submit(prepared, store))
        : await this.#submit(prepared, this.store);
    // Only once committed: a dispatcher woken earlier could not see the row yet. A claimed action is driven by
    // its claimer, so waking a dispatcher for it would only contend for the lease.
    if (result.created && !result.claimed) this.#emit(result.action.id, result.action.status as Status);
    if (result.created && this.changes.listenerCount('decided') > 0) {
      const a = result.action;
      this.changes.emit('decided', {
        id: a.id,
        kind: a.kind,
        outcome: (JSON.parse(a.decision) as StoredDecision).outcome,
        mode: a.mode as ActionMode,
      });
    }
    return result;
  }

  /** Whether a request repeats an earlier one's Idempotency-Key (and so needs no look-ups of its own). */
  async #repeatOf(sub: Submission): Promise<boolean> {
    const scope = idempotencyScope(sub);
    return scope !== null && (await this.store.hasActionWithScope(scope));
  }

  async #submit(
    sub: Submission,
    store: Store,
  ): Promise<{ action: ActionRow; created: boolean; claimed?: boolean }> {
    const hash = requestHash(sub.method, sub.path, sub.params, sub.stripeAccount, sub.stripeContext ?? null);
    const scope = idempotencyScope(sub);
    if (scope) {
      const existing = await store.findActionByScope(scope);
      if (existing) return { action: this.#checkRepeat(existing, hash, sub.idempotencyKey!), created: false };
    }

    const policy = this.#policy;
    const { decision, classification: c, stored } = await this.evaluate(sub, store);
    const now = this.clock.now();
    const at = now.toISOString();
    const mode = sub.mode ?? 'stripe';
    if (sub.forceReview && decision.outcome === 'allow') {
      decision.outcome = 'review';
      decision.reason = `The caller asked for human approval. ${decision.reason}`;
      stored.outcome = 'review';
      stored.reason = decision.reason;
    }
    const status = targetStatus(decision.outcome, mode);
    const id = newId('act');
    // A Stripe call is encoded once, with any amount Airlock derived written in and the action's tag added: those
    // bytes are stored, hashed and sent as they are.
    const bound = mode === 'stripe' ? bindUpstream(sub, c, id) : null;
    const amountUsd =
      c.amount !== null && c.currency ? toUsd(c.amount, c.currency, policy.currencyRates) : null;
    const row: ActionRow = {
      id,
      status: 'received',
      kind: c.kind,
      read: c.read ? 1 : 0,
      shadow: decision.shadow ? 1 : 0,
      method: sub.method,
      path: sub.path,
      url: sub.url ?? null,
      params: JSON.stringify(bound ? bound.request.params : sub.params),
      amount: c.amount,
      currency: c.currency,
      amount_usd: amountUsd,
      agent_id: sub.agent?.id ?? null,
      stripe_account: sub.stripeAccount,
      stripe_version: sub.stripeVersion,
      customer: c.customer,
      idempotency_key: sub.idempotencyKey,
      idempotency_scope: scope,
      request_hash: hash,
      accepts_metadata: c.acceptsMetadata ? 1 : 0,
      decision: JSON.stringify(stored),
      policy_version: policy.version,
      approvals_required: decision.approvalsRequired,
      expires_at:
        status === 'awaiting_approval' ? new Date(now.getTime() + decision.expiresInMs).toISOString() : null,
      response_code: null,
      response_body: null,
      last_error: null,
      attempts: 0,
      next_attempt_at: null,
      lease_owner: null,
      lease_until: null,
      created_at: at,
      decided_at: null,
      completed_at: null,
      updated_at: at,
      requested_by: sub.requestedBy?.id ?? null,
      original_params: null,
      mode,
      callback_url: sub.callbackUrl ?? null,
      http_headers: sub.httpHeaders ? JSON.stringify(sub.httpHeaders) : null,
      http_body: sub.httpBody ?? null,
      details: sub.details ? JSON.stringify(sub.details) : null,
      stripe_context: sub.stripeContext ?? null,
      on_account: onAccountOf(sub),
      body: bound?.request.body ?? null,
      caller_hash: hash,
      derived: bound?.derived ? JSON.stringify(bound.derived) : null,
    };
    if (bound) row.request_hash = boundRequestHash(row);
    const actor = sub.agent ? `agent:${sub.agent.name}` : `reviewer:${sub.requestedBy?.email ?? 'unknown'}`;

    // The row is written once, already decided (and claimed when allowed), with the events that say how it got
    // there: no other transaction can see it in between, so the guarded updates of #transition would add nothing.
    const claimed = status === 'pending' && sub.claimFor !== undefined;
    const decided: ActionRow = { ...row, status, decided_at: at };
    const events: LedgerEventInput[] = [
      {
        actionId: row.id,
        type: 'action.received',
        from: null,
        to: 'received',
        actor,
        data: {
          kind: row.kind,
          method: row.method,
          path: row.path,
          params: sub.params,
          // What goes upstream, parsed: the bytes themselves are covered by request_hash.
          ...(bound ? { sent: bound.request.params, derived: bound.derived } : {}),
          amount: row.amount,
          currency: row.currency,
          stripe_account: row.stripe_account,
          ...(row.stripe_context ? { stripe_context: row.stripe_context } : {}),
          idempotency_key: row.idempotency_key,
          request_hash: row.request_hash,
          ...requestIdOf(sub),
        },
        at,
      },
      {
        actionId: row.id,
        type: 'action.decided',
        from: 'received',
        to: status,
        actor: 'policy',
        data: { ...stored },
        at,
      },
    ];
    if (claimed && sub.claimFor) {
      const { owner, leaseMs } = sub.claimFor;
      Object.assign(decided, {
        attempts: 1,
        lease_owner: owner,
        lease_until: new Date(now.getTime() + leaseMs).toISOString(),
      });
      events.push({
        actionId: row.id,
        type: 'dispatch.attempt',
        from: 'pending',
        to: 'pending',
        actor: `dispatcher:${owner}`,
        data: { attempt: 1, idempotency_key: `airlock-${row.id}` },
        at,
      });
    }
    try {
      await store.transaction(async (tx) => {
        await tx.insertAction(decided);
        await tx.appendLedgerEvents(events);
        // A decision that settles the action at once (blocked, shadow) reports it, in the same transaction.
        if (decided.callback_url && isSettledAction(decided)) await enqueueCallback(tx, decided, at);
        if (status === 'awaiting_approval') await this.notifications?.enqueue(tx, decided, at);
      });
    } catch (err) {
      // Two identical retries raced: the unique scope let one in; answer the other with it. On PostgreSQL the
      // failed insert aborted any transaction it ran in, so another connection reads; on SQLite the transaction
      // stays usable, and the root store would wait for the connection it holds.
      if (scope && isUniqueViolation(err)) {
        const reader = store.dialect === 'sqlite' ? store : this.store;
        const existing = await reader.findActionByScope(scope);
        if (existing)
          return { action: this.#checkRepeat(existing, hash, sub.idempotencyKey!), created: false };
      }
      throw err;
    }
    return { action: decided, created: true, claimed };
  }

  #checkRepeat(existing: ActionRow, hash: string, key: string): ActionRow {
    if ((existing.caller_hash ?? existing.request_hash) !== hash) {
      throw new AirlockError(
        'idempotency_error',
        `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
        { actionId: existing.id },
      );
    }
    return existing;
  }

  async get(id: string): Promise<ActionRow> {
    const row = await this.store.getAction(id);
    if (!row) throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
    return row;
  }

  /**
   * One reviewer's approval. With changes, the changed request is classified and decided again, bound anew, and
   * recorded as such; approvals given to the earlier version no longer count towards the quorum.
   */
  async approve(
    id: string,
    reviewer: Reviewer,
    note: string | null,
    changes: ApprovalChanges | null = null,
    context: ChangeContext = {},
  ): Promise<ActionRow> {
    const held = await this.get(id);
    const frozen = held.read ? null : await this.freezes.find(this.store, held.agent_id);
    if (frozen)
      throw new AirlockError('action_blocked', `${id} cannot be approved now. ${frozenReason(frozen)}`, {
        actionId: id,
      });
    const modified = changes && Object.keys(changes).length > 0 ? await this.#modify(id, changes) : null;
    // Decided again under the policy running now, in case this vote completes the quorum: what it now blocks
    // never executes, and a stricter quorum waits for its reviewers.
    const again = modified ? modified.evaluation : await this.#redecide(held);
    return this.#vote(id, reviewer, 'approve', note, modified, context, again);
  }

  /** A stored action as a submission again (to decide it anew), with the params and facts given. */
  async #resubmission(
    action: ActionRow,
    params: Params,
    classification: Classification,
  ): Promise<Submission> {
    const agent = action.agent_id ? ((await this.store.getAgent(action.agent_id)) ?? null) : null;
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
  async #redecide(action: ActionRow): Promise<Evaluation> {
    const params = JSON.parse(action.params) as Params;
    const amount = action.amount === null ? null : Number(action.amount);
    const classification: Classification =
      action.mode === 'stripe'
        ? classify({ method: action.method, path: action.path, params })
        : { ...statedFacts(action.kind, amount, action.currency, { customer: action.customer }) };
    const sub = await this.#resubmission(action, params, classification);
    // A generic action keeps the facts its route derived; a Stripe call is completed from Stripe again.
    if (action.mode !== 'stripe') sub.completed = classification;
    return this.evaluate(sub, this.store, { excludeId: action.id });
  }

  async reject(
    id: string,
    reviewer: Reviewer,
    note: string | null,
    context: ChangeContext = {},
  ): Promise<ActionRow> {
    return this.#vote(id, reviewer, 'reject', note, null, context);
  }

  /** Builds and evaluates the changed request outside the transaction; #vote applies it if nothing moved meanwhile. */
  async #modify(id: string, changes: ApprovalChanges): Promise<Modification> {
    const action = await this.get(id);
    if (action.mode === 'http') {
      throw new AirlockError(
        'parameter_invalid',
        'A generic HTTP action cannot be changed; reject it instead',
        {
          param: 'changes',
        },
      );
    }
    const params = JSON.parse(action.params) as Params;
    const next: Params = { ...params };
    if (changes.amount !== undefined) {
      if (!Number.isSafeInteger(changes.amount) || changes.amount <= 0) {
        throw new AirlockError(
          'parameter_invalid',
          'The changed amount must be a positive whole number of minor units',
          {
            param: 'amount',
          },
        );
      }
      if (action.amount === null || changes.amount > Number(action.amount)) {
        throw new AirlockError('parameter_invalid', 'A reviewer may only lower the amount, never raise it', {
          param: 'amount',
        });
      }
      if (action.mode === 'decide') {
        next['intent'] = { ...((params['intent'] as Params | undefined) ?? {}), amount: changes.amount };
      } else {
        const field = amountFieldOf(classify({ method: action.method, path: action.path, params }));
        if (!field) {
          throw new AirlockError(
            'parameter_invalid',
            'This endpoint takes no amount to lower; reject it instead',
            {
              param: 'amount',
            },
          );
        }
        Object.assign(
          next,
          withValue(
            next,
            field,
            encodingFor(action.method, action.path) === 'json' ? changes.amount : String(changes.amount),
          ),
        );
      }
    }
    if (changes.reason !== undefined) next['reason'] = changes.reason;
    if (changes.metadata !== undefined) {
      const m = params['metadata'];
      next['metadata'] = {
        ...(m && typeof m === 'object' && !Array.isArray(m) ? m : {}),
        ...changes.metadata,
      };
    }
    // A decide-only intent carries its own facts; a Stripe call is classified again from its new parameters.
    // A Stripe call's change is encoded as the original was: the bytes a reviewer approves are the bytes sent.
    const rebound = action.mode === 'stripe' ? bindRequest(action.method, action.path, next) : null;
    if (rebound) {
      for (const key of Object.keys(next)) delete next[key];
      Object.assign(next, rebound.params);
    }
    const classification: Classification =
      action.mode === 'decide'
        ? statedFacts(
            action.kind,
            changes.amount ?? (action.amount === null ? null : Number(action.amount)),
            action.currency,
            { customer: action.customer },
          )
        : classify({ method: action.method, path: action.path, params: next });
    const sub = await this.#resubmission(action, next, classification);
    const evaluation = await this.evaluate(sub, this.store, { excludeId: id });
    if (evaluation.decision.outcome === 'block') {
      throw new AirlockError(
        'action_blocked',
        `The changed request would be blocked by policy: ${evaluation.decision.reason}`,
        {
          actionId: id,
        },
      );
    }
    const body = rebound?.body ?? null;
    return {
      fromHash: action.request_hash,
      params: next,
      body,
      changes,
      evaluation,
      requestHash: rebound
        ? boundRequestHash({ ...action, body })
        : requestHash(action.method, action.path, next, action.stripe_account, action.stripe_context),
    };
  }

  async #vote(
    id: string,
    reviewer: Reviewer,
    vote: 'approve' | 'reject',
    note: string | null,
    modified: Modification | null,
    context: ChangeContext,
    again: Evaluation | null = null,
  ): Promise<ActionRow> {
    let newStatus: Status | null = null;
    let claimed: ActionRow | undefined;
    const rid = requestIdOf(context);
    await this.store.transaction(async (tx) => {
      let action = await tx.getActionForUpdate(id);
      if (!action) throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
      const at = this.clock.now().toISOString();
      if (action.status !== 'awaiting_approval') {
        const approvals = await tx.listApprovals(id);
        const by = approvals.map(
          (a) => `${a.decision === 'approve' ? 'approved' : 'rejected'} by ${a.reviewer_email}`,
        );
        throw new AirlockError(
          'already_decided',
          `Action ${id} is already ${action.status}${by.length ? ` (${by.join(', ')})` : ''}`,
          { actionId: id },
        );
      }
      if (action.expires_at && action.expires_at <= at) {
        await this.#transition(tx, id, 'awaiting_approval', 'expired', {
          type: 'action.expired',
          actor: 'system',
          data: { expires_at: action.expires_at },
          at,
          patch: {},
        });
        newStatus = 'expired';
        return;
      }
      if (action.requested_by && action.requested_by === reviewer.id) {
        throw new AirlockError('self_approval', 'You requested this action, so someone else must decide it', {
          actionId: id,
        });
      }
      const decision = JSON.parse(action.decision) as StoredDecision;
      if (!mayDecide(reviewer, decision.reviewers ?? [])) {
        throw new AirlockError(
          'forbidden',
          `This action needs a reviewer from ${decision.reviewers.join(', ')}`,
          {
            actionId: id,
          },
        );
      }
      const previous = await tx.listApprovals(id);
      const actor = `reviewer:${reviewer.email}`;
      if (modified) {
        if (action.request_hash !== modified.fromHash) {
          throw new AirlockError(
            'already_decided',
            `Action ${id} was changed by someone else meanwhile; reload it`,
            {
              actionId: id,
            },
          );
        }
        const e = modified.evaluation;
        const patch: Partial<ActionRow> = {
          params: JSON.stringify(modified.params),
          ...(modified.body !== null ? { body: modified.body } : {}),
          original_params: action.original_params ?? action.params,
          amount: e.classification.amount,
          currency: e.classification.currency,
          amount_usd:
            e.classification.amount !== null && e.classification.currency
              ? toUsd(e.classification.amount, e.classification.currency, this.#policy.currencyRates)
              : null,
          request_hash: modified.requestHash,
          policy_version: e.stored.policy_version,
          decision: JSON.stringify(e.stored),
          // A changed request that the policy would allow needs only this approval; one still under review keeps
          // the stricter of the two quorums.
          approvals_required:
            e.decision.outcome === 'allow'
              ? 1
              : Math.max(action.approvals_required, e.decision.approvalsRequired),
          updated_at: at,
        };
        const ok = await tx.updateActionFrom(id, 'awaiting_approval', patch);
        if (!ok) throw new TransitionConflict(id, 'awaiting_approval', null);
        await tx.appendLedger({
          actionId: id,
          type: 'action.modified',
          from: 'awaiting_approval',
          to: 'awaiting_approval',
          actor,
          data: {
            changes: modified.changes,
            before: JSON.parse(action.params),
            after: modified.params,
            request_hash: modified.requestHash,
            decision: e.stored,
            ...rid,
          },
          at,
        });
        action = { ...action, ...patch } as ActionRow;
      }
      const bound = boundHash(action);
      // A vote counts for the version it was given to; a changed version restarts the vote for everyone.
      const mine = previous.find((a) => a.reviewer_id === reviewer.id);
      if (mine?.bound_hash === bound) {
        throw new AirlockError('already_decided', `${reviewer.email} has already voted on ${id}`, {
          actionId: id,
        });
      }
      // One row per reviewer and action (a unique key): the vote on the earlier version gives way; the ledger keeps it.
      if (mine) await tx.deleteApproval(mine.id);
      await tx.insertApproval({
        id: newId('apv'),
        action_id: id,
        reviewer_id: reviewer.id,
        reviewer_email: reviewer.email,
        decision: vote,
        note,
        changes: modified ? JSON.stringify(modified.changes) : null,
        bound_hash: bound,
        at,
        agent_id: action.agent_id,
      });
      if (vote === 'reject') {
        await this.#transition(tx, id, 'awaiting_approval', 'rejected', {
          type: 'action.rejected',
          actor,
          data: { note, ...rid },
          at,
          patch: {},
        });
        newStatus = 'rejected';
        return;
      }
      // Quorum counts distinct reviewers who approved exactly this version of the request.
      const approvals = previous.filter((a) => a.decision === 'approve' && a.bound_hash === bound).length + 1;
      if (approvals >= action.approvals_required && again) {
        if (again.stored.policy_version !== this.#policy.version) {
          throw new AirlockError(
            'already_decided',
            `The policy changed while ${id} was being approved; try again`,
            {
              actionId: id,
            },
          );
        }
        const first = JSON.parse(action.decision) as StoredDecision;
        const decision = JSON.stringify({ ...first, at_approval: again.stored });
        const required =
          again.decision.outcome === 'review'
            ? Math.max(action.approvals_required, again.decision.approvalsRequired)
            : action.approvals_required;
        await tx.appendLedger({
          actionId: id,
          type: 'action.redecided',
          from: 'awaiting_approval',
          to: 'awaiting_approval',
          actor: 'policy',
          data: { ...again.stored, approvals, approvals_required: required },
          at,
        });
        if (again.decision.outcome === 'block') {
          await this.#transition(tx, id, 'awaiting_approval', 'blocked', {
            type: 'action.blocked',
            actor: 'policy',
            data: { reason: again.stored.reason, policy_version: again.stored.policy_version, ...rid },
            at,
            patch: { decision },
          });
          newStatus = 'blocked';
          return;
        }
        const ok = await tx.updateActionFrom(id, 'awaiting_approval', {
          decision,
          approvals_required: required,
          updated_at: at,
        });
        if (!ok) throw new TransitionConflict(id, 'awaiting_approval', null);
        action = { ...action, decision, approvals_required: required };
      }
      if (approvals >= action.approvals_required) {
        // A decide-only action ends here; anything else is cleared for dispatch.
        const to: Status = action.mode === 'decide' ? 'approved' : 'pending';
        // This instance's dispatcher takes the first claim in the same commit, as on the allow path: one
        // durable commit fewer between the approval and the call to Stripe.
        const claim = to === 'pending' ? this.#approvalClaim : null;
        const lease = claim
          ? {
              lease_owner: claim.owner,
              lease_until: new Date(Date.parse(at) + claim.leaseMs).toISOString(),
              attempts: action.attempts + 1,
            }
          : {};
        const moved = await this.#transition(tx, id, 'awaiting_approval', to, {
          type: 'action.approved',
          actor,
          data: { note, approvals, approvals_required: action.approvals_required, bound_hash: bound, ...rid },
          at,
          patch: lease,
        });
        if (claim) {
          await tx.appendLedger({
            actionId: id,
            type: 'dispatch.attempt',
            from: 'pending',
            to: 'pending',
            actor: `dispatcher:${claim.owner}`,
            data: { attempt: moved.attempts, idempotency_key: `airlock-${id}` },
            at,
          });
          claimed = moved;
        }
        newStatus = to;
      } else {
        await tx.appendLedger({
          actionId: id,
          type: 'approval.recorded',
          from: 'awaiting_approval',
          to: 'awaiting_approval',
          actor,
          data: { note, approvals, approvals_required: action.approvals_required, ...rid },
          at,
        });
      }
    });
    const row = await this.get(id);
    if (newStatus) this.changes.emit('change', { id, status: newStatus, ...(claimed ? { claimed } : {}) });
    if (newStatus === 'expired')
      throw new AirlockError('action_expired', `Action ${id} expired before a decision`, { actionId: id });
    return row;
  }

  /** The requesting agent withdraws a held action. */
  async cancel(id: string, agent: Agent): Promise<ActionRow> {
    await this.store.transaction(async (tx) => {
      const action = await tx.getActionForUpdate(id);
      if (!action || action.agent_id !== agent.id) {
        throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
      }
      if (action.status !== 'awaiting_approval') {
        throw new AirlockError('already_decided', `Action ${id} is already ${action.status}`, {
          actionId: id,
        });
      }
      await this.#transition(tx, id, 'awaiting_approval', 'cancelled', {
        type: 'action.cancelled',
        actor: `agent:${agent.name}`,
        data: {},
        at: this.clock.now().toISOString(),
        patch: {},
      });
    });
    this.#emit(id, 'cancelled');
    return this.get(id);
  }

  /** Moves holds past their deadline to `expired`; they never execute. */
  async expireDue(): Promise<number> {
    const at = this.clock.now().toISOString();
    const ids = await this.store.listExpiredHolds(at, 100);
    let n = 0;
    for (const id of ids) {
      try {
        await this.store.transaction((tx) =>
          this.#transition(tx, id, 'awaiting_approval', 'expired', {
            type: 'action.expired',
            actor: 'system',
            data: {},
            at,
            patch: {},
          }),
        );
        this.#emit(id, 'expired');
        n++;
      } catch (err) {
        if (!(err instanceof TransitionConflict)) throw err; // decided meanwhile: nothing to expire
      }
    }
    return n;
  }

  // --- dispatch-side transitions (called by the dispatcher only) ---------------------------------------------------

  /** Claims a pending action for one upstream attempt; null when someone else holds it or it moved on. */
  async claim(id: string, owner: string, leaseMs: number): Promise<ActionRow | null> {
    const now = this.clock.now();
    const at = now.toISOString();
    return this.store.transaction(async (tx) => {
      const ok = await tx.claimAction(id, owner, at, new Date(now.getTime() + leaseMs).toISOString());
      if (!ok) return null;
      const action = (await tx.getAction(id))!;
      await tx.appendLedger({
        actionId: id,
        type: 'dispatch.attempt',
        from: 'pending',
        to: 'pending',
        actor: `dispatcher:${owner}`,
        data: { attempt: action.attempts, idempotency_key: `airlock-${id}` },
        at,
      });
      return action;
    });
  }

  /**
   * For a value derived from Stripe that the request cannot carry (a PaymentIntent confirm moves the intent's
   * amount): looks it up again just before dispatch. A higher value sends the action back to be decided, under a new
   * binding, so earlier approvals no longer count. True when the action was taken back (the caller must not send it).
   */
  async revalueIfRisen(action: ActionRow, owner: string): Promise<boolean> {
    if (action.mode !== 'stripe' || !action.derived || !this.facts) return false;
    const derived = JSON.parse(action.derived) as Derived;
    if (derived.field !== null) return false;
    const params = JSON.parse(action.params) as Params;
    const classification = classify({ method: action.method, path: action.path, params });
    const scope = { stripeAccount: action.stripe_account, stripeContext: action.stripe_context };
    const now = await this.facts.complete(classification, scope, new Map());
    const value = now.valuation?.amount ?? now.amount;
    if (value !== null && value <= derived.amount) return false;
    const sub = await this.#resubmission(action, params, classification);
    const e = await this.evaluate({ ...sub, completed: now }, this.store, { excludeId: action.id });
    // Whatever the policy says of the new value, a person sees it unless it is now blocked.
    const outcome = e.decision.outcome === 'block' ? 'block' : 'review';
    const stored: StoredDecision = {
      ...e.stored,
      outcome,
      reason: `The value rose from ${derived.amount} to ${value ?? 'unknown'} after the decision. ${e.stored.reason}`,
    };
    const at = this.clock.now();
    const next: Derived | null =
      value === null ? null : { ...derived, amount: value, basis: now.valuation?.basis ?? derived.basis };
    const to: Status = outcome === 'block' ? 'blocked' : 'awaiting_approval';
    const patch: Partial<ActionRow> = {
      amount: value,
      amount_usd:
        value !== null && now.currency ? toUsd(value, now.currency, this.#policy.currencyRates) : null,
      derived: next ? JSON.stringify(next) : null,
      decision: JSON.stringify(stored),
      policy_version: this.#policy.version,
      approvals_required: Math.max(1, e.decision.approvalsRequired),
      expires_at:
        to === 'awaiting_approval' ? new Date(at.getTime() + e.decision.expiresInMs).toISOString() : null,
      lease_owner: null,
      lease_until: null,
    };
    patch.request_hash = boundRequestHash({ ...action, ...patch } as ActionRow);
    await this.store.transaction((tx) =>
      this.#transition(tx, action.id, 'pending', to, {
        type: 'action.revalued',
        actor: `dispatcher:${owner}`,
        data: { before: derived, after: next, decision: stored },
        at: at.toISOString(),
        patch,
      }),
    );
    this.#emit(action.id, to);
    return true;
  }

  /** Checks that every approval was given for exactly this request under this policy version. */
  async approvalsBindTo(action: ActionRow): Promise<boolean> {
    // The hash is recomputed from what will be sent, not read from the row, so a request changed after its
    // decision (outside the engine) no longer matches the decision or any approval.
    if (!sendsWhatWasDecided(action)) return false;
    const decision = JSON.parse(action.decision) as StoredDecision;
    // Allowed outright and never changed by a reviewer: there is no approval to check.
    if (decision.outcome === 'allow' && action.original_params === null) return true;
    const expected = boundHash(action);
    const approvals = (await this.store.listApprovals(action.id)).filter(
      (a) => a.decision === 'approve' && a.bound_hash === expected,
    );
    return approvals.length >= action.approvals_required;
  }

  async complete(id: string, owner: string, code: number, body: unknown, durable = true): Promise<ActionRow> {
    const at = this.clock.now().toISOString();
    const row = await this.store.transaction(
      (tx) =>
        this.#transition(tx, id, 'pending', 'completed', {
          type: 'action.completed',
          actor: `dispatcher:${owner}`,
          data: { response_code: code, object_id: objectId(body) },
          at,
          patch: {
            response_code: code,
            response_body: JSON.stringify(body),
            completed_at: at,
            last_error: null,
            lease_owner: null,
            lease_until: null,
          },
        }),
      { durable },
    );
    this.#emit(id, 'completed');
    return row;
  }

  async fail(id: string, owner: string, code: number | null, body: unknown, error: string): Promise<void> {
    const at = this.clock.now().toISOString();
    await this.store.transaction((tx) =>
      this.#transition(tx, id, 'pending', 'failed', {
        type: 'action.failed',
        actor: `dispatcher:${owner}`,
        data: { response_code: code, error },
        at,
        patch: {
          response_code: code,
          response_body: body === undefined ? null : JSON.stringify(body),
          completed_at: at,
          last_error: error,
          lease_owner: null,
          lease_until: null,
        },
      }),
    );
    this.#emit(id, 'failed');
  }

  async scheduleRetry(id: string, owner: string, error: string, retryAt: Date): Promise<void> {
    const at = this.clock.now().toISOString();
    await this.store.transaction(async (tx) => {
      const ok = await tx.releaseLease(id, owner, {
        last_error: error,
        next_attempt_at: retryAt.toISOString(),
        updated_at: at,
      });
      if (!ok) return;
      await tx.appendLedger({
        actionId: id,
        type: 'dispatch.retry_scheduled',
        from: 'pending',
        to: 'pending',
        actor: `dispatcher:${owner}`,
        data: { error, retry_at: retryAt.toISOString() },
        at,
      });
    });
  }

  async #transition(
    tx: Store,
    id: string,
    from: Status,
    to: Status,
    e: { type: string; actor: string; data: Record<string, unknown>; at: string; patch: Partial<ActionRow> },
  ): Promise<ActionRow> {
    const moved = await tx.updateActionFromReturning(id, from, { ...e.patch, status: to, updated_at: e.at });
    if (!moved) {
      const current = await tx.getAction(id);
      throw new TransitionConflict(id, from, current?.status ?? null);
    }
    await tx.appendLedger({ actionId: id, type: e.type, from, to, actor: e.actor, data: e.data, at: e.at });
    // An approval wakes the dispatchers of every instance when it commits (PostgreSQL LISTEN/NOTIFY). An action
    // allowed on submit is not announced: the instance that took the request executes it and answers the caller.
    if (from === 'awaiting_approval' && to === 'pending') await tx.notifyActionReady(id);
    // The callback is queued in the same transaction as the change it reports (an outbox): never lost, never early.
    if (moved.callback_url && isSettledAction(moved)) await enqueueCallback(tx, moved, e.at);
    if (to === 'awaiting_approval') await this.notifications?.enqueue(tx, moved, e.at);
    return moved;
  }

  #emit(id: string, status: Status): void {
    this.changes.emit('change', { id, status });
  }

  /** Resolves when the action reaches a status that satisfies `until`, or after timeoutMs with its latest row. */
  async waitFor(
    id: string,
    until: (s: Status) => boolean,
    timeoutMs: number,
    pollMs = 250,
  ): Promise<ActionRow> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await this.get(id);
      if (until(row.status as Status) || Date.now() >= deadline) return row;
      // Wake on an in-process change, or poll: another process (the CLI, another instance) may decide it.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(pollMs, Math.max(0, deadline - Date.now())));
        function listener(c: ActionChange) {
          if (c.id === id) done();
        }
        const changes = this.changes;
        function done() {
          clearTimeout(timer);
          changes.off('change', listener);
          resolve();
        }
        changes.on('change', listener);
      });
    }
  }
}

/** Whether the row still holds the request its decision and approvals were made for, in every column dispatch reads. */
function sendsWhatWasDecided(action: ActionRow): boolean {
  // A Stripe call is sent from its stored bytes: the hash must cover them, and the params shown must be theirs.
  if (action.body !== null) return bodyMatches(action, boundRequestHash);
  const params = JSON.parse(action.params) as Params;
  if (
    requestHash(action.method, action.path, params, action.stripe_account, action.stripe_context) !==
    action.request_hash
  )
    return false;
  if (action.mode !== 'http') return true;
  // A generic HTTP call is sent from its url, header and body columns; they must say what the hashed params say.
  const body = params['body'] ?? null;
  const expectedBody = body === null ? null : typeof body === 'string' ? body : JSON.stringify(body);
  return (
    params['url'] === action.url &&
    canonicalJson(params['headers'] ?? {}) === canonicalJson(JSON.parse(action.http_headers ?? '{}')) &&
    (expectedBody === action.http_body || (body === null && action.http_body === 'null'))
  );
}

function metadataOf(params: Params): Record<string, string> {
  const m = params['metadata'];
  const out: Record<string, string> = {};
  if (m && typeof m === 'object' && !Array.isArray(m)) {
    for (const [k, v] of Object.entries(m)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}

function objectId(body: unknown): string | null {
  if (body && typeof body === 'object' && 'id' in body && typeof (body as { id: unknown }).id === 'string') {
    return (body as { id: string }).id;
  }
  return null;
}

/** Velocity windows and the risk score read the agent's earlier actions. */
function readsAgentHistory(policy: Policy): boolean {
  for (const name of policy.referencedAttributes) {
    if (name.startsWith('risk_') || parseVelocityName(name) !== null) return true;
  }
  return false;
}

function isUniqueViolation(err: unknown): boolean {
  const code = err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : '';
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

/** Idempotency-Keys are scoped to their requester and Stripe account, as Stripe scopes them to an API key. */
function idempotencyScope(sub: Submission): string | null {
  if (!sub.idempotencyKey) return null;
  const requester = sub.agent ? sub.agent.id : `reviewer:${sub.requestedBy?.id ?? 'unknown'}`;
  // The account the call acts on, as Stripe scopes keys per account (Stripe-Context's when one is sent).
  return `${requester}|${onAccountOf(sub) ?? ''}|${sub.idempotencyKey}`;
}

function requestIdOf(c: { requestId?: string | null }): { request_id?: string } {
  return c.requestId ? { request_id: c.requestId } : {};
}
