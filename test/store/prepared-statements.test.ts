// PostgreSQL keeps the statements Airlock repeats prepared on each connection. A migration run by another process
// while instances serve (a rolling upgrade) changes a prepared `select *`'s result type, which PostgreSQL then
// refuses to run as prepared: the store must answer anyway, and never send a stale shape again.
import { CompiledQuery, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preparedStatementsOf, StatementNames } from '../../src/store/postgres/driver.ts';
import { openPostgresStore } from '../../src/store/postgres/open.ts';
import type { Store } from '../../src/store/store.ts';
import { connectionOf, createPostgresDatabase, POSTGRES_AVAILABLE, type TestDatabase } from './databases.ts';

describe('statement names', () => {
  it('names a text on its second sighting, keeps the name, and sends a refused text unnamed from then on', () => {
    const names = new StatementNames();
    expect(names.nameOf('select 1')).toBeUndefined();
    const name = names.nameOf('select 1');
    expect(name).toMatch(/^airlock_\d+$/);
    expect(names.nameOf('select 1')).toBe(name);
    expect(names.nameOf('select 2')).toBeUndefined();
    expect(names.nameOf('select 2')).not.toBe(name);
    names.refuse('select 1');
    expect(names.nameOf('select 1')).toBeUndefined();
    expect(names.nameOf('select 1')).toBeUndefined();
  });

  it('names no more than MAX_NAMED texts', () => {
    const names = new StatementNames();
    let named = 0;
    for (let i = 0; i < StatementNames.MAX_NAMED + 50; i++) {
      names.nameOf(`select ${i}`);
      if (names.nameOf(`select ${i}`) !== undefined) named++;
    }
    expect(named).toBe(StatementNames.MAX_NAMED);
  });

  it('reads prepared_statements from the URL over the option, and refuses a value it does not know', () => {
    const url = 'postgres://u@h/db';
    expect(preparedStatementsOf(url)).toBe(true);
    expect(preparedStatementsOf(url, { preparedStatements: false })).toBe(false);
    expect(preparedStatementsOf(`${url}?prepared_statements=off`, { preparedStatements: true })).toBe(false);
    expect(preparedStatementsOf(`${url}?prepared_statements=on`, { preparedStatements: false })).toBe(true);
    expect(() => preparedStatementsOf(`${url}?prepared_statements=sometimes`)).toThrow(/on or off/);
  });
});

describe.skipIf(!POSTGRES_AVAILABLE)('prepared statements on PostgreSQL', () => {
  let database: TestDatabase;
  let store: Store;
  let admin: pg.Client;

  beforeAll(async () => {
    database = await createPostgresDatabase();
    // One connection, so the statement prepared is the one the next call reuses.
    store = await openPostgresStore(`${database.url}?pool_max=1`);
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end();
    await store?.close();
    await database?.drop();
  });

  const readAll = (db = connectionOf(store)) =>
    sql<Record<string, unknown>>`select * from settings where key = ${'k'}`.execute(db);

  it('are used: the repeated statement is prepared on the connection', async () => {
    await sql`insert into settings (key, value) values (${'k'}, ${'v'})`.execute(connectionOf(store));
    await readAll();
    await readAll();
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from pg_prepared_statements where statement like ${'select * from settings%'}`.execute(
      connectionOf(store),
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('answer outside a transaction after another process adds a column, with the new shape', async () => {
    await readAll();
    await admin.query('alter table settings add column note text');
    const after = await readAll();
    expect(after.rows[0]).toMatchObject({ key: 'k', value: 'v', note: null });
    // And from then on, unnamed: no error again.
    expect((await readAll()).rows[0]).toHaveProperty('note');
  });

  it('fail only the transaction that met the change, and the next one answers', async () => {
    const text = 'select * from settings where value = $1';
    const run = (db: ReturnType<typeof connectionOf>) =>
      db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, ['v']));
    await run(connectionOf(store));
    await run(connectionOf(store));
    await admin.query('alter table settings add column tag text');
    await expect(store.transaction(async (tx) => run(connectionOf(tx)))).rejects.toThrow(
      /cached plan must not change result type/,
    );
    const rows = await store.transaction(async (tx) => run(connectionOf(tx)));
    expect(rows.rows[0]).toHaveProperty('tag', null);
  });
});
