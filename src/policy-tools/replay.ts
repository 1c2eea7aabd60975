import { type AttributeResolver, Engine } from '../engine/engine.ts';
import { policyResolvers } from '../engine/resolvers/index.ts';
import type { AttrValue, Outcome, Policy } from '../policy/types.ts';
import { openSqliteStore } from '../store/sqlite/open.ts';
import { classify } from '../stripe/classify.ts';
import type { Params } from '../stripe/params.ts';
import type { StripeUpstream } from '../stripe/upstream.ts';

/** One write found in the account's history, as Airlock would have received it. */
export interface HistoryEvent {
  /** The Stripe object: re_…, po_…, tr_…, sub_…. */
  id: string;
  kind: 'refund.create' | 'payout.create' | 'transfer.create' | 'subscription.cancel';
  /** When it happened, ms since the epoch. */
  at: number;
  method: string;
  path: string;
  params: Params;
  amount: number | null;
  currency: string | null;
  customer: string | null;
  charge: { id: string; createdMs: number } | null;
}

export interface History {
  events: HistoryEvent[];
  /** Disputes opened in the window: charge id → when. */
  disputes: Map<string, number>;
}

type Obj = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
const int = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const idOf = (v: unknown): string | null =>
  str(v) ?? (v && typeof v === 'object' ? str((v as Obj)['id']) : null);

export class ReplayError extends Error {
  readonly code = 'replay_failed' as const;
}

/**
 * Pages through one Stripe list endpoint with `created[gte]` (without it, with `scanAll`: canceled
 * subscriptions are listed by creation, not by when they were canceled).
 */
