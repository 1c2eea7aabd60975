// Holds and the people who end them: votes (with changes), the quorum, cancelling and expiry.
import { AirlockError, TransitionConflict } from '../../errors.ts';
import { newId } from '../../ids.ts';
import { type Route, withAmount } from '../../outbound/routes.ts';
import { toUsd } from '../../policy/index.ts';
import type { ActionPatch, ActionRow, Store } from '../../store/store.ts';
import { type Classification, classify, statedFacts } from '../../stripe/classify.ts';
import { bindRequest, encodingFor, withValue } from '../../stripe/encoding.ts';
import type { Params } from '../../stripe/params.ts';
import { boundHash, boundRequestHash, requestHash } from '../bind.ts';
import { frozenReason } from '../freeze.ts';
import { announce, type EngineResources, readAction } from '../resources.ts';
import type { Status } from '../status.ts';
import { transition } from '../transition.ts';
import {
  type Agent,
  type ApprovalChanges,
  type ChangeContext,
  type Evaluation,
  type Reviewer,
  requestIdOf,
  type StoredDecision,
  type Submission,
} from '../types.ts';
import { declaredClaims, type EvaluationSystem } from './evaluation.ts';

/** One reviewer's standing vote, and the version of the request it was given to. */
export interface Vote {
  reviewerId: string;
  decision: 'approve' | 'reject';
  boundHash: string;
}

/** What ends a hold: this many distinct reviewers approving exactly this version of the request. */
export interface QuorumRule {
  required: number;
  boundHash: string;
}

export type QuorumOutcome =
  | { outcome: 'rejected' }
  | { outcome: 'approved'; approvals: number }
  | { outcome: 'waiting'; approvals: number };

/**
 * The outcome of the votes standing on a hold. One reject ends it; otherwise it is approved once enough distinct
 * reviewers approved the current version. A vote given to an earlier version (before a reviewer changed the request,
 * or before its value was looked up again) counts for nothing.
 */
export function quorum(votes: readonly Vote[], rule: QuorumRule): QuorumOutcome {
  if (votes.some((v) => v.decision === 'reject')) return { outcome: 'rejected' };
  const approvers = new Set(
    votes.filter((v) => v.decision === 'approve' && v.boundHash === rule.boundHash).map((v) => v.reviewerId),
  );
  const approvals = approvers.size;
  return approvals >= rule.required ? { outcome: 'approved', approvals } : { outcome: 'waiting', approvals };
}

/**
 * Who may decide a hold: the rule's `reviewers:` and, once its escalation fired, its `escalate_to:`. Empty lets any
 * reviewer decide (an escalation then only tells more people). The engine, the dashboard and the messages all ask this.
 */
export function eligibleReviewers(d: Pick<StoredDecision, 'reviewers' | 'escalated_to'>): string[] {
  const named = d.reviewers ?? [];
  if (named.length === 0) return [];
  return [...new Set([...named, ...(d.escalated_to ?? [])])];
}

/** A rule's `reviewers:` list names emails or `group:name`; an empty list lets any reviewer decide. */
export function mayDecide(reviewer: Reviewer, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  return allowed.some((entry) =>
    entry.startsWith('group:') ? (reviewer.groups ?? []).includes(entry.slice(6)) : entry === reviewer.email,
  );
}

/** A reviewer's changed request, built and decided outside the vote's transaction. */
interface Modification {
  fromHash: string;
  params: Params;
  /** The changed request's bytes, for a Stripe call. */
  body: string | null;
  /** The changed body a generic call sends. */
  httpBody?: string;
  changes: ApprovalChanges;
  evaluation: Evaluation;
  requestHash: string;
}

export class ReviewSystem {
  constructor(
    private readonly r: EngineResources,
    private readonly evaluation: EvaluationSystem,
  ) {}

