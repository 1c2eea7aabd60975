import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';

/** A fresh endpoint secret in Stripe's form. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64url')}`;
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  secret: string;
  /** Event types, or `*` for all. */
  enabledEvents: string[];
  /**
   * Which accounts' events it receives: 'self' its own account's (an account endpoint), 'connect' those of
   * connected accounts (a Connect endpoint), 'all' both.
   */
  scope: 'self' | 'connect' | 'all';
  /** The account the endpoint belongs to; '' for the platform. */
  account: string;
}

export function endpointWants(endpoint: WebhookEndpoint, type: string, account: string): boolean {
  if (!endpoint.enabledEvents.includes('*') && !endpoint.enabledEvents.includes(type)) return false;
  if (endpoint.scope === 'all') return true;
  const own = account === endpoint.account;
  return endpoint.scope === 'self' ? own : !own;
}

export interface DeliveryAttempt {
  endpoint: string;
  url: string;
  event: string;
  type: string;
  attempt: number;
  /** The HTTP status answered, or null when the request failed (refused, reset, timed out). */
  status: number | null;
  error: string | null;
  ok: boolean;
  at: number;
}

export interface DeliveryOptions {
  /** First retry delay; doubles per failed attempt up to `maxBackoffMs`. Default 1000. */
  backoffMs?: number;
  /** Default 60,000. */
  maxBackoffMs?: number;
  /** How long an endpoint has to answer. Default 10,000, as Stripe allows. */
  timeoutMs?: number;
}

const MAX_LOGGED_ATTEMPTS = 100_000;

interface Queued {
  eventId: string;
  type: string;
  /** Renders the event with its current pending_webhooks, at each attempt. */
  render: () => string;
  attempts: number;
}

interface Lane {
  endpoint: WebhookEndpoint;
  queue: Queued[];
  running: boolean;
  /** The attempt under way, aborted when the endpoint is dropped. */
  inflight: AbortController | null;
}

/**
 * Delivers events to endpoints, asynchronously, one at a time and in order per endpoint; a non-2xx answer or a
 * failed request is retried with backoff, holding that endpoint's later events back. Queues live in memory.
 */
export class WebhookDelivery {
  private readonly lanes = new Map<string, Lane>();
  private readonly pending = new Map<string, number>();
  private readonly attemptLog: DeliveryAttempt[] = [];
  private readonly wakers = new Set<() => void>();
  private readonly controllers = new Set<AbortController>();
  private closed = false;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly timeoutMs: number;

  constructor(
    opts: DeliveryOptions,
    /** Writes an event's pending delivery count where GET /v1/events reads it. */
    private readonly onPending: (eventId: string, pending: number) => void,
  ) {
    this.backoffMs = opts.backoffMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 60_000;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  enqueue(endpoint: WebhookEndpoint, eventId: string, type: string, render: () => string): void {
    if (this.closed) return;
    let lane = this.lanes.get(endpoint.id);
    if (!lane) {
      lane = { endpoint, queue: [], running: false, inflight: null };
      this.lanes.set(endpoint.id, lane);
    }
    lane.endpoint = endpoint;
    lane.queue.push({ eventId, type, render, attempts: 0 });
    this.pending.set(eventId, (this.pending.get(eventId) ?? 0) + 1);
    if (!lane.running) {
      lane.running = true;
      void this.run(lane);
    }
  }

  /** Drops an endpoint's queue (deleted or disabled endpoint): its events are no longer pending for it. */
  drop(endpointId: string): void {
    const lane = this.lanes.get(endpointId);
    if (!lane) return;
    for (const item of lane.queue.splice(0)) this.settle(item.eventId);
    this.lanes.delete(endpointId);
    // Else a delivery under way finishes on a kept-alive connection, which holds a closing endpoint server open.
    lane.inflight?.abort();
  }

  pendingFor(eventId: string): number {
    return this.pending.get(eventId) ?? 0;
  }

  attempts(): DeliveryAttempt[] {
    return [...this.attemptLog];
  }

  close(): void {
    this.closed = true;
    for (const c of this.controllers) c.abort();
    for (const wake of this.wakers) wake();
    this.lanes.clear();
  }

  private settle(eventId: string): void {
    const left = (this.pending.get(eventId) ?? 1) - 1;
    if (left <= 0) this.pending.delete(eventId);
    else this.pending.set(eventId, left);
    if (!this.closed) this.onPending(eventId, Math.max(0, left));
  }

  private async run(lane: Lane): Promise<void> {
    while (!this.closed && this.lanes.get(lane.endpoint.id) === lane) {
      const item = lane.queue[0];
      if (!item) break;
      item.attempts++;
      const ok = await this.attempt(lane, item);
      if (this.closed || this.lanes.get(lane.endpoint.id) !== lane) break;
      if (ok) {
        lane.queue.shift();
        this.settle(item.eventId);
        continue;
      }
      const delay = Math.min(this.backoffMs * 2 ** (item.attempts - 1), this.maxBackoffMs);
      await this.sleep(delay);
    }
    lane.running = false;
  }

  private async attempt(lane: Lane, item: Queued): Promise<boolean> {
    const { endpoint } = lane;
    const body = item.render();
    const timestamp = Math.floor(Date.now() / 1000);
    const controller = new AbortController();
    this.controllers.add(controller);
    lane.inflight = controller;
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(endpoint.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          // Stripe's own scheme, from the official package: t=<unix seconds>,v1=<HMAC-SHA256 of "t.body">.
          'stripe-signature': Stripe.webhooks.generateTestHeaderString({
            payload: body,
            secret: endpoint.secret,
            timestamp,
          }),
        },
        body,
        signal: controller.signal,
      });
      status = res.status;
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      error = !controller.signal.aborted
        ? err instanceof Error
          ? err.message
          : String(err)
        : this.lanes.get(endpoint.id) === lane
          ? 'timed out'
          : 'endpoint removed';
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
      lane.inflight = null;
    }
    const ok = status !== null && status >= 200 && status < 300;
    // An endpoint that never answers is retried for as long as the process runs: keep the newest attempts only.
    if (this.attemptLog.length >= MAX_LOGGED_ATTEMPTS) this.attemptLog.splice(0, MAX_LOGGED_ATTEMPTS / 2);
    this.attemptLog.push({
      endpoint: endpoint.id,
      url: endpoint.url,
      event: item.eventId,
      type: item.type,
      attempt: item.attempts,
      status,
      error,
      ok,
      at: Date.now(),
    });
    return ok;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }
}
