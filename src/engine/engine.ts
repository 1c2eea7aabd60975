import { EventEmitter } from 'node:events';
import { AirlockError, TransitionConflict } from '../errors.ts';
import { newId, sha256Hex } from '../ids.ts';
import { baseAttributes, decide, type Policy, type PolicyDecision, toUsd } from '../policy/index.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { Classification } from '../stripe/classify.ts';
import type { FactSource } from '../stripe/lookups.ts';
import { canonicalJson, type Params } from '../stripe/params.ts';
import { type Clock, systemClock } from './clock.ts';
import { assertNever, isTerminal, type Status } from './status.ts';

export interface Agent {
  id: string;
  name: string;
}

export interface Reviewer {
  id: string;
  email: string;
}

export interface Submission {
  agent: Agent;
  method: string;
  path: string;
  params: Params;
  stripeAccount: string | null;
  stripeVersion: string | null;
  idempotencyKey: string | null;
  classification: Classification;
}

export interface StoredDecision {
  outcome: PolicyDecision['outcome'];
  rules: string[];
  policy_version: string;
  risk_score: number | null;
  risk_factors: { name: string; points: number }[];
  reason: string;
  shadow_outcome: PolicyDecision['shadowOutcome'];
}

export interface ActionChange {
  id: string;
  status: Status;
}

/** Hash of the canonical request: what an approval is bound to, and what a repeated Idempotency-Key must match. */
export function requestHash(
  method: string,
  path: string,
  params: Params,
  stripeAccount: string | null,
): string {
  return sha256Hex(canonicalJson({ method, path, params, stripe_account: stripeAccount }));
}

export function boundHash(action: Pick<ActionRow, 'request_hash' | 'policy_version'>): string {
  return sha256Hex(`${action.request_hash}\n${action.policy_version}`);
}

