// What every system of the engine shares, as one object (trigger.dev's run engine hands its systems one
// `SystemResources`): the store, the clock, the policy running now, the signals. No system holds state of its own.
import { EventEmitter } from 'node:events';
import { AirlockError } from '../errors.ts';
import type { Policy } from '../policy/index.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { ContextLookups, FactSource } from '../stripe/lookups.ts';
import type { HoldNotifications, OutcomeNotifications } from './callbacks.ts';
import { type Clock, systemClock } from './clock.ts';
import { FreezeCache } from './freeze.ts';
import type { Status } from './status.ts';
import type { ActionChange, ActionDecided, AttributeResolver, EngineOptions } from './types.ts';

/** In-process signals: `change` after a status change commits, `decided` once per new action. */
export type EngineSignals = EventEmitter<{ change: [ActionChange]; decided: [ActionDecided] }>;

export interface EngineResources {
  readonly store: Store;
  readonly clock: Clock;
  /** Completes the facts a request leaves to Stripe; null when nothing is looked up (tests, decide-only use). */
  readonly facts: FactSource | null;
  /** Cached look-ups for the context reviewers see; null when nothing is looked up. */
  readonly context: ContextLookups | null;
  readonly resolvers: AttributeResolver[];
  /** Freezes set with `airlock freeze`, read through a short cache so every instance sees them. */
  readonly freezes: FreezeCache;
  readonly signals: EngineSignals;
  /** The policy running now. A reload replaces it whole; a decision reads it once. */
  policy: Policy;
  /** Queues reviewers' messages in the transaction that holds an action (an outbox); null when none are sent. */
  notifications: HoldNotifications | null;
  /** Queues customer notices in the transaction that settles an action; null when none are sent. */
  outcomeNotifications: OutcomeNotifications | null;
  /** The dispatcher that claims approved actions in the approval's transaction; null when none runs here. */
  approvalClaim: { owner: string; leaseMs: number } | null;
}

export function createResources(opts: EngineOptions): EngineResources {
  const signals: EngineSignals = new EventEmitter();
  signals.setMaxListeners(0);
  return {
    store: opts.store,
    clock: opts.clock ?? systemClock,
    facts: opts.facts ?? null,
    context: opts.context ?? null,
    resolvers: opts.resolvers ?? [],
    freezes: new FreezeCache(),
    signals,
    policy: opts.policy,
    notifications: null,
    outcomeNotifications: null,
    approvalClaim: null,
  };
}

export async function readAction(r: EngineResources, id: string): Promise<ActionRow> {
  const row = await r.store.getAction(id);
  if (!row) throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
  return row;
}

/** Tells this process's listeners (dispatcher, waits, metrics) about a status change, once it is committed. */
export function announce(r: EngineResources, id: string, status: Status, claimed?: ActionRow): void {
  r.signals.emit('change', { id, status, ...(claimed ? { claimed } : {}) });
}
