// Times are ISO 8601 UTC strings in both dialects, so ordering and JSON output need no conversion.
export interface AgentsTable {
  id: string;
  name: string;
  created_at: string;
}

export interface AgentKeysTable {
  id: string;
  agent_id: string;
  key_hash: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
  expires_at: string | null;
}

export interface ReviewersTable {
  id: string;
  email: string;
  password_hash: string | null;
  groups: string; // JSON array
  created_at: string;
}

export interface ReviewerTokensTable {
  id: string;
  reviewer_id: string;
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export interface AdminTokensTable {
  id: string;
  name: string;
  token_hash: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export interface ActionsTable {
  id: string;
  status: string;
  kind: string;
  read: number;
  shadow: number;
  method: string;
  path: string;
  url: string | null;
  params: string; // JSON
  amount: number | null;
  currency: string | null;
  amount_usd: number | null;
  agent_id: string | null;
  stripe_account: string | null;
  stripe_version: string | null;
  customer: string | null;
  idempotency_key: string | null;
  // agent id + Stripe-Account + the agent's Idempotency-Key: a repeat finds the same action.
  idempotency_scope: string | null;
  request_hash: string;
  accepts_metadata: number;
  decision: string; // JSON
  policy_version: string;
  approvals_required: number;
  expires_at: string | null;
  response_code: number | null;
  response_body: string | null; // JSON
  last_error: string | null;
  attempts: number;
  next_attempt_at: string | null;
  lease_owner: string | null;
  lease_until: string | null;
  created_at: string;
  decided_at: string | null;
  completed_at: string | null;
  updated_at: string;
  requested_by: string | null;
  original_params: string | null;
  mode: string;
  callback_url: string | null;
  http_headers: string | null; // JSON, never credential headers
  http_body: string | null;
  details: string | null; // JSON
  /** Stripe-Context exactly as the caller sent it. */
  stripe_context: string | null;
  /** The account the call acts on: Stripe-Context's, else Stripe-Account; null for the platform. */
  on_account: string | null;
  /** The exact bytes sent upstream (form, JSON or query) for a Stripe action; request_hash covers them. */
  body: string | null;
  /** Hash of the request as the caller sent it: what a repeated Idempotency-Key must match. */
  caller_hash: string | null;
  /** JSON: an amount Airlock derived and how ({amount, currency, field, basis, recheck}); null when none. */
  derived: string | null;
}

export interface CallbacksTable {
  id: string;
  action_id: string;
  type: string;
  url: string;
  payload: string;
  attempts: number;
  next_attempt_at: string;
  delivered_at: string | null;
  gave_up_at: string | null;
  last_status: number | null;
  last_error: string | null;
  lease_until: string | null;
  created_at: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface ApprovalsTable {
  id: string;
  action_id: string;
  reviewer_id: string;
  reviewer_email: string;
  decision: string;
  note: string | null;
  changes: string | null;
  bound_hash: string;
  at: string;
  /** The action's agent, so an agent's votes are found without reading everyone's. */
  agent_id: string | null;
}

export interface LedgerTable {
  seq: number;
  action_id: string | null;
  type: string;
  from_status: string | null;
  to_status: string | null;
  actor: string;
  data: string; // JSON
  at: string;
  prev_hash: string;
  hash: string;
}

export interface LedgerHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface Database {
  agents: AgentsTable;
  agent_keys: AgentKeysTable;
  reviewers: ReviewersTable;
  reviewer_tokens: ReviewerTokensTable;
  admin_tokens: AdminTokensTable;
  actions: ActionsTable;
  approvals: ApprovalsTable;
  ledger: LedgerTable;
  ledger_head: LedgerHeadTable;
  callbacks: CallbacksTable;
  settings: SettingsTable;
}
