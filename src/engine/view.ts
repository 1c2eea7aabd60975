import type { ActionRow, ApprovalRow } from '../store/store.ts';
import type { Derived } from './bind.ts';
import type { StoredDecision } from './types.ts';

export interface ActionObject {
  id: string;
  object: 'action';
  status: string;
  kind: string;
  read: boolean;
  shadow: boolean;
  method: string;
  path: string;
  url: string | null;
  params: unknown;
  amount: number | null;
  currency: string | null;
  amount_usd: number | null;
  agent: { id: string; name: string } | null;
  stripe_account: string | null;
  /** Stripe-Context as the caller sent it. */
  stripe_context: string | null;
  idempotency_key: string | null;
  /** An amount Airlock derived from Stripe (a full refund's) and how; written into the request when it takes one. */
  derived: Derived | null;
  decision: StoredDecision;
  approvals: { reviewer: string; decision: string; note: string | null; at: string; changes: unknown }[];
  approvals_required: number;
  expires_at: string | null;
  response_code: number | null;
  response_body: unknown;
  last_error: string | null;
  attempts: number;
  created_at: string;
  decided_at: string | null;
  completed_at: string | null;
}

function approvalView(a: ApprovalRow): ActionObject['approvals'][number] {
  return {
    reviewer: a.reviewer_email,
    decision: a.decision,
    note: a.note,
    at: a.at,
    changes: a.changes ? JSON.parse(a.changes) : null,
  };
}

/** The public shape of an action (PRODUCT.md). Built from stored columns only, which never hold secrets. */
export function toActionObject(
  row: ActionRow,
  approvals: ApprovalRow[],
  agent: { id: string; name: string } | null,
): ActionObject {
  return {
    id: row.id,
    object: 'action',
    status: row.status,
    kind: row.kind,
    read: row.read === 1,
    shadow: row.shadow === 1,
    method: row.method,
    path: row.path,
    url: row.url,
    params: JSON.parse(row.params),
    amount: row.amount === null ? null : Number(row.amount),
    currency: row.currency,
    amount_usd: row.amount_usd,
    agent,
    stripe_account: row.stripe_account,
    stripe_context: row.stripe_context ?? null,
    idempotency_key: row.idempotency_key,
    derived: row.derived ? (JSON.parse(row.derived) as Derived) : null,
    decision: JSON.parse(row.decision) as StoredDecision,
    approvals: approvals.map(approvalView),
    approvals_required: row.approvals_required,
    expires_at: row.expires_at,
    response_code: row.response_code,
    response_body: row.response_body ? JSON.parse(row.response_body) : null,
    last_error: row.last_error,
    attempts: row.attempts,
    created_at: row.created_at,
    decided_at: row.decided_at,
    completed_at: row.completed_at,
  };
}

export interface DecisionObject {
  id: string;
  object: 'decision';
  outcome: StoredDecision['outcome'];
  status: string;
  reason_code: string;
  message: string;
  policy_version: string;
  risk_score: number | null;
  shadow: boolean;
  shadow_outcome: StoredDecision['shadow_outcome'];
  modified_details: Record<string, unknown> | null;
  decision_note: string | null;
  intent: { kind: string; amount: number | null; currency: string | null; metadata: Record<string, string> };
  approvals: ActionObject['approvals'];
  expires_at: string | null;
  created_at: string;
  decided_at: string | null;
}

function reasonCode(row: ActionRow, decision: StoredDecision, approvals: ApprovalRow[]): string {
  switch (row.status) {
    case 'approved':
      return decision.outcome === 'allow' && !approvals.some((a) => a.decision === 'approve')
        ? 'policy_allow'
        : 'reviewer_approved';
    case 'rejected':
      return 'reviewer_rejected';
    case 'blocked':
      return 'policy_block';
    case 'expired':
      return 'expired';
    case 'cancelled':
      return 'cancelled';
    default:
      return 'policy_review';
  }
}

/** A decide-only action as the decisions API shows it (Axiru/Cheqpoint-style). */
export function toDecisionObject(row: ActionRow, approvals: ApprovalRow[]): DecisionObject {
  const decision = JSON.parse(row.decision) as StoredDecision;
  const params = JSON.parse(row.params) as Record<string, unknown>;
  const changed = approvals.filter((a) => a.changes).at(-1);
  const deciding = approvals.at(-1);
  return {
    id: row.id,
    object: 'decision',
    outcome: decision.outcome,
    status: row.status,
    reason_code: reasonCode(row, decision, approvals),
    message: decision.reason,
    policy_version: row.policy_version,
    risk_score: decision.risk_score,
    shadow: row.shadow === 1,
    shadow_outcome: decision.shadow_outcome,
    modified_details: changed?.changes ? (JSON.parse(changed.changes) as Record<string, unknown>) : null,
    decision_note: deciding?.note ?? null,
    intent: {
      kind: row.kind,
      amount: row.amount === null ? null : Number(row.amount),
      currency: row.currency,
      metadata: (params['metadata'] as Record<string, string> | undefined) ?? {},
    },
    approvals: approvals.map(approvalView),
    expires_at: row.expires_at,
    created_at: row.created_at,
    decided_at: row.status === 'awaiting_approval' ? null : row.updated_at,
  };
}
