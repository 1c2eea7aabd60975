import type { Agent, Reviewer } from '../engine/engine.ts';
import { AirlockError } from '../errors.ts';
import { newId, randomToken, sha256Hex } from '../ids.ts';
import type { CredentialKind, CredentialListing } from '../store/credentials.ts';
import type { Store } from '../store/store.ts';
import { parseDuration } from '../time.ts';

export type { CredentialListing } from '../store/credentials.ts';

// Keys are long random tokens, so one fast hash is enough to store them safely; passwords (dashboard) use scrypt.
export const AGENT_KEY_PREFIX = 'ak_';
export const REVIEWER_TOKEN_PREFIX = 'rvw_';
/**
 * Reviewer tokens made by Airlock 0.1 start `rk_`, the prefix of Stripe's restricted keys, which misled people and secret
 * scanners. They are still accepted until 1.0 (docs/security.md); new ones are `rvw_`.
 */
export const LEGACY_REVIEWER_TOKEN_PREFIX = 'rk_';

export function isReviewerToken(token: string): boolean {
  return token.startsWith(REVIEWER_TOKEN_PREFIX) || token.startsWith(LEGACY_REVIEWER_TOKEN_PREFIX);
}
export const ADMIN_TOKEN_PREFIX = 'adm_';
/** Dashboard reviewers in this group see the kill switch (freeze, unfreeze) in the dashboard. */
export const ADMIN_GROUP = 'admins';

export function hashCredential(token: string): string {
  return sha256Hex(token);
}

/** `--expires-in 30d`: a whole number and one unit (s, m, h, d, w) into milliseconds. */
export function parseExpiresIn(text: string): number {
  const ms = parseDuration(text, ['s', 'm', 'h', 'd', 'w']);
  if (ms === null) {
    throw new AirlockError(
      'parameter_invalid',
      `--expires-in takes a positive duration such as 90m, 12h, 30d or 4w, not "${text}"`,
      { param: 'expires_in' },
    );
  }
  return ms;
}

/** The expiry time for a credential created now, or null for one that does not expire. */
export function expiresAtFrom(expiresIn: string | undefined, now = new Date()): string | null {
  return expiresIn === undefined ? null : new Date(now.getTime() + parseExpiresIn(expiresIn)).toISOString();
}

export interface CreateOptions {
  /** ISO time after which the credential is refused; null or absent: never. */
  expiresAt?: string | null;
}

export async function createAgentKey(
  store: Store,
  agentName: string,
  opts: CreateOptions = {},
): Promise<{ id: string; agent_id: string; key: string; expires_at: string | null }> {
  const at = new Date().toISOString();
  const expiresAt = opts.expiresAt ?? null;
  return store.transaction(async (tx) => {
    const agent = await tx.credentials.findOrCreateAgent(newId('agt'), agentName, at);
    const key = `${AGENT_KEY_PREFIX}${randomToken(40)}`;
    const id = newId('key');
    await tx.credentials.insertAgentKey({
      id,
      agent_id: agent.id,
      key_hash: hashCredential(key),
      prefix: key.slice(0, 7),
      created_at: at,
      expires_at: expiresAt,
    });
    return { id, agent_id: agent.id, key, expires_at: expiresAt };
  });
}

export async function createReviewer(
  store: Store,
  email: string,
  opts: { passwordHash?: string | null; groups?: string[] } & CreateOptions = {},
): Promise<{ id: string; email: string; token: string; token_id: string; expires_at: string | null }> {
  const at = new Date().toISOString();
  const expiresAt = opts.expiresAt ?? null;
  return store.transaction(async (tx) => {
    const reviewer = await tx.credentials.upsertReviewer({
      id: newId('rev'),
      email,
      password_hash: opts.passwordHash ?? null,
      groups: opts.groups ?? [],
      created_at: at,
    });
    const token = `${REVIEWER_TOKEN_PREFIX}${randomToken(40)}`;
    const tokenId = newId('rtk');
    await tx.credentials.insertReviewerToken({
      id: tokenId,
      reviewer_id: reviewer.id,
      token_hash: hashCredential(token),
      created_at: at,
      expires_at: expiresAt,
    });
    return { id: reviewer.id, email: reviewer.email, token, token_id: tokenId, expires_at: expiresAt };
  });
}

export interface Admin {
  id: string;
  name: string;
}

/** An operator token for the admin API. Like the others it is shown once and stored as a hash. */
export async function createAdminToken(
  store: Store,
  name: string,
  opts: CreateOptions = {},
): Promise<{ id: string; name: string; token: string; expires_at: string | null }> {
  if (!/^[\w.@ -]{1,100}$/.test(name)) {
    throw new AirlockError('parameter_invalid', 'An admin name is 1-100 letters, digits, spaces or ._@-', {
      param: 'name',
    });
  }
  const token = `${ADMIN_TOKEN_PREFIX}${randomToken(40)}`;
  const row = {
    id: newId('atk'),
    name,
    token_hash: hashCredential(token),
    prefix: token.slice(0, 8),
    created_at: new Date().toISOString(),
    expires_at: opts.expiresAt ?? null,
  };
  await store.credentials.insertAdminToken(row);
  return { id: row.id, name, token, expires_at: row.expires_at };
}

// --- looking credentials up ---------------------------------------------------------------------------------------
// Revoked credentials are not found at all (a revoked key is a wrong key); expired ones are found with their expiry
// so the caller can refuse them at the time of use, with a message that says why.

