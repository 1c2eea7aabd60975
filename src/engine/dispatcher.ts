import type { Logger } from 'pino';
import { StoreUnavailable } from '../errors.ts';
import { newId } from '../ids.ts';
import { NotSentError, type OutboundHttp, UncertainError } from '../outbound/http.ts';
import { exponentialBackoff, withJitter } from '../retry.ts';
import { type ActionRow, asStoreError } from '../store/store.ts';
import type { Params } from '../stripe/params.ts';
import { reconcile } from '../stripe/reconcile.ts';
import { type StripeUpstream, UpstreamNetworkError } from '../stripe/upstream.ts';
import type { Engine } from './engine.ts';
import { Poller } from './poll.ts';
import { assertNever } from './status.ts';
import type { ActionChange } from './types.ts';

export interface DispatchOptions {
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  leaseMs: number;
  pollMs: number;
  /** After the budget, how often an action whose outcome is unknown is retried and reconciled. */
  reconcileMs: number;
}

/** One upstream attempt as metrics see it; `status` is null when no answer came. */
export interface DispatchAttempt {
  mode: 'stripe' | 'http';
  ms: number;
  status: number | null;
  result: 'ok' | 'http_error' | 'network' | 'uncertain';
}

export interface DispatchObserver {
  attempt(a: DispatchAttempt): void;
}

/** Statuses worth another try with the same Idempotency-Key; anything else is Stripe's final answer. */
export function isRetryableStatus(status: number): boolean {
  return status === 409 || status === 429 || status >= 500;
}

/** Tags the upstream object with the action id where Stripe accepts metadata, so an uncertain outcome can be found. */
export function upstreamParams(action: ActionRow): Params {
  const params = JSON.parse(action.params) as Params;
  if (!action.accepts_metadata) return params;
  const metadata = params['metadata'];
  const base = metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? metadata : {};
  return { ...params, metadata: { ...base, airlock_action: action.id } };
}

/**
 * A durable queue over the `pending` rows of the store. Every upstream call carries `Idempotency-Key:
 * airlock-<action id>`, so a retry after a crash or a timeout can only get Stripe's stored answer, never a second effect.
 */
export class Dispatcher {
  readonly owner = newId('disp');
  readonly #inFlight = new Map<string, Promise<ActionRow | null>>();
  /** Set when the store failed us; the next sweep that reaches it takes back the leases the outage orphaned. */
  #storeFailed = false;
  readonly #poller: Poller;
  #stopped = false;
  #ticking = false;
  readonly #onChange: (c: ActionChange) => void;
  #unlisten: () => void = () => {};

  constructor(
    readonly engine: Engine,
    readonly upstream: StripeUpstream,
    readonly options: DispatchOptions,
    readonly log: Logger,
    readonly http: OutboundHttp | null = null,
    readonly observer: DispatchObserver | null = null,
  ) {
    this.#poller = new Poller(options.pollMs, () => this.tick());
    this.#onChange = (c) => {
      if (c.status === 'pending' && !this.#stopped) void this.drive(c.id, c.claimed ?? null);
    };
  }

