import type { ColumnType, Generated } from 'kysely';
import type { Status } from './status.ts';

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
  /** Set on insert and by the transitions only (ActionPatch leaves it out); the database checks it (0014). */
  status: Status;
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

/** What every outbox table has: what the delivery loop claims, retries and settles by. */
export interface OutboxColumns {
  id: string;
  attempts: number;
  next_attempt_at: string;
  delivered_at: string | null;
  gave_up_at: string | null;
  /** The HTTP status (or, for an email, the SMTP reply code) of the last try. */
  last_status: number | null;
  last_error: string | null;
  lease_until: string | null;
  created_at: string;
}

export interface CallbacksTable extends OutboxColumns {
  action_id: string;
  type: string;
  url: string;
  payload: string;
}

/** Messages to reviewers about a hold: an outbox written in the transaction that holds the action. */
export interface NotificationsTable extends OutboxColumns {
  action_id: string;
  /** What happened: `review_requested`. */
  event: string;
  /** The request hash the hold is about: a new hold of a changed request is a new message. */
  version: string;
  channel: string;
  /** An email address, or `webhook` for the one Slack webhook. */
  recipient: string;
  /** Set when the recipient may decide: the message carries their own approve and reject links. */
  reviewer_id: string | null;
  /** The message as composed on the first try (JSON), sent as is on every retry; null until then. */
  payload: string | null;
  /** queued, sent, failed (gave up) or skipped (the action was decided before it could be sent). */
  status: string;
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

/**
 * seq, prev_hash and hash are the chain position, null until sealed (0015_ledger_sealer); pos is the insertion
 * order; xid is the PostgreSQL writing transaction's id (xid8, as text), null on SQLite and on rows from before.
 */
export interface LedgerTable {
  pos: Generated<number>;
  xid: Generated<string | null>;
  seq: number | null;
  action_id: string | null;
  type: string;
  from_status: string | null;
  to_status: string | null;
  actor: string;
  data: string; // JSON
  at: string;
  prev_hash: string | null;
  hash: string | null;
}

export interface LedgerHeadTable {
  id: number;
  seq: number;
  hash: string;
  /** PostgreSQL: the least transaction id an unsealed event can have (migration 0020); read as text. */
  unsealed_from: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Signed digests of the ledger head (src/audit/digest.ts); the key that signs them is never stored. */
export interface LedgerDigestsTable {
  number: number;
  version: number;
  ledger_seq: number;
  ledger_hash: string;
  signed_at: string;
  previous_digest_hash: string;
  key_id: string;
  digest_hash: string;
  signature: string;
}

/** Dashboard sessions (0005_review): the cookie holds a random token; only its hash is stored. */
export interface ReviewSessionsTable {
  id_hash: string;
  reviewer_id: string;
  csrf: string;
  created_at: string;
  expires_at: string;
}

/** Signed email links (0005_review): one row per link; the approve and reject links of one message share a batch. */
export interface ReviewLinksTable {
  id: string;
  batch_id: string;
  action_id: string;
  reviewer_id: string;
  verb: string;
  expires_at: string;
  used_at: string | null;
  created_at: string;
}

/** The key that signs email links (0005_review), one row shared by every instance on this store. */
export interface ReviewKeysTable {
  id: number;
  secret: string;
}

/** The kill switch (0007_freeze): one row per frozen agent id, or '*' for every agent. */
export interface FreezesTable {
  scope: string;
  reason: string | null;
  created_at: string;
}

/** Every policy version ever loaded (0003_policy), with its text, so a decision's policy_version can be read back. */
export interface PolicyVersionsTable {
  version: string;
  file: string;
  text: string;
  first_loaded_at: string;
  last_loaded_at: string;
}

/** Slack users linked to reviewers (0016_slack_interactive), by the CLI or by a verified email. */
export interface SlackUsersTable {
  slack_user_id: string;
  reviewer_id: string;
  /** `cli` or `email`. */
  linked_by: string;
  linked_at: string;
}

/** Each hold's Slack message (0016_slack_interactive): where it is, to update it when the action is decided. */
export interface SlackMessagesTable {
  action_id: string;
  channel: string;
  ts: string;
  created_at: string;
}

/** A hold's reminder or escalation (0017_reminders): due once, claimed by the sweep that sets `fired_at`. */
export interface RemindersTable {
  action_id: string;
  /** `remind` or `escalate`. */
  kind: string;
  due_at: string;
  fired_at: string | null;
  created_at: string;
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
  ledger_digests: LedgerDigestsTable;
  callbacks: CallbacksTable;
  notifications: NotificationsTable;
  settings: SettingsTable;
  review_sessions: ReviewSessionsTable;
  review_links: ReviewLinksTable;
  review_keys: ReviewKeysTable;
  freezes: FreezesTable;
  policy_versions: PolicyVersionsTable;
  slack_users: SlackUsersTable;
  slack_messages: SlackMessagesTable;
  reminders: RemindersTable;
  stripe_events: StripeEventsTable;
  stripe_alerts: StripeAlertsTable;
  velocity_minutes: VelocityMinutesTable;
}

/** Velocity windows per minute, PostgreSQL only (migration 0019_velocity_minutes, src/store/velocity-buckets.ts). */
export interface VelocityMinutesTable {
  scope: 'agent' | 'customer' | 'account';
  /** The agent or customer; '' for the account scope. */
  subject: string;
  /** The account the actions ran on, '' for the platform; '' for the agent scope. */
  account: string;
  /** created_at's first 16 characters: YYYY-MM-DDTHH:MM. */
  minute: string;
  kind: string;
  read: number;
  /** The agent, for the customer and account scopes ('' for none); '' for the agent scope. */
  shard: string;
  n: number;
  usd_cents: number;
}

/** Stripe Events received (migration 0018_stripe_events). */
export interface StripeEventsTable {
  id: string;
  type: string;
  /** Stripe's `created`, Unix seconds. */
  created: number;
  livemode: number;
  object_id: string | null;
  request_id: string | null;
  idempotency_key: string | null;
  /** airlock, automation, outside, or none (an event that moves no money). */
  origin: string;
  kind: string | null;
  amount: number | null;
  currency: string | null;
  /** At the policy's currency rates when received: what velocity windows add up. */
  amount_usd: number | null;
  customer: string | null;
  charge: string | null;
  /** The connected account a Connect event is about (its `account`); null: the platform. */
  account: string | null;
  /** Airlock's action the event is about, when it is one. */
  action_id: string | null;
  /** 1 when the policy names this kind as expected outside Airlock: recorded, not alerted. */
  expected: number;
  /** webhook or backfill. */
  via: string;
  payload: string;
  received_at: string;
  /** The newest accepted webhook delivery's signature time (Unix seconds); null for a backfilled event. */
  signed_at: number | null;
}

/** Alerts about outside events, one per channel and recipient. */
export interface StripeAlertsTable extends OutboxColumns {
  event_id: string;
  channel: string;
  recipient: string;
  payload: string | null;
}