export async function findAgentKey(
  store: Store,
  key: string,
): Promise<{ agent: { id: string; name: string }; keyId: string; expiresAt: string | null } | null> {
  return (await store.credentials.findAgentKey(hashCredential(key))) ?? null;
}

export async function findReviewerToken(
  store: Store,
  token: string,
): Promise<{ reviewer: Reviewer & { groups: string[] }; expiresAt: string | null } | null> {
  return (await store.credentials.findReviewerToken(hashCredential(token))) ?? null;
}

export async function findAdminToken(
  store: Store,
  token: string,
): Promise<{ admin: Admin; expiresAt: string | null } | null> {
  return (await store.credentials.findAdminToken(hashCredential(token))) ?? null;
}

export function isExpired(expiresAt: string | null, now: Date): boolean {
  return expiresAt !== null && expiresAt <= now.toISOString();
}

/** Refuses a credential past its expiry: a 401 like an unknown key, with a message that says it expired. */
export function assertNotExpired(credential: string, expiresAt: string | null, now: Date): void {
  if (isExpired(expiresAt, now)) {
    throw new AirlockError(
      'api_key_expired',
      `Expired API Key provided: ${redactCredential(credential)}. It expired at ${expiresAt}; ask an operator for a new one.`,
    );
  }
}

export function redactCredential(key: string): string {
  return key.length <= 8 ? '****' : `${key.slice(0, 7)}${'*'.repeat(4)}${key.slice(-4)}`;
}

/** Who a credential belongs to; a surface that refuses some kinds narrows it (http/api.ts: no admins). */
export type Principal =
  | { type: 'agent'; agent: Agent }
  | { type: 'reviewer'; reviewer: Reviewer & { groups: string[] } }
  | { type: 'admin'; admin: Admin };

/**
 * Who a bearer credential belongs to, checked against revocation and expiry at `now`. Missing: 401
 * authentication_required; unknown or revoked: 401 invalid_api_key; expired: 401 api_key_expired.
 */
export async function authenticate(store: Store, header: string | undefined, now: Date): Promise<Principal> {
  const token = credentialFrom(header);
  if (!token) {
    throw new AirlockError(
      'authentication_required',
      'Send Authorization: Bearer with an agent key, reviewer token or admin token',
    );
  }
  if (token.startsWith(AGENT_KEY_PREFIX)) {
    const found = await findAgentKey(store, token);
    if (found) {
      assertNotExpired(token, found.expiresAt, now);
      return { type: 'agent', agent: found.agent };
    }
  } else if (isReviewerToken(token)) {
    const found = await findReviewerToken(store, token);
    if (found) {
      assertNotExpired(token, found.expiresAt, now);
      return { type: 'reviewer', reviewer: found.reviewer };
    }
  } else if (token.startsWith(ADMIN_TOKEN_PREFIX)) {
    const found = await findAdminToken(store, token);
    if (found) {
      assertNotExpired(token, found.expiresAt, now);
      return { type: 'admin', admin: found.admin };
    }
  }
  throw new AirlockError('invalid_api_key', 'Invalid credential');
}

// --- revoking and listing -----------------------------------------------------------------------------------------
// A revocation takes effect at once everywhere: this process's caches are told synchronously, other instances on
// PostgreSQL by NOTIFY, and on SQLite a cache notices another process's commit through `data_version`.

const revocationListeners = new Set<() => void>();

/** cb runs whenever this process revokes a credential; returns the function that stops it. */
export function onCredentialRevoked(cb: () => void): () => void {
  revocationListeners.add(cb);
  return () => {
    revocationListeners.delete(cb);
  };
}

async function revoke(store: Store, kind: CredentialKind, id: string): Promise<boolean> {
  const done = await store.transaction(async (tx) => {
    if (!(await tx.credentials.revoke(kind, id, new Date().toISOString()))) return false;
    await tx.notifyCredentialsChanged();
    return true;
  });
  if (done) for (const cb of revocationListeners) cb();
  return done;
}

/**
 * SQLite's count of commits made to the file by other connections (another process: the CLI revoking a key), or
 * null on PostgreSQL. A cache that saw it unchanged has missed no revocation made elsewhere.
 */
export async function sqliteDataVersion(store: Store): Promise<number | null> {
  return store.dataVersion();
}

/** Revokes an agent key by id (key_…); false when there is no such active key. Every instance refuses it at once. */
export async function revokeAgentKey(store: Store, id: string): Promise<boolean> {
  return revoke(store, 'agent_key', id);
}

export async function revokeReviewerToken(store: Store, id: string): Promise<boolean> {
  return revoke(store, 'reviewer_token', id);
}

export async function revokeAdminToken(store: Store, id: string): Promise<boolean> {
  return revoke(store, 'admin_token', id);
}

/** Agent keys without their hashes, newest first, so an operator can find the id to revoke. */
export async function listAgentKeys(store: Store): Promise<CredentialListing[]> {
  return store.credentials.listAgentKeys();
}

export async function listAdminTokens(store: Store): Promise<CredentialListing[]> {
  return store.credentials.listAdminTokens();
}

/** Extracts the credential from `Authorization: Bearer x` or Basic auth with the key as user name (as Stripe accepts). */
export function credentialFrom(header: string | undefined): string | null {
  if (!header) return null;
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (!scheme || !value) return null;
  if (scheme.toLowerCase() === 'bearer') return value;
  if (scheme.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const user = decoded.split(':', 1)[0];
    return user || null;
  }
  return null;
}