async function* listAll(
  upstream: StripeUpstream,
  path: string,
  params: Params,
  sinceSec: number,
  scanAll = false,
): AsyncGenerator<Obj> {
  let startingAfter: string | null = null;
  for (;;) {
    const query: Params = { limit: '100', ...params };
    if (!scanAll) query['created'] = { gte: String(sinceSec) };
    if (startingAfter) query['starting_after'] = startingAfter;
    const res = await upstream.send({ method: 'GET', path, params: query, stripeAccount: null });
    if (res.status !== 200 || !res.body || typeof res.body !== 'object') {
      throw new ReplayError(`GET ${path} answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
    }
    const body = res.body as { data?: Obj[]; has_more?: boolean };
    const data = body.data ?? [];
    for (const obj of data) {
      // Stripe filters on created[gte] itself; this also covers servers that ignore the filter.
      if (!scanAll && (int(obj['created']) ?? 0) < sinceSec) continue;
      yield obj;
    }
    if (!body.has_more || data.length === 0) return;
    startingAfter = str(data[data.length - 1]!['id']);
  }
}

/**
 * Reads the account's history since `since` through Stripe's list endpoints (read-only): refunds (with their
 * charges expanded), payouts, transfers, canceled subscriptions and disputes. Events come back oldest first.
 */
export async function fetchHistory(
  upstream: StripeUpstream,
  since: Date,
  onFetched?: (what: string, n: number) => void,
): Promise<History> {
  const sinceSec = Math.floor(since.getTime() / 1000);
  const events: HistoryEvent[] = [];
  const count = (what: string) => onFetched?.(what, events.length);
  for await (const r of listAll(upstream, '/v1/refunds', { expand: ['data.charge'] }, sinceSec)) {
    if (r['status'] === 'failed' || r['status'] === 'canceled') continue;
    const charge = r['charge'] && typeof r['charge'] === 'object' ? (r['charge'] as Obj) : null;
    const chargeId = idOf(r['charge']);
    events.push({
      id: String(r['id']),
      kind: 'refund.create',
      at: (int(r['created']) ?? 0) * 1000,
      method: 'POST',
      path: '/v1/refunds',
      params: { ...(chargeId ? { charge: chargeId } : {}), amount: String(r['amount']) },
      amount: int(r['amount']),
      currency: str(r['currency']),
      customer: charge ? idOf(charge['customer']) : null,
      charge: chargeId ? { id: chargeId, createdMs: (int(charge?.['created']) ?? 0) * 1000 } : null,
    });
    count('refunds');
  }
  for await (const p of listAll(upstream, '/v1/payouts', {}, sinceSec)) {
    if (p['original_payout']) continue; // a reversal, not a payout anyone asked for
    events.push({
      id: String(p['id']),
      kind: 'payout.create',
      at: (int(p['created']) ?? 0) * 1000,
      method: 'POST',
      path: '/v1/payouts',
      params: { amount: String(p['amount']), currency: String(p['currency']) },
      amount: int(p['amount']),
      currency: str(p['currency']),
      customer: null,
      charge: null,
    });
    count('payouts');
  }
  for await (const t of listAll(upstream, '/v1/transfers', {}, sinceSec)) {
    events.push({
      id: String(t['id']),
      kind: 'transfer.create',
      at: (int(t['created']) ?? 0) * 1000,
      method: 'POST',
      path: '/v1/transfers',
      params: {
        amount: String(t['amount']),
        currency: String(t['currency']),
        destination: String(idOf(t['destination']) ?? ''),
      },
      amount: int(t['amount']),
      currency: str(t['currency']),
      customer: null,
      charge: null,
    });
    count('transfers');
  }
  for await (const s of listAll(upstream, '/v1/subscriptions', { status: 'canceled' }, sinceSec, true)) {
    const at = int(s['canceled_at']);
    if (at === null || at < sinceSec) continue;
    events.push({
      id: String(s['id']),
      kind: 'subscription.cancel',
      at: at * 1000,
      method: 'DELETE',
      path: `/v1/subscriptions/${String(s['id'])}`,
      params: {},
      amount: null,
      currency: null,
      customer: idOf(s['customer']),
      charge: null,
    });
    count('subscription cancellations');
  }
  const disputes = new Map<string, number>();
  for await (const d of listAll(upstream, '/v1/disputes', {}, sinceSec)) {
    const charge = idOf(d['charge']);
    if (charge) disputes.set(charge, (int(d['created']) ?? 0) * 1000);
  }
  events.sort((a, b) => a.at - b.at || a.id.localeCompare(b.id));
  return { events, disputes };
}

export interface ReplayTotals {
  count: number;
  usd: number;
}

export interface ReplayReport {
  policy_version: string;
  timezone: string;
  since: string;
  until: string;
  days: number;
  events: number;
  disputes: number;
  totals: Record<Outcome, ReplayTotals>;
  by_kind: Record<string, Record<Outcome, ReplayTotals>>;
  /** One entry per local calendar day in the policy timezone, oldest first, empty days included. */
  per_day: ({ date: string } & Record<Outcome, ReplayTotals>)[];
  /** The largest held and blocked events. */
  examples: {
    id: string;
    kind: string;
    at: string;
    amount_usd: number | null;
    outcome: Outcome;
    reason: string;
  }[];
}

const zero = (): Record<Outcome, ReplayTotals> => ({
  allow: { count: 0, usd: 0 },
  review: { count: 0, usd: 0 },
  block: { count: 0, usd: 0 },
});
const round = (n: number) => Math.round(n * 100) / 100;

const dayFormatters = new Map<string, Intl.DateTimeFormat>();
export function localDate(ms: number, timezone: string): string {
  let f = dayFormatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone: timezone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    dayFormatters.set(timezone, f);
  }
  return f.format(ms);
}

/** Facts a replayed refund knows from its expanded charge and the dispute list, as of the refund's time. */
class HistoryFacts implements AttributeResolver {
  constructor(private readonly disputes: Map<string, number>) {}
  current: HistoryEvent | null = null;
  async resolve(ctx: Parameters<AttributeResolver['resolve']>[0]) {
    const e = this.current;
    const attributes: Record<string, AttrValue> = {};
    if (e?.charge && e.charge.createdMs > 0) {
      attributes['charge_age_days'] = Math.floor((ctx.now.getTime() - e.charge.createdMs) / 86_400_000);
      const disputedAt = this.disputes.get(e.charge.id);
      attributes['charge_disputed'] = disputedAt !== undefined && disputedAt <= ctx.now.getTime();
    }
    return { attributes };
  }
}

/**
 * Decides each event in time order as if it had come through Airlock: each one goes through a real Engine on a
 * scratch in-memory store, so velocity windows count what came before it (held ones included), exactly as live.
 */
export async function replayHistory(
  policy: Policy,
  history: History,
  opts: { since: Date; until: Date; onProgress?: (done: number, total: number) => void; examples?: number },
): Promise<ReplayReport> {
  const store = await openSqliteStore(':memory:');
  let now = opts.since;
  const facts = new HistoryFacts(history.disputes);
  const resolvers = policyResolvers(null);
  const engine = new Engine({
    store,
    policy,
    clock: { now: () => now },
    facts: null,
    resolvers: [facts, ...resolvers],
  });
  const totals = zero();
  const byKind: Record<string, Record<Outcome, ReplayTotals>> = {};
  const perDay = new Map<string, Record<Outcome, ReplayTotals>>();
  const examples: ReplayReport['examples'] = [];
  const agent = await store.findOrCreateAgent('agt_history', 'stripe-history', opts.since.toISOString());
  try {
    let lastAt = -1;
    let done = 0;
    for (const e of history.events) {
      // Stripe times are whole seconds: events in the same second are kept apart, in order, by a millisecond.
      const at = Math.max(e.at, lastAt + 1);
      lastAt = at;
      now = new Date(at);
      facts.current = e;
      const classification = {
        ...classify({ method: e.method, path: e.path, params: e.params }),
        amount: e.amount,
        currency: e.currency,
        customer: e.customer,
      };
      const { action } = await engine.submit({
        agent,
        method: e.method,
        path: e.path,
        params: e.params,
        stripeAccount: null,
        stripeVersion: null,
        idempotencyKey: null,
        classification,
      });
      const decision = JSON.parse(action.decision) as { outcome: Outcome; reason: string };
      const outcome = decision.outcome;
      const usd = action.amount_usd ?? 0;
      const add = (t: Record<Outcome, ReplayTotals>) => {
        t[outcome].count++;
        t[outcome].usd = round(t[outcome].usd + usd);
      };
      add(totals);
      byKind[e.kind] ??= zero();
      add(byKind[e.kind]!);
      const day = localDate(at, policy.timezone);
      let d = perDay.get(day);
      if (!d) {
        d = zero();
        perDay.set(day, d);
      }
      add(d);
      if (outcome !== 'allow') {
        examples.push({
          id: e.id,
          kind: e.kind,
          at: new Date(e.at).toISOString(),
          amount_usd: action.amount_usd,
          outcome,
          reason: decision.reason,
        });
      }
      opts.onProgress?.(++done, history.events.length);
    }
  } finally {
    await store.close();
  }
  const days: ReplayReport['per_day'] = [];
  const lastDay = localDate(opts.until.getTime(), policy.timezone);
  for (let t = opts.since.getTime(); ; t += 86_400_000) {
    const date = localDate(t, policy.timezone);
    if (days.at(-1)?.date !== date) days.push({ date, ...(perDay.get(date) ?? zero()) });
    if (date >= lastDay) break;
  }
  examples.sort((a, b) => (b.amount_usd ?? 0) - (a.amount_usd ?? 0));
  return {
    policy_version: policy.version,
    timezone: policy.timezone,
    since: opts.since.toISOString(),
    until: opts.until.toISOString(),
    days: days.length,
    events: history.events.length,
    disputes: history.disputes.size,
    totals,
    by_kind: byKind,
    per_day: days,
    examples: examples.slice(0, opts.examples ?? 10),
  };
}

const usdFmt = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
export const formatUsd = (n: number) => usdFmt.format(n);

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** A per-day stacked bar chart of held (amber) and blocked (red) US dollars. */
export function replayChartSvg(r: ReplayReport): string {
  const barW = 8;
  const gap = 2;
  const left = 70;
  const top = 40;
  const h = 200;
  const width = left + r.per_day.length * (barW + gap) + 20;
  const height = top + h + 50;
  const max = Math.max(1, ...r.per_day.map((d) => d.review.usd + d.block.usd));
  const y = (usd: number) => (usd / max) * h;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(`Replay of ${r.days} days under ${r.policy_version}: USD held and blocked per day`)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="18" font-size="13" font-weight="bold">${esc(`USD that would have been held or blocked per day (${r.timezone})`)}</text>`,
    `<rect x="${left}" y="24" width="10" height="10" fill="#f0a020"/><text x="${left + 14}" y="33">held ${esc(formatUsd(r.totals.review.usd))}</text>`,
    `<rect x="${left + 150}" y="24" width="10" height="10" fill="#d03030"/><text x="${left + 164}" y="33">blocked ${esc(formatUsd(r.totals.block.usd))}</text>`,
    `<line x1="${left}" y1="${top + h}" x2="${width - 10}" y2="${top + h}" stroke="#333"/>`,
    `<text x="${left - 6}" y="${top + 4}" text-anchor="end">${esc(formatUsd(max))}</text>`,
    `<text x="${left - 6}" y="${top + h}" text-anchor="end">$0</text>`,
  ];
  r.per_day.forEach((d, i) => {
    const x = left + i * (barW + gap);
    const held = y(d.review.usd);
    const blocked = y(d.block.usd);
    if (held > 0) {
      parts.push(
        `<rect x="${x}" y="${(top + h - held).toFixed(1)}" width="${barW}" height="${held.toFixed(1)}" fill="#f0a020"><title>${d.date}: held ${d.review.count} (${esc(formatUsd(d.review.usd))})</title></rect>`,
      );
    }
    if (blocked > 0) {
      parts.push(
        `<rect x="${x}" y="${(top + h - held - blocked).toFixed(1)}" width="${barW}" height="${blocked.toFixed(1)}" fill="#d03030"><title>${d.date}: blocked ${d.block.count} (${esc(formatUsd(d.block.usd))})</title></rect>`,
      );
    }
    if (i % 7 === 0) {
      parts.push(
        `<text x="${x}" y="${top + h + 14}" transform="rotate(45 ${x} ${top + h + 14})">${d.date}</text>`,
      );
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** The terminal summary: totals, per kind, the busiest days, the largest held and blocked events. */
export function replaySummary(r: ReplayReport): string {
  const t = r.totals;
  const line = (label: string, x: ReplayTotals) =>
    `  ${label.padEnd(10)} ${String(x.count).padStart(6)}  ${formatUsd(x.usd).padStart(16)}`;
  const out = [
    `Replayed ${r.events} actions over ${r.days} days (${r.since.slice(0, 10)} to ${r.until.slice(0, 10)}) under ${r.policy_version}`,
    line('allowed', t.allow),
    line('held', t.review),
    line('blocked', t.block),
    `  ${r.disputes} dispute(s) in the period`,
    '',
    'By kind (allowed / held / blocked):',
    ...Object.entries(r.by_kind).map(
      ([kind, k]) =>
        `  ${kind.padEnd(22)} ${k.allow.count} / ${k.review.count} (${formatUsd(k.review.usd)}) / ${k.block.count} (${formatUsd(k.block.usd)})`,
    ),
  ];
  const busiest = [...r.per_day]
    .filter((d) => d.review.count + d.block.count > 0)
    .sort((a, b) => b.review.usd + b.block.usd - (a.review.usd + a.block.usd))
    .slice(0, 5);
  if (busiest.length) {
    out.push('', 'Days with the most held or blocked:');
    for (const d of busiest) {
      out.push(
        `  ${d.date}  held ${d.review.count} (${formatUsd(d.review.usd)}), blocked ${d.block.count} (${formatUsd(d.block.usd)})`,
      );
    }
  }
  if (r.examples.length) {
    out.push('', 'Largest held or blocked:');
    for (const e of r.examples.slice(0, 5)) {
      out.push(
        `  ${e.outcome.padEnd(6)} ${e.kind.padEnd(20)} ${formatUsd(e.amount_usd ?? 0).padStart(12)}  ${e.id}  ${e.at}  ${e.reason}`,
      );
    }
  }
  return out.join('\n');
}
