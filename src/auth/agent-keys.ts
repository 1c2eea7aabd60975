// Agent keys, checked and cached, for the surfaces agents call: the Stripe proxy (http/proxy.ts) and MCP.
import type { Agent, Engine } from '../engine/engine.ts';
import { AirlockError, StoreUnavailable } from '../errors.ts';
import { asStoreError } from '../store/store.ts';
import {
  ADMIN_TOKEN_PREFIX,
  AGENT_KEY_PREFIX,
  assertNotExpired,
  credentialFrom,
  findAgentKey,
  hashCredential,
  isReviewerToken,
  onCredentialRevoked,
  redactCredential,
  sqliteDataVersion,
} from './credentials.ts';

/**
 * Caches agent-key look-ups: the hot path should not hit the store for every request's credential. An entry is
 * trusted only while no revocation can have been missed: this process's revocations clear the cache at once;
 * other instances' reach it by NOTIFY on PostgreSQL (while LISTEN is down every use is checked in the store), and
 * on SQLite a commit by another process (the CLI) shows in `data_version`. The key's expiry is cached with it and
 * checked on every use, so a cached key stops working the moment it expires.
 */
export class AgentKeyCache {
  readonly #entries = new Map<string, KeyEntry>();
  /** Bumped on every clear, so a look-up that began before a revocation does not store what it read. */
  #generation = 0;
  #dataVersion: number | null = null;
  readonly #unsubscribe: (() => void)[];

  constructor(
    readonly engine: Engine,
    readonly ttlMs = 10_000,
  ) {
    const clear = () => this.clear();
    this.#unsubscribe = [onCredentialRevoked(clear), engine.store.onCredentialsChanged(clear)];
  }

  clear(): void {
    this.#generation++;
    this.#entries.clear();
  }

  close(): void {
    for (const off of this.#unsubscribe) off();
    this.clear();
  }

  async lookup(key: string): Promise<Agent | null> {
    const hash = hashCredential(key);
    let hit: KeyEntry | undefined;
    try {
      hit = (await this.#trusted()) ? this.#fresh(hash) : undefined;
      hit ??= await this.#load(key, hash);
    } catch (err) {
      // With the store down nothing can be revoked either, so a key checked in the last ttlMs still stands (the
      // reads that store_outage.reads=forward passes rely on it); a key not seen lately is refused.
      hit = asStoreError(err) instanceof StoreUnavailable ? this.#fresh(hash) : undefined;
      if (!hit) throw err;
    }
    if (hit.agent) assertNotExpired(key, hit.expiresAt, this.engine.clock.now());
    return hit.agent;
  }

  #fresh(hash: string): KeyEntry | undefined {
    const entry = this.#entries.get(hash);
    return entry && entry.until > Date.now() ? entry : undefined;
  }

  /** Whether a cached entry can be used: false while a revocation elsewhere could go unheard. */
  async #trusted(): Promise<boolean> {
    const store = this.engine.store;
    if (store.dialect === 'postgres') return store.credentialSignalsLive;
    const version = await sqliteDataVersion(store);
    if (version !== this.#dataVersion) {
      this.clear();
      this.#dataVersion = version;
    }
    return true;
  }

  async #load(key: string, hash: string): Promise<KeyEntry> {
    const generation = this.#generation;
    const found = await findAgentKey(this.engine.store, key);
    const entry: KeyEntry = {
      agent: found?.agent ?? null,
      expiresAt: found?.expiresAt ?? null,
      until: Date.now() + this.ttlMs,
    };
    if (generation === this.#generation) {
      if (this.#entries.size > 10_000) this.#entries.clear();
      this.#entries.set(hash, entry);
    }
    return entry;
  }
}

interface KeyEntry {
  agent: Agent | null;
  expiresAt: string | null;
  until: number;
}

export async function authenticateAgent(cache: AgentKeyCache, header: string | undefined): Promise<Agent> {
  const key = credentialFrom(header);
  if (!key) {
    throw new AirlockError(
      'authentication_required',
      'You did not provide an API key. Use your Airlock agent key (ak_…) as the Stripe API key.',
    );
  }
  if (isReviewerToken(key)) {
    throw new AirlockError(
      'forbidden',
      'Reviewer credentials cannot call the Stripe proxy; agents use agent keys (ak_…).',
    );
  }
  if (key.startsWith(ADMIN_TOKEN_PREFIX)) {
    throw new AirlockError(
      'forbidden',
      'Admin tokens cannot call the Stripe proxy; they use the admin API (/api/admin). Agents use agent keys (ak_…).',
    );
  }
  const agent = key.startsWith(AGENT_KEY_PREFIX) ? await cache.lookup(key) : null;
  if (!agent) throw new AirlockError('invalid_api_key', `Invalid API Key provided: ${redactCredential(key)}`);
  return agent;
}
