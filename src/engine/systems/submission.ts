// New actions: decided and recorded before anything is forwarded, once per Idempotency-Key.
import { AirlockError } from '../../errors.ts';
import { newId } from '../../ids.ts';
import { type PolicyDecision, toUsd } from '../../policy/index.ts';
import type { ActionRow, LedgerEventInput, Store } from '../../store/store.ts';
import { onAccountOf, scopeOf } from '../account.ts';
import { bindUpstream, boundRequestHash, requestHash } from '../bind.ts';
import { announce, type EngineResources } from '../resources.ts';
import { assertNever, type Status } from '../status.ts';
import { insertDecided } from '../transition.ts';
import { type ActionMode, requestIdOf, type StoredDecision, type Submission } from '../types.ts';
import { type EvaluationSystem, readsAgentHistory } from './evaluation.ts';

export interface SubmitResult {
  action: ActionRow;
  created: boolean;
  claimed?: boolean;
}

export class SubmissionSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly evaluation: EvaluationSystem,
  ) {}

  /**
   * Records a new action and its decision before anything is forwarded. A repeat of the same agent
   * Idempotency-Key returns the existing action instead of creating a second one.
   */
  async submit(sub: Submission): Promise<SubmitResult> {
    const { store, facts } = this.r;
    // A decision that reads the agent's own history must see the one decided just before it, on any instance.
    // The upstream look-ups (a refund's charge) do not depend on that history, so they are made before the
    // agent's turn: a Stripe round trip inside it would serialise the agent's requests behind each other's.
    const serialized = sub.agent !== null && readsAgentHistory(this.r.policy);
    const memo = sub.memo ?? new Map();
    const prepared: Submission =
      serialized && facts && !sub.completed && !(await this.#repeatOf(sub))
        ? { ...sub, memo, completed: await facts.complete(sub.classification, scopeOf(sub), memo) }
        : { ...sub, memo };
    const result =
      serialized && sub.agent
        ? await store.serializeAgent(sub.agent.id, (tx) => this.#submit(prepared, tx))
        : await this.#submit(prepared, store);
    // Only once committed: a dispatcher woken earlier could not see the row yet. A claimed action is driven by
    // its claimer, so waking a dispatcher for it would only contend for the lease.
    if (result.created && !result.claimed) announce(this.r, result.action.id, result.action.status);
    if (result.created && this.r.signals.listenerCount('decided') > 0) {
      const a = result.action;
      this.r.signals.emit('decided', {
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
    return scope !== null && (await this.r.store.hasActionWithScope(scope));
  }

  async #submit(sub: Submission, store: Store): Promise<SubmitResult> {
    const hash = requestHash(sub.method, sub.path, sub.params, sub.stripeAccount, sub.stripeContext ?? null);
    const scope = idempotencyScope(sub);
    if (scope) {
      const existing = await store.findActionByScope(scope);
      if (existing) return { action: checkRepeat(existing, hash, sub.idempotencyKey!), created: false };
    }

    const policy = this.r.policy;
    const { decision, classification: c, stored } = await this.evaluation.evaluate(sub, store);
    const now = this.r.clock.now();
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
    // there.
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
      // A decision that settles the action at once (blocked, shadow) queues its callback in the same transaction.
      await store.transaction((tx) => insertDecided(this.r, tx, decided, events));
    } catch (err) {
      // Two identical retries raced: the unique scope let one in; answer the other with it. On PostgreSQL the
      // failed insert aborted any transaction it ran in, so another connection reads; on SQLite the transaction
      // stays usable, and the root store would wait for the connection it holds.
      if (scope && isUniqueViolation(err)) {
        const reader = store.dialect === 'sqlite' ? store : this.r.store;
        const existing = await reader.findActionByScope(scope);
        if (existing) return { action: checkRepeat(existing, hash, sub.idempotencyKey!), created: false };
      }
      throw err;
    }
    return { action: decided, created: true, claimed };
  }
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

/** A repeated Idempotency-Key answers with the first action, if the request is the same; otherwise it is an error. */
function checkRepeat(existing: ActionRow, hash: string, key: string): ActionRow {
  if ((existing.caller_hash ?? existing.request_hash) !== hash) {
    throw new AirlockError(
      'idempotency_error',
      `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
      { actionId: existing.id },
    );
  }
  return existing;
}

/** Idempotency-Keys are scoped to their requester and Stripe account, as Stripe scopes them to an API key. */
function idempotencyScope(sub: Submission): string | null {
  if (!sub.idempotencyKey) return null;
  const requester = sub.agent ? sub.agent.id : `reviewer:${sub.requestedBy?.id ?? 'unknown'}`;
  // The account the call acts on, as Stripe scopes keys per account (Stripe-Context's when one is sent).
  return `${requester}|${onAccountOf(sub) ?? ''}|${sub.idempotencyKey}`;
}

function isUniqueViolation(err: unknown): boolean {
  const code = err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : '';
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}
