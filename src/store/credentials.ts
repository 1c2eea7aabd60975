import type { Connection } from './connection.ts';
import type { AdminTokensTable, AgentKeysTable, ReviewerTokensTable } from './schema.ts';

// Who may call Airlock: agents and their keys, reviewers and their tokens, operators' admin tokens. Credentials are
// stored as hashes (auth/credentials.ts makes and hashes them); revoked ones are never found, expired ones are
// found with their expiry so the caller can say why it refuses them.

export interface Agent {
  id: string;
  name: string;
}

export interface StoredReviewer {
  id: string;
  email: string;
  groups: string[];
}

export interface CredentialListing {
  id: string;
  owner: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export type CredentialKind = 'agent_key' | 'reviewer_token' | 'admin_token';

const TABLES = {
  agent_key: 'agent_keys',
  reviewer_token: 'reviewer_tokens',
  admin_token: 'admin_tokens',
} as const satisfies Record<CredentialKind, string>;

/** A credential's row as it is created: never revoked, and without an expiry unless one is given. */
type NewCredential<T> = Omit<T, 'expires_at' | 'revoked_at'> & { expires_at?: string | null };

function groupsOf(json: string): string[] {
  return JSON.parse(json) as string[];
}

export class CredentialsRepository {
  constructor(readonly c: Connection) {}

  // --- agents --------------------------------------------------------------------------------------------------

  async findOrCreateAgent(id: string, name: string, at: string): Promise<Agent> {
    const existing = await this.agentByName(name);
    if (existing) return existing;
    await this.c.db.insertInto('agents').values({ id, name, created_at: at }).execute();
    return { id, name };
  }

  async getAgent(id: string): Promise<Agent | undefined> {
    return this.c.db.selectFrom('agents').select(['id', 'name']).where('id', '=', id).executeTakeFirst();
  }

  async agentByName(name: string): Promise<Agent | undefined> {
    return this.c.db.selectFrom('agents').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
  }

  /** Every agent, by name. */
  async listAgents(): Promise<Agent[]> {
    return this.c.db.selectFrom('agents').select(['id', 'name']).orderBy('name').execute();
  }

  async agentsByIds(ids: readonly string[]): Promise<Agent[]> {
    if (ids.length === 0) return [];
    return this.c.db
      .selectFrom('agents')
      .select(['id', 'name'])
      .where('id', 'in', [...ids])
      .execute();
  }

  async insertAgentKey(row: NewCredential<AgentKeysTable>): Promise<void> {
    await this.c.db
      .insertInto('agent_keys')
      .values({ ...row, expires_at: row.expires_at ?? null, revoked_at: null })
      .execute();
  }

  /** The agent an unrevoked key belongs to. */
  async findAgentKey(
    keyHash: string,
  ): Promise<{ agent: Agent; keyId: string; expiresAt: string | null } | undefined> {
    const row = await this.c.db
      .selectFrom('agent_keys')
      .innerJoin('agents', 'agents.id', 'agent_keys.agent_id')
      .select(['agents.id as id', 'agents.name as name', 'agent_keys.id as key_id', 'agent_keys.expires_at'])
      .where('agent_keys.key_hash', '=', keyHash)
      .where('agent_keys.revoked_at', 'is', null)
      .executeTakeFirst();
    return row && { agent: { id: row.id, name: row.name }, keyId: row.key_id, expiresAt: row.expires_at };
  }

  /** Agent keys without their hashes, newest first. */
  async listAgentKeys(): Promise<CredentialListing[]> {
    return this.c.db
      .selectFrom('agent_keys')
      .innerJoin('agents', 'agents.id', 'agent_keys.agent_id')
      .select([
        'agent_keys.id as id',
        'agents.name as owner',
        'agent_keys.prefix as prefix',
        'agent_keys.created_at as created_at',
        'agent_keys.expires_at as expires_at',
        'agent_keys.revoked_at as revoked_at',
      ])
      .orderBy('agent_keys.created_at', 'desc')
      .execute();
  }

  // --- reviewers -----------------------------------------------------------------------------------------------