  /**
   * One reviewer's approval. With changes, the changed request is classified and decided again, bound anew, and
   * recorded as such; approvals given to the earlier version no longer count towards the quorum.
   */
  async approve(
    id: string,
    reviewer: Reviewer,
    note: string | null,
    changes: ApprovalChanges | null,
    context: ChangeContext,
  ): Promise<ActionRow> {
    const held = await readAction(this.r, id);
    const frozen = held.read ? null : await this.r.freezes.find(this.r.store, held.agent_id);
    if (frozen)
      throw new AirlockError('action_blocked', `${id} cannot be approved now. ${frozenReason(frozen)}`, {
        actionId: id,
      });
    const modified = changes && Object.keys(changes).length > 0 ? await this.#modify(id, changes) : null;
    // Decided again under the policy running now, in case this vote completes the quorum: what it now blocks
    // never executes, and a stricter quorum waits for its reviewers.
    const again = modified ? modified.evaluation : await this.evaluation.redecide(held);
    return this.#vote(id, reviewer, 'approve', note, modified, context, again);
  }

  async reject(
    id: string,
    reviewer: Reviewer,
    note: string | null,
    context: ChangeContext,
  ): Promise<ActionRow> {
    return this.#vote(id, reviewer, 'reject', note, null, context);
  }

  /** The requesting agent withdraws a held action. */
  async cancel(id: string, agent: Agent): Promise<ActionRow> {
    await this.r.store.transaction(async (tx) => {
      const action = await tx.getActionForUpdate(id);
      if (!action || action.agent_id !== agent.id) {
        throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
      }
      if (action.status !== 'awaiting_approval') {
        throw new AirlockError('already_decided', `Action ${id} is already ${action.status}`, {
          actionId: id,
        });
      }
      await transition(this.r, tx, id, 'awaiting_approval', 'cancelled', {
        type: 'action.cancelled',
        actor: `agent:${agent.name}`,
        data: {},
        at: this.r.clock.now().toISOString(),
        patch: {},
      });
    });
    announce(this.r, id, 'cancelled');
    return readAction(this.r, id);
  }

  /** Moves holds past their deadline to `expired`; they never execute. */
  async expireDue(): Promise<number> {
    const at = this.r.clock.now().toISOString();
    const ids = await this.r.store.listExpiredHolds(at, 100);
    let n = 0;
    for (const id of ids) {
      try {
        await this.r.store.transaction((tx) =>
          transition(this.r, tx, id, 'awaiting_approval', 'expired', {
            type: 'action.expired',
            actor: 'system',
            data: {},
            at,
            patch: {},
          }),
        );
        announce(this.r, id, 'expired');
        n++;
      } catch (err) {
        if (!(err instanceof TransitionConflict)) throw err; // decided meanwhile: nothing to expire
      }
    }
    return n;
  }

