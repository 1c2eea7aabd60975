// What the lifecycle makes of each action status: the legal transitions and every set of statuses are derived from
// the one declaration below. The statuses themselves sit below the store (src/store/status.ts), which types its
// status column by them; they are re-exported here for everything above it.
import { isStatus, STATUSES, type Status } from '../store/status.ts';

export { isStatus, STATUSES, type Status };

/** How a hold ended, by the status the action left `awaiting_approval` for (the review-wait metric's label). */
export type ReviewOutcome = 'approved' | 'rejected' | 'expired' | 'cancelled';

interface StatusFacts {
  /** The statuses an action may move to from this one; the transition primitive refuses any other. */
  next: readonly Status[];
  /**
   * Whether an action here has ended: always, never, or only for a decide-only action (`approved`: the engine clears
   * a Stripe or HTTP action to `pending` instead, so none of them rests there).
   */
  ends: 'always' | 'never' | 'decide';
  /**
   * Counts towards velocity windows: it did, or still may, move money. A held action counts, so an agent cannot get
   * around a limit by piling up requests while the first ones wait for review.
   */
  counted: boolean;
  /** The agent's call has no answer yet: the action is being decided or executed. */
  inFlight: boolean;
  /** Entering this status from `awaiting_approval` ends a hold this way; null when it is not a review's end. */
  review: ReviewOutcome | null;
}

/** Adding a status fails to compile until this table says where it leads and which sets it belongs to. */
const FACTS = {
  // Only ever a ledger event's `from`: a row is written already decided.
  received: {
    next: ['blocked', 'awaiting_approval', 'pending', 'approved'],
    ends: 'never',
    counted: true,
    inFlight: true,
    review: null,
  },
  blocked: { next: [], ends: 'always', counted: false, inFlight: false, review: null },
  awaiting_approval: {
    next: ['pending', 'approved', 'rejected', 'expired', 'cancelled', 'blocked'],
    ends: 'never',
    counted: true,
    inFlight: false,
    review: null,
  },
  approved: { next: [], ends: 'decide', counted: true, inFlight: false, review: 'approved' },
  rejected: { next: [], ends: 'always', counted: false, inFlight: false, review: 'rejected' },
  expired: { next: [], ends: 'always', counted: false, inFlight: false, review: 'expired' },
  cancelled: { next: [], ends: 'always', counted: false, inFlight: false, review: 'cancelled' },
  // Back to a person or blocked when a value derived from Stripe rose before dispatch (revalue).
  pending: {
    next: ['completed', 'failed', 'awaiting_approval', 'blocked'],
    ends: 'never',
    counted: true,
    inFlight: true,
    review: 'approved',
  },
  // Stripe may report later that a completed refund or payout failed (docs/stripe-events.md): the one way out of an
  // ended action, taken only on a signed event about the very object the action made.
  completed: { next: ['failed'], ends: 'always', counted: true, inFlight: false, review: null },
  failed: { next: [], ends: 'always', counted: false, inFlight: false, review: null },
} as const satisfies Record<Status, StatusFacts>;

const facts = (s: Status): StatusFacts => FACTS[s];
const where = (test: (f: StatusFacts) => boolean): readonly Status[] =>
  Object.freeze(STATUSES.filter((s) => test(facts(s))));

/** Legal transitions: from → the statuses it may move to. */
export const TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = Object.freeze(
  Object.fromEntries(STATUSES.map((s) => [s, facts(s).next])) as Record<Status, readonly Status[]>,
);

/** Statuses that never change again. `approved` also ends a decide-only action: see isSettledAction. */
export const TERMINAL_STATUSES = where((f) => f.ends === 'always');

/** Statuses an action rests in until something happens (the metrics count these at scrape time). */
export const LIVE_STATUSES = where((f) => f.ends === 'never');

/** Statuses that count towards a velocity window: everything that did or still may move money. */
export const COUNTED_STATUSES = where((f) => f.counted);

/** Statuses in which the agent's call is still being decided or executed. */
export const IN_FLIGHT_STATUSES = where((f) => f.inFlight);

/** How a hold ends, by the status the action leaves `awaiting_approval` for. */
export const REVIEW_OUTCOMES: Readonly<Partial<Record<Status, ReviewOutcome>>> = Object.freeze(
  Object.fromEntries(STATUSES.flatMap((s) => (facts(s).review ? [[s, facts(s).review]] : []))),
);

export function assertNever(value: never): never {
  throw new Error(`Unhandled value: ${String(value)}`);
}

export function canTransition(from: Status, to: Status): boolean {
  return facts(from).next.includes(to);
}

/**
 * Terminal statuses never change again, but for `completed` → `failed` when Stripe reports that the money did not
 * move after all. `approved` is terminal only for decide-only actions.
 */
export function isTerminal(status: Status): boolean {
  return facts(status).ends === 'always';
}

/** Whether an action has reached its end: decide-only actions end at `approved`, the others execute first. */
export function isSettledAction(row: { status: string; mode: string }): boolean {
  if (!isStatus(row.status)) return false;
  const ends = facts(row.status).ends;
  return ends === 'always' || (ends === 'decide' && row.mode === 'decide');
}

/** Whether the agent's call has its answer: anything but being decided or executed (a hold is an answer). */
export function isAnswered(status: Status): boolean {
  return !facts(status).inFlight;
}