  /** Creates a reviewer, or updates the groups (and the password, when given) of the one with this email. */
  async upsertReviewer(row: {
    id: string;
    email: string;
    password_hash: string | null;
    groups: string[];
    created_at: string;
  }): Promise<{ id: string; email: string }> {
    const existing = await this.c.db
      .selectFrom('reviewers')
      .select(['id', 'email'])
      .where('email', '=', row.email)
      .executeTakeFirst();
    if (existing) {
      await this.c.db
        .updateTable('reviewers')
        .set({
          groups: JSON.stringify(row.groups),
          ...(row.password_hash ? { password_hash: row.password_hash } : {}),
        })
        .where('id', '=', existing.id)
        .execute();
      return existing;
    }
    await this.c.db
      .insertInto('reviewers')
      .values({ ...row, groups: JSON.stringify(row.groups) })
      .execute();
    return { id: row.id, email: row.email };
  }

  async findReviewerByEmail(email: string): Promise<StoredReviewer | undefined> {
    const row = await this.c.db
      .selectFrom('reviewers')
      .select(['id', 'email', 'groups'])
      .where('email', '=', email)
      .executeTakeFirst();
    return row && { id: row.id, email: row.email, groups: groupsOf(row.groups) };
  }

  /** A reviewer with the password hash the dashboard's login checks. */
  async reviewerForLogin(
    email: string,
  ): Promise<(StoredReviewer & { passwordHash: string | null }) | undefined> {
    const row = await this.c.db
      .selectFrom('reviewers')
      .select(['id', 'email', 'groups', 'password_hash'])
      .where('email', '=', email)
      .executeTakeFirst();
    return (
      row && { id: row.id, email: row.email, groups: groupsOf(row.groups), passwordHash: row.password_hash }
    );
  }

  async listReviewers(): Promise<StoredReviewer[]> {
    const rows = await this.c.db.selectFrom('reviewers').select(['id', 'email', 'groups']).execute();
    return rows.map((r) => ({ id: r.id, email: r.email, groups: groupsOf(r.groups) }));
  }

  async reviewerEmail(id: string): Promise<string | null> {
    const row = await this.c.db
      .selectFrom('reviewers')
      .select('email')
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.email ?? null;
  }

  async insertReviewerToken(row: NewCredential<ReviewerTokensTable>): Promise<void> {
    await this.c.db
      .insertInto('reviewer_tokens')
      .values({ ...row, expires_at: row.expires_at ?? null, revoked_at: null })
      .execute();
  }

  /** The reviewer an unrevoked token belongs to. */
  async findReviewerToken(
    tokenHash: string,
  ): Promise<{ reviewer: StoredReviewer; expiresAt: string | null } | undefined> {
    const row = await this.c.db
      .selectFrom('reviewer_tokens')
      .innerJoin('reviewers', 'reviewers.id', 'reviewer_tokens.reviewer_id')
      .select([
        'reviewers.id as id',
        'reviewers.email as email',
        'reviewers.groups as groups',
        'reviewer_tokens.expires_at',
      ])
      .where('reviewer_tokens.token_hash', '=', tokenHash)
      .where('reviewer_tokens.revoked_at', 'is', null)
      .executeTakeFirst();
    return (
      row && {
        reviewer: { id: row.id, email: row.email, groups: groupsOf(row.groups) },
        expiresAt: row.expires_at,
      }
    );
  }

  // --- admin tokens --------------------------------------------------------------------------------------------

  async insertAdminToken(row: NewCredential<AdminTokensTable>): Promise<void> {
    await this.c.db
      .insertInto('admin_tokens')
      .values({ ...row, expires_at: row.expires_at ?? null, revoked_at: null })
      .execute();
  }

  /** The operator an unrevoked admin token belongs to. */
  async findAdminToken(
    tokenHash: string,
  ): Promise<{ admin: { id: string; name: string }; expiresAt: string | null } | undefined> {
    const row = await this.c.db
      .selectFrom('admin_tokens')
      .select(['id', 'name', 'expires_at'])
      .where('token_hash', '=', tokenHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row && { admin: { id: row.id, name: row.name }, expiresAt: row.expires_at };
  }

  /** Admin tokens without their hashes, newest first. */
  async listAdminTokens(): Promise<CredentialListing[]> {
    return this.c.db
      .selectFrom('admin_tokens')
      .select(['id', 'name as owner', 'prefix', 'created_at', 'expires_at', 'revoked_at'])
      .orderBy('created_at', 'desc')
      .execute();
  }

  // --- revocation ----------------------------------------------------------------------------------------------

  /** Revokes a credential by id; false when there is no such credential not already revoked. */
  async revoke(kind: CredentialKind, id: string, at: string): Promise<boolean> {
    const res = await this.c.db
      .updateTable(TABLES[kind])
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }
}
