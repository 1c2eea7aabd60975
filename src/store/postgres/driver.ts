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
  /**
   * Keep repeated statements prepared on each connection (default true); the URL's `prepared_statements=off` wins.
   * Off for a pooler that cannot carry them (PgBouncer in transaction mode before 1.21).
   */
  preparedStatements?: boolean;
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

/** Whether repeated statements are kept prepared: the URL's `prepared_statements` (on/off) over the option. */
export function preparedStatementsOf(url: string, options: PostgresStoreOptions = {}): boolean {
  const fromUrl = new URL(url).searchParams.get('prepared_statements');
  if (fromUrl === null) return options.preparedStatements ?? true;
  if (/^(on|true|1)$/i.test(fromUrl)) return true;
  if (/^(off|false|0)$/i.test(fromUrl)) return false;
  throw new Error(`prepared_statements in DATABASE_URL must be on or off, not ${fromUrl}`);
}

export function poolConfig(url: string, options: PostgresStoreOptions = {}): pg.PoolConfig {
  const parsed = new URL(url);
  const fromUrl = parsed.searchParams.get('pool_max');
  parsed.searchParams.delete('pool_max');
  parsed.searchParams.delete('prepared_statements');
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

/**
 * Names for the statements this process sends more than once, so that each connection parses and plans them once
 * rather than on every call: parsing and planning were half of PostgreSQL's CPU per allowed request (bench:scale,
 * 4.15 against 2.17 ms). A text seen once runs unnamed (migrations, one-off reads).
 */
export class StatementNames {
  static readonly MAX_NAMED = 2_000;
  static readonly MAX_TRACKED = 20_000;
  /** A text's name, or false: sent unnamed so far (seen once, refused, or past the limits). */
  readonly #seen = new Map<string, string | false>();
  readonly #refused = new Set<string>();
  #named = 0;

  /** The name to send this text under, or undefined to send it unnamed. */
  nameOf(text: string): string | undefined {
    const entry = this.#seen.get(text);
    if (typeof entry === 'string') return entry;
    if (entry === undefined) {
      if (this.#seen.size < StatementNames.MAX_TRACKED) this.#seen.set(text, false);
      return undefined;
    }
    if (this.#refused.has(text) || this.#named >= StatementNames.MAX_NAMED) return undefined;
    const name = `airlock_${this.#named++}`;
    this.#seen.set(text, name);
    return name;
  }

  /** PostgreSQL refused the prepared form (a migration changed its result type): unnamed from now on. */
  refuse(text: string): void {
    this.#refused.add(text);
    this.#seen.set(text, false);
  }
}

/** A prepared statement PostgreSQL will not run as prepared: its result type changed, or it is gone. */
function preparedRefused(err: unknown): boolean {
  const code = err instanceof Error && 'code' in err ? String((err as { code: unknown }).code) : '';
  return (
    code === '26000' ||
    (code === '0A000' && /cached plan must not change result type/.test((err as Error).message))
  );
}

/** Maps connection failures on every query, not only inside transactions, to StoreUnavailable: fail closed. */
export function failClosedPool(pool: pg.Pool, onError: (err: Error) => void, prepared = true): PostgresPool {
  const names = prepared ? new StatementNames() : null;
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
      // Kysely opens and ends transactions with these statements; outside one, a refused statement is run again.
      let inTransaction = false;
      const send = (text: string, values: unknown[], name: string | undefined) =>
        client.query(name === undefined ? { text, values } : { name, text, values });
      return {
        async query(text: string, values: unknown[]) {
          if (/^(begin|start transaction)/i.test(text)) inTransaction = true;
          else if (/^(commit|rollback)$/i.test(text)) inTransaction = false;
          const name = names?.nameOf(text);
          try {
            return await send(text, values, name);
          } catch (err) {
            if (name !== undefined && names && preparedRefused(err)) {
              names.refuse(text);
              if (!inTransaction) {
                try {
                  return await send(text, values, undefined);
                } catch (again) {
                  throw asStoreError(again);
                }
              }
            }
            throw asStoreError(err);
          }
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
