import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { migrateToLatest } from '../migrations.ts';
import type { Database } from '../schema.ts';
import { Store } from '../store.ts';
import { failClosedPool, type PostgresStoreOptions, poolConfig, preparedStatementsOf } from './driver.ts';
import { PostgresSignals } from './signals.ts';

export type { PostgresStoreOptions };

/** Opens (and by default migrates) a PostgreSQL store. Several instances may share the database. */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const config = poolConfig(url, options);
  const prepared = preparedStatementsOf(url, options);
  const onError = options.onError ?? (() => {});
  const pool = new pg.Pool(config);
  // An idle client losing its server must not crash the process; the next query fails closed instead.
  pool.on('error', onError);
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: failClosedPool(pool, onError, prepared) }),
  });
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
