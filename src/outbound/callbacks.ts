import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { randomToken } from '../ids.ts';
import { type CallbackRow, OutboxQueue } from '../store/outbox.ts';
import type { Store } from '../store/store.ts';
import { NotSentError, OutboundHttp, UncertainError } from './http.ts';
import { type Attempt, OutboxWorker, type RetryOptions } from './outbox.ts';

export interface CallbackOptions extends RetryOptions {
  secret: string;
  allowPrivate: boolean;
}

/** How one try of a callback ended, for metrics; `status` is null when the receiver gave no answer. */
export interface CallbackOutcome {
  result: 'delivered' | 'failed' | 'gave_up';
  status: number | null;
}

export interface CallbackObserver {
  delivery(d: CallbackOutcome): void;
}

/** `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe signs its webhooks. */
export function signPayload(secret: string, body: string, timestamp: number): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/**
 * Delivers queued callbacks (the outbox the engine writes in the same transaction as each settling change),
 * retrying with backoff until the receiver answers 2xx or the budget runs out. Each try carries the same event.
 */
export class CallbackSender {
  readonly #http: OutboundHttp;
  readonly #worker: OutboxWorker<'callbacks'>;

  constructor(
    readonly store: Store,
    readonly options: CallbackOptions,
    readonly log: Logger,
    readonly observer: CallbackObserver | null = null,
  ) {
    this.#http = new OutboundHttp(
      [{ host: '*', allow_private: options.allowPrivate, headers: {} }],
      options.timeoutMs,
    );
    this.#worker = new OutboxWorker(
      new OutboxQueue(store, 'callbacks'),
      options,
      {
        deliver: (c) => this.#deliver(c),
        settled: (_c, outcome, attempt) => {
          if (outcome === 'skipped') return; // callbacks are never skipped
          this.observer?.delivery({
            result: outcome,
            status: attempt.result === 'skipped' ? null : attempt.status,
          });
        },
        describe: (c) => ({ url: c.url }),
      },
      log,
      'callback',
    );
  }

  /** Checks a callback URL when it is given, so a bad one is refused up front rather than failing a day later. */
  async check(url: string): Promise<void> {
    await this.#http.check(url);
  }

  start(): void {
    this.#worker.start();
  }

  async stop(): Promise<void> {
    this.#worker.stop();
    await this.#http.close();
  }

  async tick(): Promise<void> {
    await this.#worker.tick();
  }

  async #deliver(c: CallbackRow): Promise<Attempt> {
    const t = Math.floor(Date.now() / 1000);
    try {
      const res = await this.#http.send({
        url: c.url,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'airlock-signature': signPayload(this.options.secret, c.payload, t),
          'airlock-event-id': c.id,
        },
        body: c.payload,
        idempotencyKey: c.id,
      });
      if (res.status >= 200 && res.status < 300) return { result: 'delivered', status: res.status };
      return { result: 'failed', status: res.status, error: `receiver answered ${res.status}` };
    } catch (err) {
      if (!(err instanceof NotSentError) && !(err instanceof UncertainError)) throw err;
      return { result: 'failed', status: null, error: err.message };
    }
  }
}

/** The configured secret, or one generated on first start and kept in the store (`airlock callbacks secret`). */
export async function callbackSecret(store: Store, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  // Two instances starting at once may both make one: the first stored stays, and both sign with it.
  return store.settings.getOrCreate('callback_secret', () => `whsec_${randomToken(40)}`);
}
