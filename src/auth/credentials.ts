import { newId, randomToken, sha256Hex } from '../ids.ts';
import type { Store } from '../store/store.ts';

// Keys are long random tokens, so one fast hash is enough to store them safely; passwords (dashboard) use scrypt.
export const AGENT_KEY_PREFIX = 'ak_';
export const REVIEWER_TOKEN_PREFIX = 'rk_';

export function hashCredential(token: string): string {
  return sha256Hex(token);
}

export async function createAgentKey(
  store: Store,
  agentName: string,
): Promise<{ id: string; agent_id: string; key: string }> {
  const at = new Date().toISOString();
  return store.transaction(async (tx) => {
    const agent = await tx.findOrCreateAgent(newId('agt'), agentName, at);
    const key = `${AGENT_KEY_PREFIX}${randomToken(40)}`;
    const id = newId('key');
    await tx.insertAgentKey({
      id,
      agent_id: agent.id,
      key_hash: hashCredential(key),
      prefix: key.slice(0, 7),
      created_at: at,
    });
    return { id, agent_id: agent.id, key };
  });
}

export async function createReviewer(
  store: Store,
  email: string,
  opts: { passwordHash?: string | null; groups?: string[] } = {},
): Promise<{ id: string; email: string; token: string }> {
  const at = new Date().toISOString();
  return store.transaction(async (tx) => {
    const reviewer = await tx.upsertReviewer({
      id: newId('rev'),
      email,
      password_hash: opts.passwordHash ?? null,
      groups: opts.groups ?? [],
      created_at: at,
    });
    const token = `${REVIEWER_TOKEN_PREFIX}${randomToken(40)}`;
    await tx.insertReviewerToken({
      id: newId('rtk'),
      reviewer_id: reviewer.id,
      token_hash: hashCredential(token),
      created_at: at,
    });
    return { id: reviewer.id, email: reviewer.email, token };
  });
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
