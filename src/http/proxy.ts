import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ADMIN_TOKEN_PREFIX,
  AGENT_KEY_PREFIX,
  assertNotExpired,
  credentialFrom,
  findAgentKey,
  hashCredential,
  onCredentialRevoked,
  REVIEWER_TOKEN_PREFIX,
  redactCredential,
  sqliteDataVersion,
} from '../auth/credentials.ts';
import type { Agent, Engine } from '../engine/engine.ts';
import { type Gateway, MAX_WAIT_SECONDS } from '../engine/gateway.ts';
import { assertNever, isStatus } from '../engine/status.ts';
import { AirlockError, StoreUnavailable } from '../errors.ts';
import { type ActionRow, asStoreError } from '../store/store.ts';
import { isValidStripePath } from '../stripe/classify.ts';
import { type Params, parseQuery } from '../stripe/params.ts';
import { sendError } from './errors.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface ProxyDeps {
  engine: Engine;
  gateway: Gateway;
  limiter?: RateLimiter;
}

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
  if (key.startsWith(REVIEWER_TOKEN_PREFIX)) {
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

export function registerProxy(app: FastifyInstance, deps: ProxyDeps): void {
  const keys = new AgentKeyCache(deps.engine);
  app.addHook('onClose', async () => keys.close());
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const agent = await authenticateAgent(keys, request.headers.authorization);
    deps.limiter?.take(credentialFrom(request.headers.authorization)!);
    const method = request.method.toUpperCase();
    const [path = '', rawQuery = ''] = request.url.split('?', 2) as [string, string?];
    if (!isValidStripePath(path) || (method !== 'GET' && method !== 'POST' && method !== 'DELETE')) {
      throw new AirlockError('unknown_path', `Unrecognized request URL (${method}: ${path}).`);
    }
    const outcome = await deps.gateway.stripe({
      agent,
      method,
      path,
      params: paramsOf(method, rawQuery, request.body),
      rawQuery,
      stripeAccount: header(request, 'stripe-account'),
      stripeContext: header(request, 'stripe-context'),
      stripeVersion: header(request, 'stripe-version'),
      idempotencyKey: header(request, 'idempotency-key'),
      waitSeconds: parseWait(header(request, 'airlock-wait')),
      requestId: request.id,
    });
    if (outcome.type === 'read') {
      return reply
        .code(outcome.response.status)
        .headers(outcome.response.headers)
        .send(outcome.response.body);
    }
    reply.header('Airlock-Action', outcome.action.id);
    return answer(reply, outcome.action);
  };
  for (const prefix of ['/v1/*', '/v2/*']) {
    app.route({ method: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], url: prefix, handler });
  }
}

/** What the agent sees for an action in each status: Stripe's own answer once executed, a Stripe-shaped 403 while held. */
function answer(reply: FastifyReply, row: ActionRow): FastifyReply {
  const status = isStatus(row.status) ? row.status : null;
  if (!status) throw new Error(`unknown status ${row.status}`);
  const reason = (JSON.parse(row.decision) as { reason?: string }).reason ?? '';
  switch (status) {
    case 'completed':
      return reply.code(row.response_code ?? 200).send(row.response_body);
    case 'failed':
      if (row.response_code && row.response_body)
        return reply.code(row.response_code).send(row.response_body);
      throw new AirlockError(
        'upstream_unreachable',
        `Stripe could not be reached for ${row.id}: ${row.last_error}`,
        {
          actionId: row.id,
        },
      );
    case 'awaiting_approval':
      throw new AirlockError('approval_required', `Held for human approval as ${row.id}. ${reason}`.trim(), {
        actionId: row.id,
      });
    case 'blocked':
      throw new AirlockError('action_blocked', `Blocked by policy as ${row.id}: ${reason}`, {
        actionId: row.id,
      });
    case 'rejected':
      throw new AirlockError('action_rejected', `Rejected by a reviewer as ${row.id}`, { actionId: row.id });
    case 'expired':
      throw new AirlockError('action_expired', `Expired without a decision as ${row.id}`, {
        actionId: row.id,
      });
    case 'cancelled':
      throw new AirlockError('action_cancelled', `Cancelled by the requester as ${row.id}`, {
        actionId: row.id,
      });
    case 'received':
    case 'approved':
    case 'pending':
      throw new AirlockError(
        'action_in_progress',
        `${row.id} is still being executed; retry with the same Idempotency-Key`,
        {
          actionId: row.id,
        },
      );
    default:
      return assertNever(status);
  }
}

function paramsOf(method: string, rawQuery: string, body: unknown): Params {
  if (method === 'GET' || method === 'DELETE') return rawQuery ? parseQuery(rawQuery) : {};
  if (body === undefined || body === null || body === '') return rawQuery ? parseQuery(rawQuery) : {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new AirlockError('malformed_body', 'The request body must be a set of parameters');
  }
  return body as Params;
}

function header(request: FastifyRequest, name: string): string | null {
  const v = request.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s && s.length > 0 ? s : null;
}

function parseWait(value: string | null): number {
  if (!value) return 0;
  if (!/^\d{1,4}$/.test(value.trim())) {
    throw new AirlockError('parameter_invalid', 'Airlock-Wait must be a whole number of seconds', {
      param: 'Airlock-Wait',
    });
  }
  return Math.min(Number(value), MAX_WAIT_SECONDS);
}

export { sendError };
