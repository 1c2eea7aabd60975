import { isDeepStrictEqual } from 'node:util';
import { type Compilable, CompiledQuery, type Kysely } from 'kysely';
import type { Dialect } from './migrations.ts';
import type { Database } from './schema.ts';
import type { Journal, VelocityMemory } from './velocity-memory.ts';

/**
 * What a repository runs its queries on: the store's root connection, or the transaction a `store.transaction()`
 * callback was given. A Store hands its own to each of its repositories, so a repository reached through `tx` is
 * inside that transaction.
 */
export interface Connection {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  /** The in-memory velocity aggregates every write keeps current (SQLite); null when the database answers. */
  readonly velocity?: VelocityMemory | null;
  /** Inside a transaction: how to undo its changes to the aggregates if it rolls back. */
  readonly journal?: Journal | null;
}

// Kysely builds and compiles every query anew: about 130 µs of CPU for the 40-column action insert, more than
// SQLite takes to store it. The SQL of one query shape never changes, so the hot path's statements are compiled
// once per shape and dialect and then run with new parameters. The first compile checks the parameter order.
const shapes = new Map<string, string>();

/** Runs a query of a known shape with `parameters` in the order Kysely would bind them. */
export async function shaped<R>(
  c: Connection,
  shape: string,
  build: () => Compilable<R>,
  parameters: unknown[],
): Promise<R[]> {
  const result = await c.db.executeQuery<R>(
    CompiledQuery.raw(shapeText(c, shape, build, parameters), parameters),
  );
  return result.rows;
}

/** The SQL of a query shape, compiled on first use (see `shaped`). */
export function shapeText(
  c: Connection,
  shape: string,
  build: () => Compilable<unknown>,
  parameters: unknown[],
): string {
  const key = `${c.dialect}:${shape}`;
  let text = shapes.get(key);
  if (text === undefined) {
    const compiled = build().compile();
    if (!isDeepStrictEqual([...compiled.parameters], parameters)) {
      throw new Error(`query shape ${shape} binds its parameters in another order`);
    }
    text = compiled.sql;
    shapes.set(key, text);
  }
  return text;
}

/** Runs SQL written for one dialect, cached by shape: `write` is called once per shape. */
export async function written<R>(
  c: Connection,
  shape: string,
  write: () => string,
  parameters: unknown[],
): Promise<R[]> {
  const key = `${c.dialect}:${shape}`;
  let text = shapes.get(key);
  if (text === undefined) {
    text = write();
    shapes.set(key, text);
  }
  const result = await c.db.executeQuery<R>(CompiledQuery.raw(text, parameters));
  return result.rows;
}
