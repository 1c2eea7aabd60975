import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { Poller } from '../engine/poll.ts';
import { randomToken } from '../ids.ts';
import type { Store } from '../store/store.ts';
import { NotSentError, OutboundHttp, UncertainError } from './http.ts';

export interface CallbackOptions {
  secret: string;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  pollMs: number;
  timeoutMs: number;
  allowPrivate: boolean;
}

export interface CallbackDelivery {
  result: 'delivered' | 'failed' | 'gave_up';
  status: number | null;
}

export interface CallbackObserver {
  delivery(d: CallbackDelivery): void;
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
  readonly #poller: Poller;
  #ticking = false;

  constructor(
    readonly store: Store,
    readonly options: CallbackOptions,
    readonly log: Logger,
    readonly observer: CallbackObserver | null = null,
  ) {
    this.#poller = new Poller(options.pollMs, () => this.tick());
    this.#http = new OutboundHttp(
      [{ host: '*', allow_private: options.allowPrivate, headers: {} }],
      options.timeoutMs,
    );
  }

  /** Checks a callback URL when it is given, so a bad one is refused up front rather than failing a day later. */
  async check(url: string): Promise<void> {
    await this.#http.check(url);
  }

  start(): void {
    this.#poller.start();
  }

  async stop(): Promise<void> {
    this.#poller.stop();
    await this.#http.close();
  }

  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const now = new Date();
      const due = await this.store.db
        .selectFrom('callbacks')
        .selectAll()
        .where('delivered_at', 'is', null)
        .where('gave_up_at', 'is', null)
        .where('next_attempt_at', '<=', now.toISOString())
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now.toISOString())]))
        .orderBy('next_attempt_at')
        .limit(20)
        .execute();
      await Promise.all(due.map((c) => this.#deliver(c.id, c.url, c.payload, c.attempts)));
    } catch (err) {
      this.log.error({ err }, 'callback sweep failed');
    } finally {
      this.#ticking = false;
    }
  }

  async #deliver(id: string, url: string, payload: string, attempts: number): Promise<void> {
    const now = new Date();
    const lease = new Date(now.getTime() + this.options.timeoutMs + 5_000).toISOString();
    const claimed = await this.store.db
      .updateTable('callbacks')
      .set({ lease_until: lease })
      .where('id', '=', id)
      .where('delivered_at', 'is', null)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now.toISOString())]))
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) return;
    const t = Math.floor(Date.now() / 1000);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await this.#http.send({
        url,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'airlock-signature': signPayload(this.options.secret, payload, t),
          'airlock-event-id': id,
        },
        body: payload,
        idempotencyKey: id,
      });
      status = res.status;
      if (status >= 200 && status < 300) {
        await this.store.db
          .updateTable('callbacks')
          .set({
            delivered_at: new Date().toISOString(),
            attempts: attempts + 1,
            last_status: status,
            last_error: null,
            lease_until: null,
          })
          .where('id', '=', id)
          .execute();
        this.observer?.delivery({ result: 'delivered', status });
        return;
      }
      error = `receiver answered ${status}`;
    } catch (err) {
      if (!(err instanceof NotSentError) && !(err instanceof UncertainError)) throw err;
      error = err.message;
    }
    const tries = attempts + 1;
    const delay = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (tries - 1));
    const giveUp = tries >= this.options.maxAttempts;
    await this.store.db
      .updateTable('callbacks')
      .set({
        attempts: tries,
        last_status: status,
        last_error: error,
        lease_until: null,
        next_attempt_at: new Date(Date.now() + delay).toISOString(),
        gave_up_at: giveUp ? new Date().toISOString() : null,
      })
      .where('id', '=', id)
      .execute();
    this.observer?.delivery({ result: giveUp ? 'gave_up' : 'failed', status });
    this.log.warn({ callback: id, url, attempt: tries, error, giveUp }, 'callback delivery failed');
  }
}

/** The configured secret, or one generated on first start and kept in the store (`airlock callbacks secret`). */
export async function callbackSecret(store: Store, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  const row = await store.db
    .selectFrom('settings')
    .select('value')
    .where('key', '=', 'callback_secret')
    .executeTakeFirst();
  if (row) return row.value;
  const secret = `whsec_${randomToken(40)}`;
  await store.db
    .insertInto('settings')
    .values({ key: 'callback_secret', value: secret })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const stored = await store.db
    .selectFrom('settings')
    .select('value')
    .where('key', '=', 'callback_secret')
    .executeTakeFirstOrThrow();
  return stored.value;
}