  /** Builds and evaluates the changed request outside the transaction; #vote applies it if nothing moved meanwhile. */
  async #modify(id: string, changes: ApprovalChanges): Promise<Modification> {
    const action = await readAction(this.r, id);
    if (action.mode === 'http') return this.#modifyHttp(action, changes);
    const params = JSON.parse(action.params) as Params;
    const next: Params = { ...params };
    if (changes.amount !== undefined) {
      checkLowerAmount(action, changes.amount);
      if (action.mode === 'decide') {
        next['intent'] = { ...((params['intent'] as Params | undefined) ?? {}), amount: changes.amount };
      } else {
        const field = classify({ method: action.method, path: action.path, params }).amountField;
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
    const sub = await this.evaluation.resubmission(action, next, classification);
    const evaluation = await this.evaluation.evaluate(sub, this.r.store, { excludeId: id });
    if (evaluation.decision.outcome === 'block') {
      throw new AirlockError(
        'action_blocked',
        `The changed request would be blocked by policy: ${evaluation.decision.reason}`,
        { actionId: id },
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

  /**
   * A generic call's lower amount: written into its body at the operator's route's amount location, every other byte
   * kept, and the new bytes are what the action now sends, hashes and is decided on.
   */
  async #modifyHttp(action: ActionRow, changes: ApprovalChanges): Promise<Modification> {
    for (const field of ['reason', 'metadata'] as const) {
      if (changes[field] !== undefined) {
        throw new AirlockError(
          'parameter_invalid',
          `A generic HTTP call's body is the caller's: a reviewer may lower its amount, not set its ${field}`,
          { param: field },
        );
      }
    }
    const amount = changes.amount;
    if (amount === undefined) {
      throw new AirlockError('parameter_missing', 'Nothing to change: give the lower amount', {
        param: 'amount',
      });
    }
    checkLowerAmount(action, amount);
    const route = routeOf(action);
    if (!route) {
      throw new AirlockError(
        'parameter_invalid',
        `${action.id} was held before Airlock kept its route, so its amount cannot be located; reject it instead`,
        { param: 'amount' },
      );
    }
    const url = new URL(action.url ?? '');
    const headers = JSON.parse(action.http_headers ?? '{}') as Record<string, string>;
    const body = withAmount(
      route,
      { method: action.method, pathname: url.pathname, search: url.search, headers, body: action.http_body },
      amount,
    );
    const params = JSON.parse(action.params) as Params;
    // The params keep the caller's form of the body (a JSON value or a string) and must encode to the new bytes.
    const next: Params = {
      ...params,
      body: typeof params['body'] === 'string' ? body : (JSON.parse(body) as Params),
    };
    if (typeof next['body'] !== 'string' && JSON.stringify(next['body']) !== body) {
      throw new AirlockError(
        'parameter_invalid',
        'The body cannot be rewritten so that it is sent as shown; reject it instead',
        { param: 'amount' },
      );
    }
    const classification = statedFacts(action.kind, amount, action.currency, { customer: action.customer });
    const sub = await this.evaluation.resubmission(action, next, classification);
    // The route's facts are the facts: nothing is looked up for a generic call. The caller's claims still count, as
    // they did when it was first decided: they can only make the decision stricter.
    sub.completed = classification;
    sub.declared = declaredClaims(action);
    const evaluation = await this.evaluation.evaluate(sub, this.r.store, { excludeId: action.id });
    if (evaluation.decision.outcome === 'block') {
      throw new AirlockError(
        'action_blocked',
        `The changed request would be blocked by policy: ${evaluation.decision.reason}`,
        { actionId: action.id },
      );
    }
    return {
      fromHash: action.request_hash,
      params: next,
      body: null,
      httpBody: body,
      changes: { amount },
      evaluation,
      requestHash: requestHash(
        action.method,
        action.path,
        next,
        action.stripe_account,
        action.stripe_context,
      ),
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
    await this.r.store.transaction(async (tx) => {
      let action = await tx.getActionForUpdate(id);
      if (!action) throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
      const at = this.r.clock.now().toISOString();
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
        await transition(this.r, tx, id, 'awaiting_approval', 'expired', {
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
      const eligible = eligibleReviewers(JSON.parse(action.decision) as StoredDecision);
      if (!mayDecide(reviewer, eligible)) {
        throw new AirlockError('forbidden', `This action needs a reviewer from ${eligible.join(', ')}`, {
          actionId: id,
        });
      }
      const previous = await tx.listApprovals(id);
      const actor = `reviewer:${reviewer.email}`;
      if (modified) action = await this.#applyModification(tx, action, modified, actor, at, rid);
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
      const votes: Vote[] = [
        ...previous.filter((a) => a !== mine).map(toVote),
        { reviewerId: reviewer.id, decision: vote, boundHash: bound },
      ];
      let q = quorum(votes, { required: action.approvals_required, boundHash: bound });
      if (q.outcome === 'rejected') {
        await transition(this.r, tx, id, 'awaiting_approval', 'rejected', {
          type: 'action.rejected',
          actor,
          data: { note, ...rid },
          at,
          patch: {},
        });
        newStatus = 'rejected';
        return;
      }
      const approvals = q.approvals;
      if (q.outcome === 'approved' && again) {
        if (again.stored.policy_version !== this.r.policy.version) {
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
          await transition(this.r, tx, id, 'awaiting_approval', 'blocked', {
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
        // A stricter quorum under the policy running now waits for its reviewers.
        q = quorum(votes, { required, boundHash: bound });
      }
      if (q.outcome !== 'approved') {
        await tx.appendLedger({
          actionId: id,
          type: 'approval.recorded',
          from: 'awaiting_approval',
          to: 'awaiting_approval',
          actor,
          data: { note, approvals, approvals_required: action.approvals_required, ...rid },
          at,
        });
        return;
      }
      // A decide-only action ends here; anything else is cleared for dispatch.
      const to: Status = action.mode === 'decide' ? 'approved' : 'pending';
      // This instance's dispatcher takes the first claim in the same commit, as on the allow path: one durable
      // commit fewer between the approval and the call to Stripe.
      const claim = to === 'pending' ? this.r.approvalClaim : null;
      const lease = claim
        ? {
            lease_owner: claim.owner,
            lease_until: new Date(Date.parse(at) + claim.leaseMs).toISOString(),
            attempts: action.attempts + 1,
          }
        : {};
      const moved = await transition(this.r, tx, id, 'awaiting_approval', to, {
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
    });
    const row = await readAction(this.r, id);
    if (newStatus) announce(this.r, id, newStatus, claimed);
    if (newStatus === 'expired')
      throw new AirlockError('action_expired', `Action ${id} expired before a decision`, { actionId: id });
    return row;
  }

  /** Writes a reviewer's changed request over the held one, if no one changed it meanwhile. */
  async #applyModification(
    tx: Store,
    action: ActionRow,
    modified: Modification,
    actor: string,
    at: string,
    rid: { request_id?: string },
  ): Promise<ActionRow> {
    const id = action.id;
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
    const patch: ActionPatch = {
      params: JSON.stringify(modified.params),
      ...(modified.body !== null ? { body: modified.body } : {}),
      ...(modified.httpBody !== undefined ? { http_body: modified.httpBody } : {}),
      original_params: action.original_params ?? action.params,
      amount: e.classification.amount,
      currency: e.classification.currency,
      amount_usd:
        e.classification.amount !== null && e.classification.currency
          ? toUsd(e.classification.amount, e.classification.currency, this.r.policy.currencyRates)
          : null,
      request_hash: modified.requestHash,
      policy_version: e.stored.policy_version,
      // Whom an escalation made eligible stays so for the changed request.
      decision: JSON.stringify(withEscalation(e.stored, action)),
      // A changed request that the policy would allow needs only this approval; one still under review keeps the
      // stricter of the two quorums.
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
    return { ...action, ...patch } as ActionRow;
  }
}

/** A reviewer's amount: a positive whole number of minor units, no more than the action's. */
function checkLowerAmount(action: ActionRow, amount: number): void {
  if (!Number.isSafeInteger(amount) || amount <= 0) {
    throw new AirlockError(
      'parameter_invalid',
      'The changed amount must be a positive whole number of minor units',
      { param: 'amount' },
    );
  }
  if (action.amount === null) {
    throw new AirlockError(
      'parameter_invalid',
      action.mode === 'http'
        ? "This call has no amount: the operator's route for it declares none (amount:); reject it instead"
        : 'This request has no amount to lower; reject it instead',
      { param: 'amount' },
    );
  }
  if (amount > Number(action.amount)) {
    throw new AirlockError('parameter_invalid', 'A reviewer may only lower the amount, never raise it', {
      param: 'amount',
    });
  }
}

function routeOf(action: ActionRow): Route | null {
  // A generic action keeps in its details the route its facts were read by.
  const route = action.details ? (JSON.parse(action.details) as { route?: Route }).route : undefined;
  return route && route.kind === action.kind ? route : null;
}

function withEscalation(next: StoredDecision, held: ActionRow): StoredDecision {
  const escalated = (JSON.parse(held.decision) as StoredDecision).escalated_to;
  return escalated ? { ...next, escalated_to: escalated } : next;
}

function toVote(a: { reviewer_id: string; decision: string; bound_hash: string }): Vote {
  // Anything but an approval stops the action: the store holds no other value, and none may ever let money move.
  const decision = a.decision === 'approve' ? 'approve' : 'reject';
  return { reviewerId: a.reviewer_id, decision, boundHash: a.bound_hash };
}
