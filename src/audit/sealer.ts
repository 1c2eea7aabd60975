// Runs the ledger's sealer (store.ledger.seal) on PostgreSQL: soon after this instance commits events, and on a
// short interval for those other instances commit. Whichever instance holds the sealer's lock seals for all.
import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';

export interface LedgerSealerOptions {
  /** How often to seal what other instances committed (and what a busy sealer elsewhere left). */
  intervalMs?: number;
  /** How long after a commit to seal, so one seal covers the commits of a burst. */
  debounceMs?: number;
}

export class LedgerSealer {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #debounceMs: number;
  #timer: NodeJS.Timeout | null = null;
  #soon: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #closed = false;
  #unsubscribe: (() => void) | null = null;

  constructor(store: Store, log: Logger, opts: LedgerSealerOptions = {}) {
    this.#store = store;
    this.#log = log;
    this.#intervalMs = opts.intervalMs ?? 100;
    this.#debounceMs = opts.debounceMs ?? 2;
  }

  /** A no-op on SQLite, which chains each event in the transaction that writes it. */
  start(): this {
    if (this.#store.dialect !== 'postgres') return this;
    this.#unsubscribe = this.#store.onUnsealedCommitted(() => this.wake());
    this.#timer = setInterval(() => this.wake(), this.#intervalMs);
    this.#timer.unref();
    this.wake();
    return this;
  }

  wake(): void {
    if (this.#closed || this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = null;
      void this.#run();
    }, this.#debounceMs);
    this.#soon.unref();
  }

  async #run(): Promise<void> {
    if (this.#running) {
      // Commits after the running seal's snapshot are sealed by one more round.
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#store.ledger.seal({ wait: false });
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'could not seal the ledger; retrying');
        }
      } while (this.#again && !this.#closed);
    })();
    await this.#running;
    this.#running = null;
  }

  /** Stops the timers and seals what this process committed, so the last digest covers it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#timer) clearInterval(this.#timer);
    if (this.#soon) clearTimeout(this.#soon);
    await this.#running;
    if (this.#store.dialect !== 'postgres') return;
    try {
      await this.#store.ledger.sealPending();
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'could not seal the ledger on shutdown');
    }
  }
}
