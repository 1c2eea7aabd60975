import { type CallbackDelivery, callbacksFor } from '../engine/callbacks.ts';
import type { ActionContext, Engine, StoredDecision } from '../engine/engine.ts';
import { AirlockError } from '../errors.ts';
import type { ActionSearch } from '../store/dashboard.ts';
import { listNotifications } from '../store/outbox.ts';
import type { ActionRow, ApprovalRow, LedgerEntry } from '../store/store.ts';
import { redact } from './html.ts';
import type { ReviewStore } from './store.ts';

/** Everything a page needs about one action, with secrets already redacted. */
export interface ActionView {
  row: ActionRow;
  decision: StoredDecision;
  params: Record<string, unknown>;
  originalParams: Record<string, unknown> | null;
  responseBody: unknown;
  agent: { id: string; name: string } | null;
  /** Email of the reviewer who asked for it in the dashboard. */
  requester: string | null;
  approvals: ApprovalRow[];
  ledger: LedgerEntry[];
  /** Without their ids, and each URL as origin and path only: a query string may carry a token. */
  callbacks: Omit<CallbackDelivery, 'id'>[];
  notifications: NotificationDelivery[];
  /** The customer, the charge, the stated reason and the history (engine/context.ts); null unless asked for. */
  context: ActionContext | null;
}

/** A message to a reviewer about the hold, as the receipt shows it: never its body, which holds their links. */
export interface NotificationDelivery {
  channel: string;
  recipient: string;
  /** queued (not sent yet, or retrying), sent, failed (gave up) or skipped (decided before it could be sent). */
  status: string;
  attempts: number;
  delivered_at: string | null;
  gave_up_at: string | null;
  last_status: number | null;
  last_error: string | null;
}

