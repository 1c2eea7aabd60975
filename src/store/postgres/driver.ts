// The pg pool as Airlock runs it: integers as numbers, and a pool whose failures close the store, never the process.
import type { PostgresPool, PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { asStoreError } from '../store.ts';

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
export function failClosedPool(pool: pg.Pool, onError: (err: Error) => void): PostgresPool {
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
