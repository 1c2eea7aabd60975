import { newId, sha256Hex } from '../../src/ids.ts';
import type { ActionRow } from '../../src/store/actions.ts';

/**
 * A complete action row, every column as the engine writes them: a $10 refund held for review. Tests that write rows
 * to a store directly override what they are about and nothing else, so a new column is added here once.
 */
export function actionRow(over: Partial<ActionRow> = {}): ActionRow {
  const id = over.id ?? newId('act');
  const at = over.created_at ?? new Date().toISOString();
  return {
    id,
    status: 'awaiting_approval',
    kind: 'refund.create',
    read: 0,
    shadow: 0,
    method: 'POST',
    path: '/v1/refunds',
    url: null,
    params: '{"amount":"1000"}',
    amount: 1000,
    currency: 'usd',
    amount_usd: 10,
    agent_id: null,
    stripe_account: null,
    stripe_version: null,
    customer: null,
    idempotency_key: null,
    idempotency_scope: null,
    request_hash: sha256Hex(id),
    accepts_metadata: 1,
    decision: '{"outcome":"review"}',
    policy_version: 'pol_test',
    approvals_required: 1,
    expires_at: null,
    response_code: null,
    response_body: null,
    last_error: null,
    attempts: 0,
    next_attempt_at: null,
    lease_owner: null,
    lease_until: null,
    created_at: at,
    decided_at: at,
    completed_at: null,
    updated_at: at,
    requested_by: null,
    original_params: null,
    mode: 'stripe',
    callback_url: null,
    http_headers: null,
    http_body: null,
    details: null,
    stripe_context: null,
    on_account: null,
    body: 'amount=1000',
    caller_hash: null,
    derived: null,
    ...over,
  };
}
