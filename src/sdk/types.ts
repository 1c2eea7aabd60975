// Request and response types come from the schemas the server validates with. Type-only imports: nothing of the
// server is loaded at run time by the SDK.
import type { CallbackDelivery } from '../engine/callbacks.ts';
import type { Status } from '../engine/status.ts';
import type {
  ActionObject,
  CreateActionRequest,
  CreateDecisionRequest,
  DecideRequest,
  DecisionObject,
  RejectRequest,
} from '../http/schemas.ts';

export type {
  ActionObject,
  CallbackDelivery,
  CreateActionRequest,
  CreateDecisionRequest,
  DecideRequest,
  DecisionObject,
  RejectRequest,
  Status,
};

/** An action as the actions API returns it: the action object plus its callback deliveries. */
export type Action = ActionObject & { callbacks?: CallbackDelivery[] };

/** An action as SafeFetch's endpoints answer it: with what a reviewer changed (a lower amount), or null. */
export type SafeFetchAction = Action & { modified_details: Record<string, unknown> | null };

export type Decision = DecisionObject;

export interface List<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  url?: string;
}

export interface ListParams {
  status?: Status;
  limit?: number;
  starting_after?: string;
}

export interface LedgerEvent {
  /** The event's place in the hash chain; null until sealed (PostgreSQL, within the sealer's interval). */
  seq: number | null;
  type: string;
  from: string | null;
  to: string | null;
  actor: string;
  data: unknown;
  at: string;
  /** null until sealed, as seq. */
  hash: string | null;
}

/** What Airlock POSTs to a callback URL. */
export interface CallbackEvent<T = Action | Decision> {
  id: string;
  object?: 'event';
  type: string;
  created: number;
  data: { object: T };
}

/** Marks an answer the SDK made up because Airlock could not be reached (only with `failOpen`). */
export interface Synthetic {
  synthetic: true;
  airlock_unavailable: true;
}

export type SyntheticDecision = Synthetic & {
  id: null;
  object: 'decision';
  outcome: 'allow';
  status: 'approved';
  reason_code: 'airlock_unavailable';
  message: string;
  shadow: true;
  modified_details: null;
  decision_note: null;
  intent: CreateDecisionRequest['intent'];
};