function targetStatus(outcome: PolicyDecision['outcome']): Status {
  switch (outcome) {
    case 'allow':
      return 'pending';
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
  readonly changes = new EventEmitter<{ change: [ActionChange] }>();
  #policy: Policy;

  constructor(
    readonly store: Store,
    policy: Policy,
    readonly clock: Clock = systemClock,
    readonly facts: FactSource | null = null,
  ) {
    this.#policy = policy;
    this.changes.setMaxListeners(0);
  }

  get policy(): Policy {
    return this.#policy;
  }

  setPolicy(policy: Policy): void {
    this.#policy = policy;
  }

  decide(
    sub: Pick<Submission, 'agent' | 'stripeAccount' | 'classification' | 'method' | 'path' | 'params'>,
  ): PolicyDecision {
    const c = sub.classification;
    const attributes = baseAttributes(
      {
        kind: c.kind,
        read: c.read,
        method: sub.method,
        path: sub.path,
        amount: c.amount,
        currency: c.currency,
        agent: sub.agent.name,
        stripe_account: sub.stripeAccount,
        customer: c.customer,
        charge: c.charge,
        destination: c.destination,
        payment_intent: c.payment_intent,
      },
      this.clock.now(),
      this.#policy,
    );
    return decide(this.#policy, { attributes, metadata: metadataOf(sub.params) });
  }

  /**
   * Records a new action and its decision before anything is forwarded. A repeat of the same agent
   * Idempotency-Key returns the existing action instead of creating a second one.
   */
  async submit(sub: Submission): Promise<{ action: ActionRow; created: boolean }> {
    const hash = requestHash(sub.method, sub.path, sub.params, sub.stripeAccount);
    const scope = sub.idempotencyKey
      ? `${sub.agent.id}|${sub.stripeAccount ?? ''}|${sub.idempotencyKey}`
      : null;
    if (scope) {
      const existing = await this.store.findActionByScope(scope);
      if (existing) return { action: this.#checkRepeat(existing, hash, sub.idempotencyKey!), created: false };
    }

    const policy = this.#policy;
    if (this.facts) {
      sub = { ...sub, classification: await this.facts.complete(sub.classification, sub.stripeAccount) };
    }
    const decision = this.decide(sub);
    const now = this.clock.now();
    const at = now.toISOString();
    const c = sub.classification;
    const status = targetStatus(decision.outcome);
    const stored: StoredDecision = {
      outcome: decision.outcome,
      rules: decision.rules,
      policy_version: policy.version,
      risk_score: null,
      risk_factors: [],
      reason: decision.reason,
      shadow_outcome: decision.shadowOutcome,
    };
    const amountUsd =
      c.amount !== null && c.currency ? toUsd(c.amount, c.currency, policy.currencyRates) : null;
    const row: ActionRow = {
      id: newId('act'),
      status: 'received',
      kind: c.kind,
      read: c.read ? 1 : 0,
      shadow: decision.shadow ? 1 : 0,
      method: sub.method,
      path: sub.path,
      url: null,
      params: JSON.stringify(sub.params),
      amount: c.amount,
      currency: c.currency,
      amount_usd: amountUsd,
      agent_id: sub.agent.id,
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
    };

    try {
      await this.store.transaction(async (tx) => {
        await tx.insertAction(row);
        await tx.appendLedger({
          actionId: row.id,
          type: 'action.received',
          from: null,
          to: 'received',
          actor: `agent:${sub.agent.name}`,
          data: {
            kind: row.kind,
            method: row.method,
            path: row.path,
            params: sub.params,
            amount: row.amount,
            currency: row.currency,
            stripe_account: row.stripe_account,
            idempotency_key: row.idempotency_key,
            request_hash: hash,
          },
          at,
        });
        await this.#transition(tx, row.id, 'received', status, {
          type: 'action.decided',
          actor: 'policy',
          data: { ...stored },
          at,
          patch: { decided_at: at },
        });
      });
    } catch (err) {
      // Two identical retries raced: the unique scope let one in; answer the other with it.
      if (scope && isUniqueViolation(err)) {
        const existing = await this.store.findActionByScope(scope);
        if (existing)
          return { action: this.#checkRepeat(existing, hash, sub.idempotencyKey!), created: false };
      }
      throw err;
    }
    this.#emit(row.id, status);
    return { action: { ...row, status, decided_at: at }, created: true };
  }

  #checkRepeat(existing: ActionRow, hash: string, key: string): ActionRow {
    if (existing.request_hash !== hash) {
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

  async approve(id: string, reviewer: Reviewer, note: string | null): Promise<ActionRow> {
    return this.#vote(id, reviewer, 'approve', note);
  }

  async reject(id: string, reviewer: Reviewer, note: string | null): Promise<ActionRow> {
    return this.#vote(id, reviewer, 'reject', note);
  }

  async #vote(
    id: string,
    reviewer: Reviewer,
    vote: 'approve' | 'reject',
    note: string | null,
  ): Promise<ActionRow> {
    let newStatus: Status | null = null;
    await this.store.transaction(async (tx) => {
      const action = await tx.getAction(id);
      if (!action) throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
      const at = this.clock.now().toISOString();
      if (action.status !== 'awaiting_approval') {
        const approvals = await tx.listApprovals(id);
        const by = approvals.map((a) => `${a.decision} by ${a.reviewer_email}`).join(', ');
        throw new AirlockError(
          'already_decided',
          `Action ${id} is already ${action.status}${by ? ` (${by})` : ''}`,
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
      const previous = await tx.listApprovals(id);
      if (previous.some((a) => a.reviewer_id === reviewer.id)) {
        throw new AirlockError('already_decided', `${reviewer.email} has already voted on ${id}`, {
          actionId: id,
        });
      }
      await tx.insertApproval({
        id: newId('apv'),
        action_id: id,
        reviewer_id: reviewer.id,
        reviewer_email: reviewer.email,
        decision: vote,
        note,
        changes: null,
        bound_hash: boundHash(action),
        at,
      });
      const actor = `reviewer:${reviewer.email}`;
      if (vote === 'reject') {
        await this.#transition(tx, id, 'awaiting_approval', 'rejected', {
          type: 'action.rejected',
          actor,
          data: { note },
          at,
          patch: {},
        });
        newStatus = 'rejected';
        return;
      }
      const approvals = previous.filter((a) => a.decision === 'approve').length + 1;
      if (approvals >= action.approvals_required) {
        await this.#transition(tx, id, 'awaiting_approval', 'pending', {
          type: 'action.approved',
          actor,
          data: {
            note,
            approvals,
            approvals_required: action.approvals_required,
            bound_hash: boundHash(action),
          },
          at,
          patch: {},
        });
        newStatus = 'pending';
      } else {
        await tx.appendLedger({
          actionId: id,
          type: 'approval.recorded',
          from: 'awaiting_approval',
          to: 'awaiting_approval',
          actor,
          data: { note, approvals, approvals_required: action.approvals_required },
          at,
        });
      }
    });
    const row = await this.get(id);
    if (newStatus) this.#emit(id, newStatus);
    if (newStatus === 'expired')
      throw new AirlockError('action_expired', `Action ${id} expired before a decision`, { actionId: id });
    return row;
  }

  /** The requesting agent withdraws a held action. */
  async cancel(id: string, agent: Agent): Promise<ActionRow> {
    await this.store.transaction(async (tx) => {
      const action = await tx.getAction(id);
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

  /** Checks that every approval was given for exactly this request under this policy version. */
  async approvalsBindTo(action: ActionRow): Promise<boolean> {
    const decision = JSON.parse(action.decision) as StoredDecision;
    if (decision.outcome !== 'review') return true;
    const approvals = (await this.store.listApprovals(action.id)).filter((a) => a.decision === 'approve');
    const expected = boundHash(action);
    return approvals.length >= action.approvals_required && approvals.every((a) => a.bound_hash === expected);
  }

  async complete(id: string, owner: string, code: number, body: unknown): Promise<void> {
    const at = this.clock.now().toISOString();
    await this.store.transaction((tx) =>
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
    );
    this.#emit(id, 'completed');
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
  ): Promise<void> {
    const ok = await tx.updateActionFrom(id, from, { ...e.patch, status: to, updated_at: e.at });
    if (!ok) {
      const current = await tx.getAction(id);
      throw new TransitionConflict(id, from, current?.status ?? null);
    }
    await tx.appendLedger({ actionId: id, type: e.type, from, to, actor: e.actor, data: e.data, at: e.at });
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

export function isSettled(status: Status): boolean {
  return isTerminal(status);
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

function isUniqueViolation(err: unknown): boolean {
  const code = err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : '';
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}
