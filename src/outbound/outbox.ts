import type { Logger } from 'pino';
import { exponentialBackoff } from '../retry.ts';
import type { OutboxColumns, OutboxName, OutboxQueue, OutboxRow } from '../store/outbox.ts';
import type { Store } from '../store/store.ts';

export interface RetryOptions {
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  pollMs: number;
  /** How long one try may take. */
  timeoutMs: number;
  /** How long a try holds its row, so no other sweep takes it meanwhile; by default the timeout and 5 s. */
  leaseMs?: number;
}

/** What one try came to. A permanent failure gives up at once: trying again cannot help. */
export type Attempt =
  | { result: 'delivered'; status: number | null }
  | { result: 'failed'; error: string; status: number | null; permanent?: boolean }
  /** Nothing was sent, and nothing should be: the message no longer applies. */
  | { result: 'skipped'; reason: string };

export type Outcome = 'delivered' | 'failed' | 'gave_up' | 'skipped';

export interface OutboxHandler<T extends OutboxName> {
  /** One try of a claimed row. Throws only on a bug or a store failure; the row then waits for its lease to lapse. */
  deliver(row: OutboxRow<T>): Promise<Attempt>;
  /** Writes beside the outcome, in the transaction that records it (a status, a ledger event). */
  record?(tx: Store, row: OutboxRow<T>, outcome: Outcome, attempt: Attempt, at: string): Promise<void>;
  /** After the outcome is committed: metrics. */
  settled?(row: OutboxRow<T>, outcome: Outcome, attempt: Attempt): void;
  /** What the log says about a row besides its id (never a secret). */
  describe?(row: OutboxRow<T>): Record<string, unknown>;
}

/**
 * Delivers an outbox: sweeps due rows, leases each for one try, and retries with exponential backoff until it is
 * delivered or the budget runs out. The row, written with the change it reports, is what makes a crash harmless:
 * after a restart the sweep finds it again. Callbacks and reviewers' notifications both run on it.
 */
export class OutboxWorker<T extends OutboxName> {
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #current: Promise<void> | null = null;
  #again = false;
  #recover = false;

  constructor(
    readonly queue: OutboxQueue<T, Store>,
    readonly options: RetryOptions,
    readonly handler: OutboxHandler<T>,
    readonly log: Logger,
    /** Names the rows in log lines: `callback`, `notification`. */
    readonly label: string,
  ) {}

  /** Sweeps on a timer. The first sweep first takes back the leases a crashed run left (SQLite only). */
  start(): void {
    this.#recover = true;
    this.#running = true;
    // Each sweep is timed from the end of the one before, so a slow sweep never overlaps the next.
    const loop = () => {
      if (!this.#running) return;
      this.#timer = setTimeout(() => void this.tick().then(loop), this.options.pollMs);
    };
    loop();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Sweeps now rather than at the next poll (a row was just queued); a sweep under way runs once more after. */
  wake(): void {
    if (this.#current) this.#again = true;
    else void this.tick();
  }

  /** One sweep; while one is under way, that one. */
  tick(): Promise<void> {
    this.#current ??= this.#sweep().finally(() => {
      this.#current = null;
    });
    return this.#current;
  }

  /** Resolves when no sweep is under way. */
  async idle(): Promise<void> {
    await this.#current;
  }

  async #sweep(): Promise<void> {
    try {
      do {
        this.#again = false;
        if (this.#recover) {
          this.#recover = false;
          const released = await this.queue.releaseLeases();
          if (released > 0)
            this.log.warn({ released }, `resuming ${this.label}s left in flight by a previous run`);
        }
        const due = await this.queue.due(new Date().toISOString(), 20);
        const tries = await Promise.allSettled(due.map((row) => this.#attempt(row)));
        for (const t of tries) {
          // A bug or the store failing mid-try: the row keeps its lease until it lapses, then is tried again.
          if (t.status === 'rejected') this.log.error({ err: t.reason }, `${this.label} delivery failed`);
        }
      } while (this.#again);
    } catch (err) {
      this.log.error({ err }, `${this.label} sweep failed`);
    }
  }

  async #attempt(row: OutboxRow<T>): Promise<void> {
    const { options, handler } = this;
    const now = new Date();
    const lease = new Date(now.getTime() + (options.leaseMs ?? options.timeoutMs + 5_000)).toISOString();
    if (!(await this.queue.claim(row.id, row.attempts, now.toISOString(), lease))) return;
    const attempt = await handler.deliver(row);
    const at = new Date().toISOString();
    let outcome: Outcome;
    let patch: Partial<OutboxColumns>;
    switch (attempt.result) {
      case 'delivered':
        outcome = 'delivered';
        patch = {
          delivered_at: at,
          attempts: row.attempts + 1,
          last_status: attempt.status,
          last_error: null,
          lease_until: null,
        };
        break;
      case 'skipped':
        outcome = 'skipped';
        patch = { gave_up_at: at, last_error: attempt.reason, lease_until: null };
        break;
      case 'failed': {
        const tries = row.attempts + 1;
        const delay = exponentialBackoff(tries, options.backoffMs, options.maxBackoffMs);
        const giveUp = attempt.permanent === true || tries >= options.maxAttempts;
        outcome = giveUp ? 'gave_up' : 'failed';
        patch = {
          attempts: tries,
          last_status: attempt.status,
          last_error: attempt.error,
          lease_until: null,
          next_attempt_at: new Date(Date.now() + delay).toISOString(),
          gave_up_at: giveUp ? at : null,
        };
        break;
      }
      default:
        throw new Error(`unknown outcome ${JSON.stringify(attempt satisfies never)}`);
    }
    const recorded = await this.queue.store.transaction(async (tx) => {
      if (!(await this.queue.settle(tx, row.id, lease, patch))) return false;
      await handler.record?.(tx, row, outcome, attempt, at);
      return true;
    });
    if (!recorded) return; // the lease lapsed mid-try and another sweep took the row over
    handler.settled?.(row, outcome, attempt);
    if (attempt.result === 'failed') {
      this.log.warn(
        {
          [this.label]: row.id,
          ...handler.describe?.(row),
          attempt: patch.attempts,
          error: attempt.error,
          giveUp: outcome === 'gave_up',
        },
        `${this.label} delivery failed`,
      );
    }
  }
}
