// The kill switch: freezes stop every write (money-out) for one agent or for all of them. They live in the store, so
// every instance sees a freeze within FREEZE_CACHE_MS; reads keep working.
// The CLI, the admin API and the dashboard all go through the functions here, and each change is a ledger event.
import { AirlockError } from '../errors.ts';
import type { Store } from '../store/store.ts';

/** The scope that freezes every agent. */
export const ALL_AGENTS = '*';
export const FREEZE_CACHE_MS = 1000;

export interface Freeze {
  /** An agent id, or ALL_AGENTS. */
  scope: string;
  reason: string | null;
  created_at: string;
}

export async function listFreezes(store: Store): Promise<Freeze[]> {
  return store.freezes.list();
}

/**
 * Freezes a scope; freezing it again replaces the reason. `actor` says who pressed the switch in the ledger
 * (`cli`, `admin:<name>`, `reviewer:<email>`).
 */
export async function setFreeze(
  store: Store,
  scope: string,
  reason: string | null,
  actor = 'cli',
): Promise<Freeze> {
  const row = { scope, reason, created_at: new Date().toISOString() };
  await store.transaction(async (tx) => {
    await tx.freezes.set(row);
    await tx.appendLedger({
      actionId: null,
      type: 'freeze.set',
      from: null,
      to: null,
      actor,
      data: { scope, reason },
      at: row.created_at,
    });
  });
  return row;
}

/** Lifts a freeze; false when the scope was not frozen (and then nothing is recorded). */
export async function clearFreeze(store: Store, scope: string, actor = 'cli'): Promise<boolean> {
  return store.transaction(async (tx) => {
    const lifted = await tx.freezes.clear(scope);
    if (lifted) {
      await tx.appendLedger({
        actionId: null,
        type: 'freeze.lifted',
        from: null,
        to: null,
        actor,
        data: { scope },
        at: new Date().toISOString(),
      });
    }
    return lifted;
  });
}

/** The scope for an agent name, or every agent when none is given; an unknown name is a 404. */
export async function freezeScope(store: Store, agentName: string | undefined | null): Promise<string> {
  if (agentName === undefined || agentName === null || agentName === '') return ALL_AGENTS;
  const row = await store.credentials.agentByName(agentName);
  if (!row) throw new AirlockError('resource_missing', `No agent named '${agentName}'`, { param: 'agent' });
  return row.id;
}

/** The freezes in force with the agent's name (null for a freeze on every agent), for people to read. */
export async function describeFreezes(store: Store): Promise<(Freeze & { agent: string | null })[]> {
  const freezes = await listFreezes(store);
  if (freezes.length === 0) return [];
  const names = new Map((await store.credentials.listAgents()).map((a) => [a.id, a.name]));
  return freezes.map((f) => ({
    ...f,
    agent: f.scope === ALL_AGENTS ? null : (names.get(f.scope) ?? f.scope),
  }));
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
