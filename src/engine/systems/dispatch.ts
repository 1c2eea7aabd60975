// The dispatcher's side of the lifecycle: claiming a pending action for one attempt, checking it still sends what
// was approved, taking it back when its value rose, and recording how the attempt ended.

import { toUsd } from '../../policy/index.ts';
import type { ActionPatch, ActionRow } from '../../store/store.ts';
import { classify } from '../../stripe/classify.ts';
import type { Params } from '../../stripe/params.ts';
import { boundHash, boundRequestHash, type Derived, sendsWhatWasDecided } from '../bind.ts';
import { announce, type EngineResources } from '../resources.ts';
import type { Status } from '../status.ts';
import { transition } from '../transition.ts';
import type { StoredDecision } from '../types.ts';
import type { EvaluationSystem } from './evaluation.ts';

export class DispatchSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly evaluation: EvaluationSystem,
  ) {}

  /** Claims a pending action for one upstream attempt; null when someone else holds it or it moved on. */
  async claim(id: string, owner: string, leaseMs: number): Promise<ActionRow | null> {
    const now = this.r.clock.now();
    const at = now.toISOString();
    return this.r.store.transaction(async (tx) => {
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
    const facts = this.r.facts;
    if (action.mode !== 'stripe' || !action.derived || !facts) return false;
    const derived = JSON.parse(action.derived) as Derived;
    if (derived.field !== null) return false;
    const params = JSON.parse(action.params) as Params;
    const classification = classify({ method: action.method, path: action.path, params });
    const scope = { stripeAccount: action.stripe_account, stripeContext: action.stripe_context };
    const now = await facts.complete(classification, scope, new Map());
    const value = now.valuation?.amount ?? now.amount;
    if (value !== null && value <= derived.amount) return false;
    const sub = await this.evaluation.resubmission(action, params, classification);
    const e = await this.evaluation.evaluate({ ...sub, completed: now }, this.r.store, {
      excludeId: action.id,
    });
    // Whatever the policy says of the new value, a person sees it unless it is now blocked.
    const outcome = e.decision.outcome === 'block' ? 'block' : 'review';
    const stored: StoredDecision = {
      ...e.stored,
      outcome,
      reason: `The value rose from ${derived.amount} to ${value ?? 'unknown'} after the decision. ${e.stored.reason}`,
    };
    const at = this.r.clock.now();
    const next: Derived | null =
      value === null ? null : { ...derived, amount: value, basis: now.valuation?.basis ?? derived.basis };
    const to: Status = outcome === 'block' ? 'blocked' : 'awaiting_approval';
    const policy = this.r.policy;
    const patch: ActionPatch = {
      amount: value,
      amount_usd: value !== null && now.currency ? toUsd(value, now.currency, policy.currencyRates) : null,
      derived: next ? JSON.stringify(next) : null,
      decision: JSON.stringify(stored),
      policy_version: policy.version,
      approvals_required: Math.max(1, e.decision.approvalsRequired),
      expires_at:
        to === 'awaiting_approval' ? new Date(at.getTime() + e.decision.expiresInMs).toISOString() : null,
      lease_owner: null,
      lease_until: null,
    };
    patch.request_hash = boundRequestHash({ ...action, ...patch } as ActionRow);
    await this.r.store.transaction((tx) =>
      transition(this.r, tx, action.id, 'pending', to, {
        type: 'action.revalued',
        actor: `dispatcher:${owner}`,
        data: { before: derived, after: next, decision: stored },
        at: at.toISOString(),
        patch,
      }),
    );
    announce(this.r, action.id, to);
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
    const approvals = (await this.r.store.listApprovals(action.id)).filter(
      (a) => a.decision === 'approve' && a.bound_hash === expected,
    );
    return approvals.length >= action.approvals_required;
  }

  async complete(
    id: string,
    owner: string,
    code: number,
    body: unknown,
    durable: boolean,
  ): Promise<ActionRow> {
    const at = this.r.clock.now().toISOString();
    const row = await this.r.store.transaction(
      (tx) =>
        transition(this.r, tx, id, 'pending', 'completed', {
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
    announce(this.r, id, 'completed');
    return row;
  }

  async fail(id: string, owner: string, code: number | null, body: unknown, error: string): Promise<void> {
    const at = this.r.clock.now().toISOString();
    await this.r.store.transaction((tx) =>
      transition(this.r, tx, id, 'pending', 'failed', {
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
    announce(this.r, id, 'failed');
  }

  /**
   * Stripe reported, after the action completed, that what it made failed or was cancelled (a refund that bounced, a
   * payout returned). Guarded like every transition: false when the action is not `completed` (already failed, or
   * never completed), so a redelivered event changes nothing.
   */
  async failedUpstream(
    id: string,
    e: { event: string; type: string; object: string; status: string; reason: string | null },
  ): Promise<boolean> {
    const at = this.r.clock.now().toISOString();
    const error = `Stripe reported ${e.object} ${e.status} after it completed (${e.type}, ${e.event}${e.reason ? `: ${e.reason}` : ''})`;
    const moved = await this.r.store.transaction(async (tx) => {
      const row = await tx.getAction(id);
      if (row?.status !== 'completed') return false;
      await transition(this.r, tx, id, 'completed', 'failed', {
        type: 'action.failed_upstream',
        actor: 'stripe',
        data: { event: e.event, event_type: e.type, object: e.object, status: e.status, reason: e.reason },
        at,
        patch: { last_error: error },
      });
      return true;
    });
    if (moved) announce(this.r, id, 'failed');
    return moved;
  }

  /** Gives the lease back with a time for the next attempt; the action stays `pending`. */
  async scheduleRetry(id: string, owner: string, error: string, retryAt: Date): Promise<void> {
    const at = this.r.clock.now().toISOString();
    await this.r.store.transaction(async (tx) => {
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
}

function objectId(body: unknown): string | null {
  if (body && typeof body === 'object' && 'id' in body && typeof (body as { id: unknown }).id === 'string') {
    return (body as { id: string }).id;
  }
  return null;
}
