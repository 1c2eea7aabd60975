// `airlock stripe backfill`: the account's recent Events, read with the official client's events.list (newest
// first, a page at a time) and stored through the same ingest as webhooks, so an event already stored (by a
// webhook, or by a run that was killed) is not counted again. Where it got to is stored after each page, so a
// killed run resumes there.
import Stripe from 'stripe';
import type { Store } from '../store/store.ts';
import { EventRefused, parseStripeEvent } from '../stripe/events.ts';
import type { StripeEventIngest } from './stripe-events.ts';

export interface BackfillCursor {
  /** Window start, Unix seconds: events created at or after it. */
  since: number;
  /** The last event id stored, in the list's newest-first order; null before the first page. */
  after: string | null;
  /** Events read so far (stored or already there). */
  seen: number;
  /** Events this backfill stored that were not stored before. */
  stored: number;
  /** The oldest `created` reached so far, Unix seconds. */
  reached: number | null;
  done: boolean;
}

export interface BackfillProgress extends BackfillCursor {
  /** Share of the window covered, 0 to 1, by the oldest event reached. */
  fraction: number;
}

/** The official client pointed at a Stripe base URL (real Stripe, the built-in sandbox, or any compatible server). */
export function stripeClientFor(baseUrl: string, key: string, timeoutMs: number): Stripe {
  const url = new URL(baseUrl);
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  return new Stripe(key, {
    host: url.hostname,
    port: url.port ? Number(url.port) : protocol === 'http' ? 80 : 443,
    protocol,
    timeout: timeoutMs,
    maxNetworkRetries: 3,
  });
}

export async function readCursor(store: Store): Promise<BackfillCursor | null> {
  const raw = await store.stripeEvents.backfillCursor();
  return raw ? (JSON.parse(raw) as BackfillCursor) : null;
}

/**
 * Pages through the events created since `since` (or resumes the unfinished run the store remembers), storing
 * each through `ingest`. `restart` forgets an unfinished run. Returns the final cursor.
 */
export async function backfillEvents(opts: {
  stripe: Stripe;
  ingest: StripeEventIngest;
  since: Date;
  restart?: boolean;
  pageSize?: number;
  now?: () => number;
  onPage?: (p: BackfillProgress) => void;
  onSkipped?: (id: string, why: string) => void;
}): Promise<BackfillCursor> {
  const store = opts.ingest.engine.store;
  const nowS = () => Math.floor((opts.now?.() ?? Date.now()) / 1000);
  const previous = opts.restart ? null : await readCursor(store);
  let cursor: BackfillCursor =
    previous && !previous.done
      ? previous
      : {
          since: Math.floor(opts.since.getTime() / 1000),
          after: null,
          seen: 0,
          stored: 0,
          reached: null,
          done: false,
        };
  const start = nowS();
  const progress = (): BackfillProgress => ({
    ...cursor,
    fraction:
      cursor.done || cursor.reached === null
        ? cursor.done
          ? 1
          : 0
        : Math.min(1, Math.max(0, (start - cursor.reached) / Math.max(1, start - cursor.since))),
  });
  while (!cursor.done) {
    const page = await opts.stripe.events.list({
      limit: opts.pageSize ?? 100,
      created: { gte: cursor.since },
      ...(cursor.after ? { starting_after: cursor.after } : {}),
    });
    let stored = 0;
    for (const raw of page.data) {
      let event: ReturnType<typeof parseStripeEvent>;
      try {
        event = parseStripeEvent(raw);
      } catch (err) {
        if (!(err instanceof EventRefused)) throw err;
        opts.onSkipped?.(String((raw as { id?: unknown }).id), err.message);
        continue;
      }
      // A server that ignores the filter: older events are outside the window.
      if (event.created < cursor.since) continue;
      if ((await opts.ingest.ingest(event, 'backfill')).stored) stored++;
    }
    const last = page.data.at(-1);
    cursor = {
      ...cursor,
      after: last?.id ?? cursor.after,
      seen: cursor.seen + page.data.length,
      stored: cursor.stored + stored,
      reached: last ? Math.min(cursor.reached ?? last.created, last.created) : cursor.reached,
      done: !page.has_more || page.data.length === 0,
    };
    await store.stripeEvents.setBackfillCursor(JSON.stringify(cursor));
    opts.onPage?.(progress());
  }
  return cursor;
}