/** Callback deliveries as the receipt shows them: origin and path only, since a query string may carry a token. */
async function deliveriesFor(engine: Engine, actionId: string): Promise<Omit<CallbackDelivery, 'id'>[]> {
  return (await callbacksFor(engine.store, actionId)).map(({ id: _id, url, ...rest }) => {
    let shown: string;
    try {
      const u = new URL(url);
      shown = `${u.origin}${u.pathname}`;
    } catch {
      shown = '[unparseable URL]';
    }
    return { ...rest, url: shown };
  });
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function loadView(
  engine: Engine,
  reviews: ReviewStore,
  id: string,
  opts: { ledger?: boolean; context?: boolean } = {},
): Promise<ActionView> {
  const row = await engine.store.getAction(id);
  if (!row) throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
  return viewOf(engine, reviews, row, opts);
}

export async function viewOf(
  engine: Engine,
  reviews: ReviewStore,
  row: ActionRow,
  opts: { ledger?: boolean; context?: boolean } = {},
): Promise<ActionView> {
  const [approvals, agent, requester, ledger, callbacks, notifications, context] = await Promise.all([
    engine.store.listApprovals(row.id),
    row.agent_id ? engine.store.getAgent(row.agent_id) : Promise.resolve(undefined),
    row.requested_by ? reviews.reviewerEmail(row.requested_by) : Promise.resolve(null),
    opts.ledger ? engine.store.ledgerForAction(row.id) : Promise.resolve([]),
    opts.ledger ? deliveriesFor(engine, row.id) : Promise.resolve([]),
    opts.ledger ? listNotifications(engine.store, row.id) : Promise.resolve([]),
    opts.context ? engine.context(row) : Promise.resolve(null),
  ]);
  return buildView(row, {
    approvals,
    agent: agent ?? null,
    requester,
    ledger,
    callbacks,
    notifications,
    context,
  });
}

/** A view from a row and what was read beside it; everything shown is redacted here. */
function buildView(
  row: ActionRow,
  extra: Pick<
    ActionView,
    'approvals' | 'agent' | 'requester' | 'ledger' | 'callbacks' | 'notifications' | 'context'
  >,
): ActionView {
  return {
    row,
    decision: JSON.parse(row.decision) as StoredDecision,
    params: redact(parseJson(row.params)) as Record<string, unknown>,
    originalParams: row.original_params
      ? (redact(parseJson(row.original_params)) as Record<string, unknown>)
      : null,
    responseBody: redact(parseJson(row.response_body)),
    agent: extra.agent,
    requester: extra.requester,
    approvals: extra.approvals,
    ledger: extra.ledger.map((e) => ({ ...e, data: JSON.stringify(redact(parseJson(e.data))) })),
    callbacks: extra.callbacks,
    notifications: extra.notifications,
    context: extra.context,
  };
}

/** Held actions, the most urgent (soonest to expire) first. */
export async function queue(engine: Engine, reviews: ReviewStore): Promise<ActionView[]> {
  return viewsOf(engine, reviews, await engine.store.dashboard.queue(200));
}

/**
 * The views of a page of rows with two queries for all their votes and agents, not two per row: a 200-row queue
 * otherwise took 400 round trips through the driver.
 */
export async function viewsOf(
  engine: Engine,
  reviews: ReviewStore,
  rows: ActionRow[],
): Promise<ActionView[]> {
  if (rows.length === 0) return [];
  const agentIds = [...new Set(rows.map((r) => r.agent_id).filter((id): id is string => id !== null))];
  const [approvals, agents] = await Promise.all([
    engine.store.approvals.listForActions(rows.map((r) => r.id)),
    engine.store.credentials.agentsByIds(agentIds),
  ]);
  const votesOf = new Map<string, typeof approvals>();
  for (const a of approvals) votesOf.set(a.action_id, [...(votesOf.get(a.action_id) ?? []), a]);
  const agentOf = new Map(agents.map((a) => [a.id, a]));
  return Promise.all(
    rows.map(async (row) =>
      buildView(row, {
        approvals: votesOf.get(row.id) ?? [],
        agent: (row.agent_id ? agentOf.get(row.agent_id) : undefined) ?? null,
        requester: row.requested_by ? await reviews.reviewerEmail(row.requested_by) : null,
        ledger: [],
        callbacks: [],
        notifications: [],
        context: null,
      }),
    ),
  );
}

export type ActionFilters = ActionSearch;

/** All actions, newest first, filtered, with keyset pagination on (created_at, id). */
export async function searchActions(
  engine: Engine,
  reviews: ReviewStore,
  f: ActionFilters,
): Promise<{ views: ActionView[]; hasMore: boolean }> {
  const { rows, hasMore } = await engine.store.dashboard.search(f);
  return { views: await viewsOf(engine, reviews, rows), hasMore };
}

export interface DayStats {
  day: string;
  held: number;
  approved: number;
  rejected: number;
  expired: number;
  heldUsd: number;
}

/** Per-day counts over the ledger: what was held, how it ended, and the money held back. */
export async function overview(engine: Engine, now: Date, days = 14): Promise<DayStats[]> {
  const since = new Date(now.getTime() - (days - 1) * 86_400_000);
  const sinceDay = since.toISOString().slice(0, 10);
  const rows = await engine.store.dashboard.overviewEvents(`${sinceDay}T00:00:00.000Z`);
  const byDay = new Map<string, DayStats>();
  for (let i = 0; i < days; i++) {
    const day = new Date(since.getTime() + i * 86_400_000).toISOString().slice(0, 10);
    byDay.set(day, { day, held: 0, approved: 0, rejected: 0, expired: 0, heldUsd: 0 });
  }
  for (const r of rows) {
    const s = byDay.get(r.at.slice(0, 10));
    if (!s) continue;
    if (r.type === 'action.decided' && r.to === 'awaiting_approval') {
      s.held++;
      s.heldUsd += Number(r.usd ?? 0);
    } else if (r.type === 'action.approved') s.approved++;
    else if (r.type === 'action.rejected') s.rejected++;
    else if (r.type === 'action.expired') s.expired++;
  }
  return [...byDay.values()];
}
