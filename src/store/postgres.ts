import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from './migrations.ts';
import type { Database } from './schema.ts';
import {
  ACTIONS_READY_CHANNEL,
  asStoreError,
  CREDENTIALS_CHANNEL,
  Store,
  type StoreSignals,
} from './store.ts';

export interface PostgresStoreOptions {
  /** Connections in this instance's pool; the URL's `pool_max` query parameter wins. Default 10. */
  poolMax?: number;
  /** Run pending migrations on open (the server does); `airlock migrate` runs them on its own. Default true. */
  migrate?: boolean;
  /** Where background connection errors go (the pool and the LISTEN connection); they never crash the process. */
  onError?: (err: Error) => void;
}

// bigint (amounts, counts) and numeric (sums of bigints) arrive as strings from pg; the schema says number.
function parseSafeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${value} does not fit a JavaScript number`);
  return n;
}

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8) return parseSafeInteger;
    if (oid === pg.types.builtins.NUMERIC) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
} as pg.CustomTypesConfig;

export function poolConfig(url: string, options: PostgresStoreOptions = {}): pg.PoolConfig {
  const parsed = new URL(url);
  const fromUrl = parsed.searchParams.get('pool_max');
  parsed.searchParams.delete('pool_max');
  return {
    connectionString: parsed.toString(),
    max: fromUrl ? Number(fromUrl) : (options.poolMax ?? 10),
    // Fail closed quickly rather than queue requests behind a dead server.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'airlock',
    types,
  };
}

/** Maps connection failures on every query, not only inside transactions, to StoreUnavailable: fail closed. */
function failClosedPool(pool: pg.Pool, onError: (err: Error) => void): PostgresPool {
  return {
    async connect() {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw asStoreError(err);
      }
      // A checked-out client idle between queries (a transaction awaiting a Stripe look-up) that loses its server
      // emits 'error' with no pool listener attached: unhandled, it would crash the process. Its next query
      // fails closed instead, and the pool discards it on release.
      client.on('error', onError);
      return {
        query(text: string, values: unknown[]) {
          return client.query(text, values).catch((err: unknown) => {
            throw asStoreError(err);
          });
        },
        release: () => {
          client.off('error', onError);
          client.release();
        },
      } as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/**
 * One dedicated connection that LISTENs for actions made dispatchable on any instance. It connects on the first
 * subscriber and reconnects after a drop; while it is down, the dispatcher's polling still finds the work.
 */
class PostgresSignals implements StoreSignals {
  readonly #config: pg.ClientConfig;
  readonly #onError: (err: Error) => void;
  readonly #callbacks = new Set<(id: string) => void>();
  readonly #credentialCallbacks = new Set<() => void>();
  #client: pg.Client | null = null;
  #connecting: Promise<void> | null = null;
  #retry: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(config: pg.ClientConfig, onError: (err: Error) => void) {
    this.#config = config;
    this.#onError = onError;
  }

  onActionsReady(cb: (id: string) => void): () => void {
    this.#callbacks.add(cb);
    void this.listening();
    return () => {
      this.#callbacks.delete(cb);
    };
  }

  onCredentialsChanged(cb: () => void): () => void {
    this.#credentialCallbacks.add(cb);
    void this.listening();
    return () => {
      this.#credentialCallbacks.delete(cb);
    };
  }

  get live(): boolean {
    return this.#client !== null;
  }

  /** Resolves once LISTEN is in place (or the attempt failed; polling covers that). */
  listening(): Promise<void> {
    if (this.#closed || this.#client) return Promise.resolve();
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config);
    client.on('notification', (n) => {
      if (n.channel === CREDENTIALS_CHANNEL) this.#credentialsChanged();
      if (n.channel !== ACTIONS_READY_CHANNEL || !n.payload) return;
      for (const cb of this.#callbacks) cb(n.payload);
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('LISTEN connection ended')));
    try {
      await client.connect();
      await client.query(`listen ${ACTIONS_READY_CHANNEL}`);
      await client.query(`listen ${CREDENTIALS_CHANNEL}`);
      if (this.#closed) {
        await client.end();
        return;
      }
      this.#client = client;
      // A revocation sent while nobody listened was lost: caches start over.
      this.#credentialsChanged();
    } catch (err) {
      this.#lost(client, err as Error);
    }
  }

  #lost(client: pg.Client, err: Error): void {
    if (this.#client === client) this.#client = null;
    client.removeAllListeners('end');
    client.end().catch(() => {});
    if (this.#closed) return;
    this.#onError(err);
    if (!this.#retry && this.#callbacks.size + this.#credentialCallbacks.size > 0) {
      this.#retry = setTimeout(() => {
        this.#retry = null;
        void this.listening();
      }, 1_000);
      this.#retry.unref();
    }
  }

  #credentialsChanged(): void {
    for (const cb of this.#credentialCallbacks) cb();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    await this.#connecting;
    const client = this.#client;
    this.#client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
    }
  }
}

/** Opens (and by default migrates) a PostgreSQL store. Several instances may share the database. */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const config = poolConfig(url, options);
  const onError = options.onError ?? (() => {});
  const pool = new pg.Pool(config);
  // An idle client losing its server must not crash the process; the next query fails closed instead.
  pool.on('error', onError);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: failClosedPool(pool, onError) }) });
  const signals = new PostgresSignals(config, onError);
  const store = new Store(db, 'postgres', signals);
  try {
    await store.ping();
    if (options.migrate ?? true) await migrateToLatest(db as Kysely<unknown>, 'postgres');
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
