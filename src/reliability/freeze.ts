// The kill switch: freezes stop every write (money-out) for one agent or for all of them. They live in the store, so
// every instance sees a freeze within FREEZE_CACHE_MS; reads keep working.
import type { Kysely } from 'kysely';
import type { Store } from '../store/store.ts';

/** The scope that freezes every agent. */
export const ALL_AGENTS = '*';
export const FREEZE_CACHE_MS = 1000;

export interface FreezesTable {
  /** An agent id, or ALL_AGENTS. */
  scope: string;
  reason: string | null;
  created_at: string;
}

export interface Freeze {
  scope: string;
  reason: string | null;
  created_at: string;
}

function db(store: Store): Kysely<{ freezes: FreezesTable }> {
  return store.db as unknown as Kysely<{ freezes: FreezesTable }>;
}

export async function listFreezes(store: Store): Promise<Freeze[]> {
  return db(store).selectFrom('freezes').selectAll().orderBy('created_at').execute();
}

/** Freezes a scope; freezing it again replaces the reason. */
export async function setFreeze(store: Store, scope: string, reason: string | null): Promise<Freeze> {
  const row = { scope, reason, created_at: new Date().toISOString() };
  await db(store)
    .insertInto('freezes')
    .values(row)
    .onConflict((oc) => oc.column('scope').doUpdateSet({ reason, created_at: row.created_at }))
    .execute();
  return row;
}

/** Lifts a freeze; false when the scope was not frozen. */
export async function clearFreeze(store: Store, scope: string): Promise<boolean> {
  const res = await db(store).deleteFrom('freezes').where('scope', '=', scope).executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

/** What the engine asks on every write: a short cache in front of the table, shared by all agents. */
export class FreezeCache {
  #rows: Freeze[] = [];
  #until = 0;
  constructor(readonly ttlMs = FREEZE_CACHE_MS) {}

  /** The freeze that applies to this agent (everyone's first), or null. Reads through `store` when the cache is stale. */
  async find(store: Store, agentId: string | null): Promise<Freeze | null> {
    if (Date.now() >= this.#until) {
      this.#rows = await listFreezes(store);
      this.#until = Date.now() + this.ttlMs;
    }
    return (
      this.#rows.find((f) => f.scope === ALL_AGENTS) ??
      (agentId ? this.#rows.find((f) => f.scope === agentId) : undefined) ??
      null
    );
  }

  /** Drops the cache, so a freeze set by this process applies at once. */
  invalidate(): void {
    this.#until = 0;
  }
}

export function frozenReason(f: Freeze): string {
  const who = f.scope === ALL_AGENTS ? 'for every agent' : 'for this agent';
  return `Frozen: money-out is frozen ${who}${f.reason ? ` (${f.reason})` : ''}; writes are refused until an operator runs airlock unfreeze.`;
}
