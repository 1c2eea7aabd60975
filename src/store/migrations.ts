import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { rebuildBuckets } from './velocity-buckets.ts';

export type Dialect = 'sqlite' | 'postgres';

// Migrations are code, versioned by name, and applied in order at start-up. Never edit a shipped one: add the next.
function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_core': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('agents')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('agent_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('agent_id', 'text', (c) => c.notNull().references('agents.id'))
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('prefix', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('revoked_at', 'text')
          .execute();
        await db.schema
          .createTable('reviewers')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('email', 'text', (c) => c.notNull().unique())
          .addColumn('password_hash', 'text')
          .addColumn('groups', 'text', (c) => c.notNull().defaultTo('[]'))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('reviewer_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('reviewer_id', 'text', (c) => c.notNull().references('reviewers.id'))
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('actions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('read', 'integer', (c) => c.notNull())
          .addColumn('shadow', 'integer', (c) => c.notNull())
          .addColumn('method', 'text', (c) => c.notNull())
          .addColumn('path', 'text', (c) => c.notNull())
          .addColumn('url', 'text')
          .addColumn('params', 'text', (c) => c.notNull())
          .addColumn('amount', 'bigint')
          .addColumn('currency', 'text')
          .addColumn('amount_usd', 'double precision')
          .addColumn('agent_id', 'text')
          .addColumn('stripe_account', 'text')
          .addColumn('stripe_version', 'text')
          .addColumn('customer', 'text')
          .addColumn('idempotency_key', 'text')
          .addColumn('idempotency_scope', 'text', (c) => c.unique())
          .addColumn('request_hash', 'text', (c) => c.notNull())
          .addColumn('accepts_metadata', 'integer', (c) => c.notNull())
          .addColumn('decision', 'text', (c) => c.notNull())
          .addColumn('policy_version', 'text', (c) => c.notNull())
          .addColumn('approvals_required', 'integer', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('response_code', 'integer')
          .addColumn('response_body', 'text')
          .addColumn('last_error', 'text')
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'text')
          .addColumn('lease_owner', 'text')
          .addColumn('lease_until', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('decided_at', 'text')
          .addColumn('completed_at', 'text')
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('actions_status_idx')
          .on('actions')
          .columns(['status', 'next_attempt_at'])
          .execute();
        await db.schema
          .createIndex('actions_created_idx')
          .on('actions')
          .columns(['created_at', 'id'])
          .execute();
        await db.schema
          .createIndex('actions_agent_kind_idx')
          .on('actions')
          .columns(['agent_id', 'kind', 'created_at'])
          .execute();
        await db.schema
          .createTable('approvals')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('action_id', 'text', (c) => c.notNull().references('actions.id'))
          .addColumn('reviewer_id', 'text', (c) => c.notNull())
          .addColumn('reviewer_email', 'text', (c) => c.notNull())
          .addColumn('decision', 'text', (c) => c.notNull())
          .addColumn('note', 'text')
          .addColumn('changes', 'text')
          .addColumn('bound_hash', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          // One vote per reviewer per action: quorum counts distinct people.
          .addUniqueConstraint('approvals_action_reviewer_uq', ['action_id', 'reviewer_id'])
          .execute();
        await db.schema
          .createTable('ledger')
          // seq is assigned from ledger_head inside the appending transaction, so it is gapless by construction.
          .addColumn('seq', 'integer', (c) => c.primaryKey())
          .addColumn('action_id', 'text')
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('from_status', 'text')
          .addColumn('to_status', 'text')
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('prev_hash', 'text', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('ledger_action_idx').on('ledger').columns(['action_id', 'seq']).execute();
        // The head row pins the chain's end, so deleting the newest events is detected too.
        await db.schema
          .createTable('ledger_head')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('hash', 'text', (c) => c.notNull())
          .execute();
        await sql`insert into ledger_head (id, seq, hash) values (1, 0, ${GENESIS_HASH})`.execute(db);
      },
    },
    '0002_requester_and_changes': {
      async up(db: Kysely<unknown>) {
        // Who asked: an agent (agent_id) or a reviewer acting in the dashboard, who then may not approve it.
        await db.schema.alterTable('actions').addColumn('requested_by', 'text').execute();
        // The request as first received, kept when a reviewer approves with changes.
        await db.schema.alterTable('actions').addColumn('original_params', 'text').execute();
      },
    },
    '0003_policy': {
      async up(db: Kysely<unknown>) {
        // Velocity windows read (scope, kind, time range) and sum amount_usd over counted statuses: covering
        // indexes keep one decision's cost bound by the window's rows, not by the size of the ledger.
        await db.schema
          .createIndex('actions_velocity_agent_idx')
          .on('actions')
          .columns(['agent_id', 'kind', 'created_at', 'status', 'amount_usd'])
          .execute();
        await db.schema
          .createIndex('actions_velocity_agent_time_idx')
          .on('actions')
          .columns(['agent_id', 'created_at', 'read', 'status', 'amount_usd'])
          .execute();
        await db.schema
          .createIndex('actions_velocity_customer_idx')
          .on('actions')
          .columns(['customer', 'kind', 'created_at', 'status', 'amount_usd'])
          .execute();
        await db.schema
          .createIndex('actions_velocity_kind_idx')
          .on('actions')
          .columns(['kind', 'created_at', 'status', 'amount_usd'])
          .execute();
        await db.schema.createIndex('approvals_at_idx').on('approvals').columns(['at']).execute();
        // Every policy version ever loaded, with its text, so a decision's policy_version can be read back.
        await db.schema
          .createTable('policy_versions')
          .addColumn('version', 'text', (c) => c.primaryKey())
          .addColumn('file', 'text', (c) => c.notNull())
          .addColumn('text', 'text', (c) => c.notNull())
          .addColumn('first_loaded_at', 'text', (c) => c.notNull())
          .addColumn('last_loaded_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0006_actions_api': {
      async up(db: Kysely<unknown>) {
        // stripe: a proxied Stripe call; http: a generic call through the actions API; decide: decide-only.
        await db.schema
          .alterTable('actions')
          .addColumn('mode', 'text', (c) => c.notNull().defaultTo('stripe'))
          .execute();
        await db.schema.alterTable('actions').addColumn('callback_url', 'text').execute();
        await db.schema.alterTable('actions').addColumn('http_headers', 'text').execute();
        await db.schema.alterTable('actions').addColumn('http_body', 'text').execute();
        // Summary, justification, context and notify targets given by the caller: shown to reviewers.
        await db.schema.alterTable('actions').addColumn('details', 'text').execute();
        await db.schema
          .createTable('callbacks')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('action_id', 'text', (c) => c.notNull().references('actions.id'))
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'text', (c) => c.notNull())
          .addColumn('delivered_at', 'text')
          .addColumn('gave_up_at', 'text')
          .addColumn('last_status', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('lease_until', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          // One event per action and type: re-delivery is a retry of the same event, never a second event.
          .addUniqueConstraint('callbacks_action_type_uq', ['action_id', 'type'])
          .execute();
        await db.schema
          .createIndex('callbacks_due_idx')
          .on('callbacks')
          .columns(['delivered_at', 'next_attempt_at'])
          .execute();
        await db.schema
          .createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0005_review': {
      async up(db: Kysely<unknown>) {
        // Dashboard sessions: the cookie holds a random token; only its hash is stored.
        await db.schema
          .createTable('review_sessions')
          .addColumn('id_hash', 'text', (c) => c.primaryKey())
          .addColumn('reviewer_id', 'text', (c) => c.notNull().references('reviewers.id'))
          .addColumn('csrf', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        // Signed email links: one row per link; the approve and reject links of one message share a batch.
        await db.schema
          .createTable('review_links')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('batch_id', 'text', (c) => c.notNull())
          .addColumn('action_id', 'text', (c) => c.notNull().references('actions.id'))
          .addColumn('reviewer_id', 'text', (c) => c.notNull().references('reviewers.id'))
          .addColumn('verb', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('used_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('review_links_batch_idx').on('review_links').column('batch_id').execute();
        // The key that signs email links, shared by every instance on this store.
        await db.schema
          .createTable('review_keys')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('secret', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0007_freeze': {
      async up(db: Kysely<unknown>) {
        // The kill switch: one row per frozen agent id, or '*' for every agent.
        await db.schema
          .createTable('freezes')
          .addColumn('scope', 'text', (c) => c.primaryKey())
          .addColumn('reason', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0008_credentials': {
      async up(db: Kysely<unknown>) {
        // Optional expiry on every credential; reviewer tokens become revocable like agent keys.
        await db.schema.alterTable('agent_keys').addColumn('expires_at', 'text').execute();
        await db.schema.alterTable('reviewer_tokens').addColumn('expires_at', 'text').execute();
        await db.schema.alterTable('reviewer_tokens').addColumn('revoked_at', 'text').execute();
        // Operator tokens for the admin API (freeze, unfreeze, revoke): never the money path, never approvals.
        await db.schema
          .createTable('admin_tokens')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('prefix', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('revoked_at', 'text')
          .execute();
      },
    },
    '0009_fewer_action_indexes': {
      async up(db: Kysely<unknown>) {
        // (agent_id, kind, created_at) is a prefix of actions_velocity_agent_idx, which serves the same queries;
        // every action insert paid for a tenth b-tree for nothing.
        await db.schema.dropIndex('actions_agent_kind_idx').execute();
      },
    },
    '0010_read_paths': {
      async up(db: Kysely<unknown>) {
        // The risk score reads an agent's votes of the last week. Found by way of time alone, every decision read
        // every vote in the store's week; with the agent on the vote it reads only that agent's.
        await db.schema.alterTable('approvals').addColumn('agent_id', 'text').execute();
        await sql`update approvals set agent_id = (select agent_id from actions where actions.id = approvals.action_id)`.execute(
          db,
        );
        await db.schema
          .createIndex('approvals_agent_at_idx')
          .on('approvals')
          .columns(['agent_id', 'at', 'decision'])
          .execute();
        // The review queue: held actions, soonest to expire first, without sorting every held action.
        await db.schema
          .createIndex('actions_hold_expiry_idx')
          .on('actions')
          .columns(['status', 'expires_at', 'created_at'])
          .execute();
      },
    },
    '0011_bound_requests': {
      async up(db: Kysely<unknown>) {
        // What is sent upstream is stored as bytes and hashed as bytes, with the Connect context it runs under.
        for (const column of ['stripe_context', 'on_account', 'body', 'caller_hash', 'derived']) {
          await db.schema.alterTable('actions').addColumn(column, 'text').execute();
        }
        await sql`update actions set on_account = stripe_account`.execute(db);
      },
    },
    '0012_ledger_digests': {
      async up(db: Kysely<unknown>) {
        // Signed digests of the ledger head (src/audit). number is the digest chain's position: two instances
        // racing to sign the same one collide on the key, so the chain never forks.
        await db.schema
          .createTable('ledger_digests')
          .addColumn('number', 'integer', (c) => c.primaryKey())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('ledger_seq', 'integer', (c) => c.notNull())
          .addColumn('ledger_hash', 'text', (c) => c.notNull())
          .addColumn('signed_at', 'text', (c) => c.notNull())
          .addColumn('previous_digest_hash', 'text', (c) => c.notNull())
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('digest_hash', 'text', (c) => c.notNull())
          .addColumn('signature', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0013_notification_outbox': {
      async up(db: Kysely<unknown>) {
        // Reviewers' messages about a hold, queued in the transaction that holds the action and delivered from
        // here with retries, as callbacks are: a crash between the commit and the send no longer loses one.
        await db.schema
          .createTable('notifications')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('action_id', 'text', (c) => c.notNull().references('actions.id'))
          .addColumn('event', 'text', (c) => c.notNull())
          .addColumn('version', 'text', (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('recipient', 'text', (c) => c.notNull())
          .addColumn('reviewer_id', 'text')
          .addColumn('payload', 'text')
          .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'text', (c) => c.notNull())
          .addColumn('delivered_at', 'text')
          .addColumn('gave_up_at', 'text')
          .addColumn('last_status', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('lease_until', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          // One message per action, hold, channel and recipient: queuing it again is a no-op, never a second send.
          .addUniqueConstraint('notifications_once_uq', [
            'action_id',
            'event',
            'version',
            'channel',
            'recipient',
          ])
          .execute();
        await db.schema
          .createIndex('notifications_due_idx')
          .on('notifications')
          .columns(['delivered_at', 'next_attempt_at'])
          .execute();
      },
    },
    '0014_status_check_and_vote_per_version': {
      async up(db: Kysely<unknown>) {
        // The statuses as they were when this shipped (src/store/status.ts). A new status needs a migration that
        // widens the check; test/store/repositories.test.ts inserts every status and fails until it does.
        const statuses = sql.join(
          [
            'received',
            'blocked',
            'awaiting_approval',
            'approved',
            'rejected',
            'expired',
            'cancelled',
            'pending',
            'completed',
            'failed',
          ].map((s) => sql.lit(s)),
        );
        if (dialect === 'postgres') {
          // Checks the rows already stored too: the migration fails on a status nobody knows.
          await sql`alter table actions add constraint actions_status_check check (status in (${statuses}))`.execute(
            db,
          );
        } else {
          // SQLite cannot add a CHECK to a table, and rebuilding actions (every index, and the tables whose
          // foreign keys name it) would copy the whole table: triggers refuse an unknown status instead, on
          // insert and on update, with the same effect. Rows already stored are checked here once.
          const { rows } = await sql<{
            n: number;
          }>`select count(*) as n from actions where status not in (${statuses})`.execute(db);
          if (Number(rows[0]?.n ?? 0) > 0) {
            throw new Error(
              `actions holds ${rows[0]?.n} rows with an unknown status; fix them before migrating`,
            );
          }
          for (const [name, event] of [
            ['actions_status_check_insert', sql`insert`],
            ['actions_status_check_update', sql`update of status`],
          ] as const) {
            await sql`create trigger ${sql.id(name)} before ${event} on actions
              when new.status not in (${statuses})
              begin select raise(abort, 'CHECK constraint failed: actions.status is not a known status'); end`.execute(
              db,
            );
          }
        }
        // One vote per reviewer per version of the request. (approvals_action_reviewer_uq of 0001_core is
        // stricter still, one row per reviewer and action: the engine deletes the vote on an earlier version.)
        await db.schema
          .createIndex('approvals_one_vote_per_version_uq')
          .on('approvals')
          .columns(['action_id', 'reviewer_id', 'bound_hash'])
          .unique()
          .execute();
      },
    },
    '0015_ledger_sealer': {
      async up(db: Kysely<unknown>) {
        // pos is the insertion order; seq, prev_hash and hash are the chain position, null until sealed. Rows
        // already stored keep their seq and hashes, and pos = seq, so the chain and its head are unchanged.
        if (dialect === 'postgres') {
          // On PostgreSQL an event is inserted unsealed with its writing transaction's id, and the sealer chains
          // it after commit (src/store/sealer.ts), so appending takes no lock that another instance waits for.
          await sql`alter table ledger add column pos bigint`.execute(db);
          await sql`update ledger set pos = seq`.execute(db);
          await sql`create sequence ledger_pos_seq owned by ledger.pos`.execute(db);
          await sql`select setval('ledger_pos_seq', coalesce((select max(seq) from ledger), 0) + 1, false)`.execute(
            db,
          );
          await sql`alter table ledger
            alter column pos set default nextval('ledger_pos_seq'),
            alter column pos set not null,
            drop constraint ledger_pkey,
            add constraint ledger_pkey primary key (pos),
            alter column seq drop not null,
            alter column prev_hash drop not null,
            alter column hash drop not null,
            add constraint ledger_sealed_check check ((seq is null) = (hash is null) and (hash is null) = (prev_hash is null))`.execute(
            db,
          );
          // Added without the default first: a volatile default would stamp every existing row with this xid.
          await sql`alter table ledger add column xid xid8`.execute(db);
          await sql`alter table ledger alter column xid set default pg_current_xact_id()`.execute(db);
          await sql`create unique index ledger_seq_uq on ledger (seq)`.execute(db);
          // The sealer's queue: small, since rows leave it within the sealer's interval.
          await sql`create index ledger_unsealed_idx on ledger (xid, pos) where seq is null`.execute(db);
        } else {
          // SQLite chains inline (one connection writes, so it costs no lock): seq stays the rowid and pos = seq.
          await sql`alter table ledger add column pos integer`.execute(db);
          await sql`alter table ledger add column xid text`.execute(db);
          await sql`update ledger set pos = seq`.execute(db);
          await sql`create unique index ledger_pos_uq on ledger (pos)`.execute(db);
        }
        // An action's events, sealed or not, in insertion order.
        await db.schema.dropIndex('ledger_action_idx').execute();
        await db.schema.createIndex('ledger_action_idx').on('ledger').columns(['action_id', 'pos']).execute();
      },
    },
    '0016_slack_interactive': {
      async up(db: Kysely<unknown>) {
        // Who a Slack user is in Airlock: one reviewer per Slack user, so a button press counts as that reviewer.
        await db.schema
          .createTable('slack_users')
          .addColumn('slack_user_id', 'text', (c) => c.primaryKey())
          .addColumn('reviewer_id', 'text', (c) => c.notNull().references('reviewers.id'))
          .addColumn('linked_by', 'text', (c) => c.notNull())
          .addColumn('linked_at', 'text', (c) => c.notNull())
          .execute();
        // Each hold's Slack message, so a decision made anywhere (dashboard, email, expiry) updates it in place.
        await db.schema
          .createTable('slack_messages')
          .addColumn('action_id', 'text', (c) => c.notNull())
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('ts', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('slack_messages_pk', ['action_id', 'channel'])
          .execute();
      },
    },
    '0017_reminders': {
      async up(db: Kysely<unknown>) {
        // A hold's reminder and escalation, each due once: `fired_at` is set by the one sweep that claims it.
        await db.schema
          .createTable('reminders')
          .addColumn('action_id', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('due_at', 'text', (c) => c.notNull())
          .addColumn('fired_at', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('reminders_pk', ['action_id', 'kind'])
          .execute();
        await db.schema
          .createIndex('reminders_due_idx')
          .on('reminders')
          .columns(['fired_at', 'due_at'])
          .execute();
        // A hold gets a message per reminder and escalation too: each is kept, so a decision updates them all.
        if (dialect === 'postgres') {
          await sql`alter table slack_messages drop constraint slack_messages_pk,
            add constraint slack_messages_pk primary key (action_id, channel, ts)`.execute(db);
        } else {
          await sql`create table slack_messages_new (action_id text not null, channel text not null,
            ts text not null, created_at text not null,
            constraint slack_messages_pk primary key (action_id, channel, ts))`.execute(db);
          await sql`insert into slack_messages_new select action_id, channel, ts, created_at from slack_messages`.execute(
            db,
          );
          await sql`drop table slack_messages`.execute(db);
          await sql`alter table slack_messages_new rename to slack_messages`.execute(db);
        }
      },
    },
    '0018_stripe_events': {
      async up(db: Kysely<unknown>) {
        // Every Stripe Event received (webhook or backfill), once by its id whatever the order or the number of
        // deliveries. `origin` says who made the movement: airlock, automation (Stripe's own), outside, or none for
        // an event that moves no money. Amount and currency are read from the event's object, never looked up.
        await db.schema
          .createTable('stripe_events')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('created', 'bigint', (c) => c.notNull())
          .addColumn('livemode', 'integer', (c) => c.notNull())
          .addColumn('object_id', 'text')
          .addColumn('request_id', 'text')
          .addColumn('idempotency_key', 'text')
          .addColumn('origin', 'text', (c) => c.notNull())
          .addColumn('kind', 'text')
          .addColumn('amount', 'bigint')
          .addColumn('currency', 'text')
          .addColumn('amount_usd', 'double precision')
          .addColumn('customer', 'text')
          .addColumn('charge', 'text')
          .addColumn('account', 'text')
          .addColumn('action_id', 'text')
          .addColumn('expected', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('via', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('received_at', 'text', (c) => c.notNull())
          // The newest accepted delivery's Stripe-Signature time: Stripe signs each redelivery anew, so a delivery
          // signed no later than this one is a replay of a captured request.
          .addColumn('signed_at', 'bigint')
          .execute();
        // The Outside Airlock view and the velocity windows read outside events by time.
        await db.schema
          .createIndex('stripe_events_origin_idx')
          .on('stripe_events')
          .columns(['origin', 'created'])
          .execute();
        // Velocity windows sum outside events by kind, account and time: covering, so no table row is read.
        await db.schema
          .createIndex('stripe_events_velocity_idx')
          .on('stripe_events')
          .columns(['kind', 'account', 'created', 'origin', 'customer', 'amount_usd'])
          .execute();
        // Disputes by charge, for the risk score (no look-up).
        await db.schema
          .createIndex('stripe_events_charge_idx')
          .on('stripe_events')
          .columns(['charge', 'type'])
          .execute();
        // Alerts about outside events, queued in the transaction that stores the event and delivered with retries.
        await db.schema
          .createTable('stripe_alerts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('event_id', 'text', (c) => c.notNull().references('stripe_events.id'))
          .addColumn('channel', 'text', (c) => c.notNull())
          .addColumn('recipient', 'text', (c) => c.notNull())
          .addColumn('payload', 'text')
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'text', (c) => c.notNull())
          .addColumn('delivered_at', 'text')
          .addColumn('gave_up_at', 'text')
          .addColumn('last_status', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('lease_until', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('stripe_alerts_once_uq', ['event_id', 'channel', 'recipient'])
          .execute();
        await db.schema
          .createIndex('stripe_alerts_due_idx')
          .on('stripe_alerts')
          .columns(['delivered_at', 'next_attempt_at'])
          .execute();
      },
    },
    '0019_velocity_minutes': {
      async up(db: Kysely<unknown>) {
        // Velocity windows per minute, kept by the actions repository on PostgreSQL (src/store/velocity-buckets.ts);
        // SQLite keeps them in memory and leaves this table empty. `account` is '' for the platform, `subject` '' for
        // the account scope, and `shard` the agent for the customer and account scopes ('' for the agent's own), so
        // that decisions of different agents never update one row. The key leads with what a window fixes, then its
        // minute range.
        await db.schema
          .createTable('velocity_minutes')
          .addColumn('scope', 'text', (c) => c.notNull())
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('account', 'text', (c) => c.notNull())
          .addColumn('minute', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('read', 'integer', (c) => c.notNull())
          .addColumn('shard', 'text', (c) => c.notNull())
          .addColumn('n', 'bigint', (c) => c.notNull())
          .addColumn('usd_cents', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('velocity_minutes_pk', [
            'scope',
            'subject',
            'account',
            'minute',
            'kind',
            'read',
            'shard',
          ])
          .execute();
        // Exact at once on an upgraded database: the actions already stored, summed.
        if (dialect === 'postgres') await rebuildBuckets(db);
      },
    },
    '0020_ledger_unsealed_from': {
      async up(db: Kysely<unknown>) {
        // The sealer's floor (PostgreSQL): every unsealed event's transaction id is at least this, so a sealer reads
        // the queue from there, past the entries earlier seals left in its index until vacuum. Null: no floor yet.
        // SQLite chains inline and leaves it null.
        await sql`alter table ledger_head add column unsealed_from ${sql.raw(dialect === 'postgres' ? 'xid8' : 'text')}`.execute(
          db,
        );
      },
    },
  };
}

export const GENESIS_HASH = '0'.repeat(64);

/** Names of the migrations not yet applied, in order. */
export async function pendingMigrations(db: Kysely<unknown>, dialect: Dialect): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(dialect) } });
  return (await migrator.getMigrations()).filter((m) => !m.executedAt).map((m) => m.name);
}

export async function migrateToLatest(db: Kysely<unknown>, dialect: Dialect): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
