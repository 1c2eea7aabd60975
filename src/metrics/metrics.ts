import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DispatchAttempt, DispatchObserver } from '../engine/dispatcher.ts';
import type { ActionChange, ActionDecided, Engine } from '../engine/engine.ts';
import type { Status } from '../engine/status.ts';
import type { CallbackObserver, CallbackOutcome } from '../outbound/callbacks.ts';
import { clusterRenderer } from './cluster.ts';

// A hold is answered in seconds by a bot test and in hours by a person on a weekend.
const REVIEW_BUCKETS = [1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600];
const DISPATCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Statuses an action rests in until something happens; their counts stay small, so counting them at scrape is an
 * index range scan. Counting every status would scan the whole index (about 0.5 s per scrape at 550,000 actions on
 * SQLite, blocking the event loop), so settled actions are a counter instead.
 */
const LIVE: readonly Status[] = ['received', 'awaiting_approval', 'pending'];

/** Where a hold ends, by the status the action leaves `awaiting_approval` for. */
const REVIEW_ENDS: Partial<Record<ActionChange['status'], string>> = {
  pending: 'approved',
  approved: 'approved',
  rejected: 'rejected',
  expired: 'expired',
  cancelled: 'cancelled',
};

/**
 * Airlock's Prometheus metrics. Counters follow the engine's events and the dispatcher's and callback sender's
 * hooks; the gauges (actions by status, money held) are read from the store at scrape time, so they are right
 * across several instances and after a restart.
 */
export class Metrics implements DispatchObserver, CallbackObserver {
  readonly registry = new Registry();
  readonly decisions: Counter<'outcome' | 'kind'>;
  readonly reviewWait: Histogram<'outcome'>;
  readonly dispatchDuration: Histogram<'mode' | 'result'>;
  readonly dispatchErrors: Counter<'mode' | 'reason'>;
  readonly upstreamResponses: Counter<'mode' | 'code'>;
  readonly callbacks: Counter<'result'>;
  readonly settled: Counter<'status'>;
  readonly outsideEvents: Counter<'type' | 'source'>;
  readonly #onDecided: (d: ActionDecided) => void;
  readonly #onChange: (c: ActionChange) => void;
  readonly #render: () => Promise<{ contentType: string; body: string }>;

  constructor(
    readonly engine: Engine,
    opts: {
      defaultMetrics?: boolean;
      /** Under `serve --workers N`: render the whole group's metrics, gathered by the cluster primary. */
      clustered?: boolean;
    } = {},
  ) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter({ name, help, labelNames, registers });
    const histogram = <L extends string>(name: string, help: string, labelNames: L[], buckets: number[]) =>
      new Histogram({ name, help, labelNames, buckets, registers });
    this.decisions = counter(
      'airlock_decisions_total',
      'Policy decisions on new actions, by outcome (allow, review, block) and kind',
      ['outcome', 'kind'],
    );
    this.reviewWait = histogram(
      'airlock_review_wait_seconds',
      'Time an action spent awaiting review, by how the hold ended',
      ['outcome'],
      REVIEW_BUCKETS,
    );
    this.dispatchDuration = histogram(
      'airlock_dispatch_duration_seconds',
      'Duration of each upstream attempt, by mode (stripe, http) and result (ok, http_error, network, uncertain)',
      ['mode', 'result'],
      DISPATCH_BUCKETS,
    );
    this.dispatchErrors = counter(
      'airlock_dispatch_errors_total',
      'Upstream attempts that did not succeed, by mode and reason (http_error, network, uncertain)',
      ['mode', 'reason'],
    );
    this.upstreamResponses = counter(
      'airlock_upstream_responses_total',
      'Upstream answers to dispatched actions, by mode and HTTP status code',
      ['mode', 'code'],
    );
    this.callbacks = counter(
      'airlock_callback_deliveries_total',
      'Callback delivery attempts, by result (delivered, failed, gave_up)',
      ['result'],
    );
    this.settled = counter(
      'airlock_actions_settled_total',
      'Actions this instance saw reach a final status (completed, failed, blocked, rejected, expired, cancelled, approved for decide-only)',
      ['status'],
    );
    this.outsideEvents = counter(
      'airlock_outside_events_total',
      'Stripe money events Airlock did not make, by event type and source (automation: Stripe itself; outside: a raw key, the Dashboard or a script)',
      ['type', 'source'],
    );
    const store = engine.store;
    new Gauge({
      name: 'airlock_actions',
      // Every worker of a group reads the same rows: one value, not their sum.
      aggregator: 'max',
      help: 'Actions now in a live status (received, awaiting_approval, pending), from the store',
      labelNames: ['status'],
      registers,
      async collect() {
        const rows = await store.metrics.countByStatus(LIVE);
        this.reset();
        for (const s of LIVE) this.set({ status: s }, 0);
        for (const r of rows) this.set({ status: r.status }, r.n);
      },
    });
    new Gauge({
      name: 'airlock_held_amount',
      aggregator: 'max',
      help: 'Money in actions awaiting approval, in the currency minor unit (cents), by currency',
      labelNames: ['currency'],
      registers,
      async collect() {
        const rows = await store.metrics.heldAmounts();
        this.reset();
        for (const r of rows) this.set({ currency: r.currency }, r.total);
      },
    });
    new Gauge({
      name: 'airlock_store_ping_seconds',
      aggregator: 'max',
      help: 'Round trip of a trivial store query, measured at scrape',
      registers,
      async collect() {
        const start = performance.now();
        await store.ping();
        this.set((performance.now() - start) / 1000);
      },
    });

    this.#onDecided = (d) => this.decisions.inc({ outcome: d.outcome, kind: d.kind });
    this.#onChange = (c) => {
      if (!LIVE.includes(c.status)) this.settled.inc({ status: c.status });
      const outcome = REVIEW_ENDS[c.status];
      if (outcome) void this.#observeReview(c.id, outcome);
    };
    engine.changes.on('decided', this.#onDecided);
    engine.changes.on('change', this.#onChange);
    this.#render = opts.clustered
      ? clusterRenderer(this.registry)
      : async () => ({ contentType: this.registry.contentType, body: await this.registry.metrics() });
  }

  async #observeReview(id: string, outcome: string): Promise<void> {
    try {
      const row = await this.engine.store.getAction(id);
      // Only held actions carry expires_at; an allowed action turning pending was never awaiting review.
      if (!row?.expires_at) return;
      const seconds = (this.engine.clock.now().getTime() - Date.parse(row.created_at)) / 1000;
      this.reviewWait.observe({ outcome }, Math.max(0, seconds));
    } catch {
      // A metric is not worth an error: the store's own failures surface elsewhere.
    }
  }

  attempt(a: DispatchAttempt): void {
    this.dispatchDuration.observe({ mode: a.mode, result: a.result }, a.ms / 1000);
    if (a.status !== null) this.upstreamResponses.inc({ mode: a.mode, code: String(a.status) });
    if (a.result !== 'ok') this.dispatchErrors.inc({ mode: a.mode, reason: a.result });
  }

  /** A Stripe money event Airlock did not make was stored (src/engine/stripe-events.ts). */
  outside(e: { type: string; source: string }): void {
    this.outsideEvents.inc({ type: e.type, source: e.source });
  }

  delivery(d: CallbackOutcome): void {
    this.callbacks.inc({ result: d.result });
  }

  /** The Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }> {
    return this.#render();
  }

  close(): void {
    this.engine.changes.off('decided', this.#onDecided);
    this.engine.changes.off('change', this.#onChange);
  }
}