  start(): void {
    this.#stopped = false;
    this.engine.changes.on('change', this.#onChange);
    this.engine.claimApprovalsFor({ owner: this.owner, leaseMs: this.options.leaseMs });
    // Approvals on other instances arrive by LISTEN/NOTIFY on PostgreSQL; the poll below is the fallback.
    this.#unlisten = this.engine.store.onActionsReady((id) => {
      if (!this.#stopped) void this.drive(id);
    });
    void this.tick();
    this.#poller.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.engine.claimApprovalsFor(null);
    this.engine.changes.off('change', this.#onChange);
    this.#unlisten();
    this.#poller.stop();
    await Promise.allSettled([...this.#inFlight.values()]);
  }

  /** One sweep: expire overdue holds, send due reminders and escalations, then drive whatever is due (after approvals elsewhere, retries, restarts). */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      await this.engine.expireDue();
      const ids = await this.engine.store.listDispatchable(this.engine.clock.now().toISOString(), 50);
      for (const id of ids) void this.drive(id);
      await this.engine.sendDueReminders();
      if (this.#storeFailed) await this.#resumeOrphaned();
    } catch (err) {
      if (asStoreError(err) instanceof StoreUnavailable) this.#storeFailed = true;
      this.log.error({ err }, 'dispatcher sweep failed');
    } finally {
      this.#ticking = false;
    }
  }

  /**
   * Drives one action to completed or failed, retrying within the budget. Concurrent calls share one run. Resolves
   * with the completed row when this run completed it from Stripe's answer (so the caller needs no second read).
   */
  drive(id: string, claimed: ActionRow | null = null): Promise<ActionRow | null> {
    const running = this.#inFlight.get(id);
    // A run without the claim (a sweep, a wake-up by NOTIFY) may have started first. It cannot claim what this
    // instance holds, so the claimed run follows it when it ends without settling the action.
    if (running) return claimed ? running.then((done) => done ?? this.#resumeClaimed(id)) : running;
    const run = this.#run(id, claimed)
      .catch((err) => {
        if (asStoreError(err) instanceof StoreUnavailable) {
          this.#storeFailed = true;
          this.log.warn(
            { err, action: id },
            'dispatch interrupted: the store is unavailable; resuming when it answers',
          );
        } else this.log.error({ err, action: id }, 'dispatch failed unexpectedly');
        return null;
      })
      .finally(() => this.#inFlight.delete(id));
    this.#inFlight.set(id, run);
    return run;
  }

  /** Drives an action this dispatcher claimed, if it is still pending under its lease. */
  async #resumeClaimed(id: string): Promise<ActionRow | null> {
    const row = await this.engine.store.getAction(id);
    const ours = row?.status === 'pending' && row.lease_owner === this.owner;
    if (!row || !ours || this.#inFlight.has(id)) return null;
    return this.drive(id, row);
  }

  /**
   * After an outage, actions leased by this dispatcher that none of its runs is driving: runs the store cut short,
   * and completions the database lost in its crash (relaxed commits). Their leases would keep them waiting for
   * lease_ms; releasing them (recorded as a retry) and driving them again is safe, since a repeat carries the same
   * Idempotency-Key and gets Stripe's stored answer if the first attempt went through.
   */
  async #resumeOrphaned(): Promise<void> {
    for (const id of await this.engine.store.listLeasedBy(this.owner)) {
      if (this.#inFlight.has(id) || this.#stopped) continue;
      await this.engine.scheduleRetry(
        id,
        this.owner,
        'the store was unavailable during dispatch',
        this.engine.clock.now(),
      );
      void this.drive(id);
    }
    this.#storeFailed = false;
  }

  /** `claimed`: the first attempt's claim was already taken with the decision (the allow path). */
  async #run(id: string, claimed: ActionRow | null): Promise<ActionRow | null> {
    let first = claimed;
    // Whether an attempt may have taken effect upstream. Attempts made before this run (another process, a
    // crash) are unknown to it, so they count as uncertain.
    let uncertain = false;
    let seen = 0;
    for (;;) {
      if (this.#stopped) return null;
      const action = first ?? (await this.engine.claim(id, this.owner, this.options.leaseMs));
      first = null;
      if (!action) return null;
      if (!(await this.engine.approvalsBindTo(action))) {
        await this.engine.fail(id, this.owner, null, undefined, 'approval does not match this request');
        return null;
      }
      // A value Airlock derived but could not write into the request (the endpoint takes no amount) may have
      // risen since the decision: if it has, the action goes back to be decided again instead of being sent.
      if (await this.engine.revalueIfRisen(action, this.owner)) return null;
      const result = await this.#attempt(action);
      if (result.done) return result.row ?? null;
      const { error, code, body } = result;
      seen++;
      uncertain ||= result.uncertain || seen < action.attempts;
      if (action.attempts >= this.options.maxAttempts) {
        if (!uncertain || action.mode === 'http') {
          await this.engine.fail(
            id,
            this.owner,
            code,
            body,
            `${error} (gave up after ${action.attempts} attempts)`,
          );
          return null;
        }
        await this.#settleUncertain(action, error, code, body);
        return null;
      }
      // The upstream's Retry-After wins over our backoff when it asks for longer (capped by the backoff ceiling).
      const delay = Math.max(
        withJitter(exponentialBackoff(action.attempts, this.options.backoffMs, this.options.maxBackoffMs)),
        Math.min(result.retryAfterMs ?? 0, this.options.maxBackoffMs),
      );
      this.log.warn(
        { action: id, attempt: action.attempts, delay, error },
        'upstream attempt failed; retrying',
      );
      await this.engine.scheduleRetry(
        id,
        this.owner,
        error,
        new Date(this.engine.clock.now().getTime() + delay),
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /**
   * The budget ran out after an attempt that may have taken effect. Stripe is asked whether an object tagged
   * with the action exists: if so the action completed; if Stripe can say it does not, the action failed. While
   * Stripe cannot say, the action stays pending and is retried (same key) and checked again later, within the
   * idempotency window, so a refund that happened is never reported as failed.
   */
  async #settleUncertain(
    action: ActionRow,
    error: string,
    code: number | null,
    body: unknown,
  ): Promise<void> {
    const id = action.id;
    const verdict = await reconcile(this.upstream, action);
    switch (verdict.kind) {
      case 'found':
        this.log.warn({ action: id }, 'reconciled: the upstream object exists although no answer arrived');
        await this.engine.complete(id, this.owner, 200, verdict.object);
        return;
      case 'absent':
        await this.engine.fail(
          id,
          this.owner,
          code,
          body,
          `${error} (gave up after ${action.attempts} attempts; Stripe holds no object tagged metadata[airlock_action]=${id}, so it did not execute)`,
        );
        return;
      case 'unknown': {
        const age = this.engine.clock.now().getTime() - Date.parse(action.created_at);
        if (age >= RECONCILE_FOR_MS) {
          await this.engine.fail(
            id,
            this.owner,
            code,
            body,
            `${error} (outcome unknown after ${action.attempts} attempts: ${verdict.reason}; check Stripe for metadata[airlock_action]=${id})`,
          );
          return;
        }
        const retryAt = new Date(this.engine.clock.now().getTime() + this.options.reconcileMs);
        this.log.warn(
          { action: id, reason: verdict.reason, retryAt },
          'outcome unknown; will retry and reconcile',
        );
        await this.engine.scheduleRetry(
          id,
          this.owner,
          `${error}; outcome unknown (${verdict.reason}), retrying`,
          retryAt,
        );
        return;
      }
      default:
        return assertNever(verdict);
    }
  }

  /** One upstream attempt: settles the action when the answer is final, or says why another try is due. */
  async #attempt(action: ActionRow): Promise<AttemptResult> {
    const id = action.id;
    if (action.mode === 'http') return this.#attemptHttp(action);
    const start = performance.now();
    try {
      const res = await this.upstream.send({
        method: action.method,
        path: action.path,
        // The bytes the decision was bound to, as stored; rows from before bound requests re-encode their params.
        body: action.body,
        params: action.body === null ? upstreamParams(action) : {},
        idempotencyKey: `airlock-${action.id}`,
        stripeAccount: action.stripe_account,
        stripeContext: action.stripe_context,
        stripeVersion: action.stripe_version,
      });
      this.#observe('stripe', start, res.status);
      if (res.status >= 200 && res.status < 300) {
        // Stripe keeps the answer under our Idempotency-Key, so this record can be rebuilt: no fsync needed.
        const row = await this.engine.complete(id, this.owner, res.status, res.body, false);
        return { done: true, row };
      }
      const error = `upstream answered ${res.status}: ${errorMessage(res.body)}`;
      if (!isRetryableStatus(res.status)) {
        await this.engine.fail(id, this.owner, res.status, res.body, error);
        return { done: true };
      }
      const wait = retryAfterMs(res.headers['retry-after']);
      return {
        done: false,
        error,
        code: res.status,
        body: res.body,
        uncertain: res.status !== 429,
        ...(wait !== undefined ? { retryAfterMs: wait } : {}),
      };
    } catch (err) {
      if (!(err instanceof UpstreamNetworkError)) throw err;
      this.#observe('stripe', start, null, 'network');
      return unreachable(err, !err.notSent);
    }
  }

  /**
   * Generic upstreams may ignore Idempotency-Key, so only failures that prove the request was not processed
   * (never connected, 429, 503) are retried; an uncertain outcome fails the action for a person to check.
   */
  async #attemptHttp(action: ActionRow): Promise<AttemptResult> {
    const id = action.id;
    if (!this.http) {
      await this.engine.fail(
        id,
        this.owner,
        null,
        undefined,
        'no upstream hosts are configured for the actions API',
      );
      return { done: true };
    }
    const start = performance.now();
    try {
      const res = await this.http.send({
        url: action.url ?? '',
        method: action.method,
        headers: action.http_headers ? (JSON.parse(action.http_headers) as Record<string, string>) : {},
        body: action.http_body,
        idempotencyKey: `airlock-${action.id}`,
      });
      this.#observe('http', start, res.status);
      if (res.status >= 200 && res.status < 300) {
        await this.engine.complete(id, this.owner, res.status, res.body);
        return { done: true };
      }
      const error = `upstream answered ${res.status}`;
      if (res.status === 429 || res.status === 503)
        return { done: false, error, code: res.status, body: res.body, uncertain: false };
      await this.engine.fail(id, this.owner, res.status, res.body, error);
      return { done: true };
    } catch (err) {
      if (err instanceof NotSentError) {
        this.#observe('http', start, null, 'network');
        return unreachable(err, false);
      }
      if (err instanceof UncertainError) {
        this.#observe('http', start, null, 'uncertain');
        await this.engine.fail(
          id,
          this.owner,
          null,
          undefined,
          `outcome unknown, not retried: ${err.message}`,
        );
        return { done: true };
      }
      throw err;
    }
  }

  #observe(
    mode: DispatchAttempt['mode'],
    start: number,
    status: number | null,
    error: 'network' | 'uncertain' | null = null,
  ): void {
    if (!this.observer) return;
    const result = error ?? (status !== null && status >= 200 && status < 300 ? 'ok' : 'http_error');
    this.observer.attempt({ mode, ms: performance.now() - start, status, result });
  }
}

type AttemptResult =
  | { done: true; row?: ActionRow }
  /**
   * uncertain: the upstream may have acted (no answer, a 5xx, a conflict); not: it certainly did not.
   * retryAfterMs: the upstream said when to come back (Retry-After), which the backoff then respects.
   */
  | {
      done: false;
      error: string;
      code: number | null;
      body: unknown;
      uncertain: boolean;
      retryAfterMs?: number;
    };

/** No answer from the upstream: worth another try; `uncertain` when the request may have reached it. */
function unreachable(err: Error, uncertain: boolean): AttemptResult {
  return {
    done: false,
    error: `upstream unreachable: ${err.message}`,
    code: null,
    body: undefined,
    uncertain,
  };
}

/** Retry-After in seconds (or an HTTP date), as milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The idempotency window Stripe keeps answers for is 24 hours; reconciliation stops short of it. */
const RECONCILE_FOR_MS = 23 * 3_600_000;

function errorMessage(body: unknown): string {
  const e = (body as { error?: { message?: unknown } } | null)?.error;
  return typeof e?.message === 'string' ? e.message : 'no error message';
}
