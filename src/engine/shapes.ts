// The bodies of callbacks for actions created through a compatible shape (src/http/compat/): the caller's code reads
// the product's own field names there, as in the answer to its request. Pure views over the stored row.
import type { ActionRow, ApprovalRow } from '../store/store.ts';
import { type ActionObject, type DecisionObject, toActionObject, toDecisionObject } from './view.ts';

export const CALLBACK_SHAPES = ['cheqpoint', 'safefetch'] as const;
export type CallbackShape = (typeof CALLBACK_SHAPES)[number];

/** The shape an action was requested in, kept in its details; null for Airlock's own APIs. */
export function callbackShapeOf(row: Pick<ActionRow, 'details'>): CallbackShape | null {
  if (!row.details) return null;
  const shape = (JSON.parse(row.details) as { callback_shape?: unknown }).callback_shape;
  return CALLBACK_SHAPES.find((s) => s === shape) ?? null;
}

/** Cheqpoint's answer to requestSync, requestAsync's callback and a status read. */
export interface CheqpointAnswer {
  approvalId: string;
  status: 'approved' | 'rejected' | 'pending';
  /** What the reviewer changed, in Cheqpoint's field names; callers use it in preference to their own payload. */
  modifiedDetails: { amount_cents?: number; reason?: string; metadata?: Record<string, string> } | null;
  decisionNote: string | null;
  // Airlock's own facts, which Cheqpoint's three statuses fold together (a block and an expiry are both rejected).
  outcome: DecisionObject['outcome'];
  reasonCode: string;
  message: string;
  policyVersion: string;
  shadow: boolean;
  expiresAt: string | null;
  decidedAt: string | null;
}

export function cheqpointStatus(status: string): CheqpointAnswer['status'] {
  switch (status) {
    case 'approved':
      return 'approved';
    case 'received':
    case 'awaiting_approval':
      return 'pending';
    // Only `approved` lets the caller act: every other end, and any status not known here, is a refusal.
    default:
      return 'rejected';
  }
}

export function toCheqpointAnswer(d: DecisionObject): CheqpointAnswer {
  const m = d.modified_details;
  let modifiedDetails: CheqpointAnswer['modifiedDetails'] = null;
  if (m) {
    modifiedDetails = {};
    if (typeof m['amount'] === 'number') modifiedDetails.amount_cents = m['amount'];
    if (typeof m['reason'] === 'string') modifiedDetails.reason = m['reason'];
    if (m['metadata'] && typeof m['metadata'] === 'object')
      modifiedDetails.metadata = m['metadata'] as Record<string, string>;
  }
  return {
    approvalId: d.id,
    status: cheqpointStatus(d.status),
    modifiedDetails,
    decisionNote: d.decision_note,
    outcome: d.outcome,
    reasonCode: d.reason_code,
    message: d.message,
    policyVersion: d.policy_version,
    shadow: d.shadow,
    expiresAt: d.expires_at,
    decidedAt: d.decided_at,
  };
}

/** SafeFetch's action: the action object with `modified_details`, what a reviewer changed (a lower amount), or null. */
export type SafeFetchAction<T extends Pick<ActionObject, 'approvals'> = ActionObject> = T & {
  modified_details: Record<string, unknown> | null;
};

export function toSafeFetchAction<T extends Pick<ActionObject, 'approvals'>>(action: T): SafeFetchAction<T> {
  // The latest change stands: approvals of an earlier version were set aside when it was made.
  const changed = action.approvals.filter((a) => a.changes).at(-1);
  return { ...action, modified_details: (changed?.changes as Record<string, unknown> | undefined) ?? null };
}

/**
 * The body of a callback in the shape the action was requested in: Cheqpoint's final decision, or SafeFetch's
 * action (the action object itself, with `status`, `response_code`, `response_body`, `last_error` and
 * `modified_details`).
 */
export function shapedCallbackBody(
  shape: CallbackShape,
  row: ActionRow,
  approvals: ApprovalRow[],
  agent: ActionObject['agent'],
): unknown {
  switch (shape) {
    case 'cheqpoint':
      return toCheqpointAnswer(toDecisionObject(row, approvals));
    case 'safefetch':
      return toSafeFetchAction(toActionObject(row, approvals, agent));
    default: {
      const unknown: never = shape;
      throw new Error(`No callback body for shape ${String(unknown)}`);
    }
  }
}
