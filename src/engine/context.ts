// What a reviewer needs beside a hold to decide in seconds: who is being refunded, how much of the charge is left,
// why the agent says it acts, which rules held it, and what happened to this customer before. Read-only: the
// store's earlier actions and cached Stripe look-ups (ContextLookups), never an action or a ledger event.
import type { ActionRow, CustomerActionRow, Store } from '../store/store.ts';
import type {
  AccountScope,
  ChargeFacts,
  ContextLookups,
  CustomerFacts,
  CustomerStripeHistory,
  Fetched,
} from '../stripe/lookups.ts';
import { effectiveAccount } from './account.ts';
import type { StoredDecision } from './types.ts';

/** Where an agent's stated reason came from, in the order they are preferred. */
export type ReasonSource =
  | 'Airlock-Reason'
  | 'justification'
  | 'metadata[reason]'
  | 'description'
  | 'summary';

export interface StatedReason {
  source: ReasonSource;
  text: string;
}

/** The longest stated reason Airlock keeps from the Airlock-Reason header, and shows from any source. */
export const MAX_REASON_LENGTH = 500;

/** A matched rule as a reviewer reads it: its `name:` when it has one, and its text. */
export interface RuleLabel {
  name: string | null;
  text: string;
}

/** A customer's earlier actions through Airlock (at most AIRLOCK_HISTORY_LIMIT of them). */
export interface AirlockHistory {
  actions: number;
  refunds: { total: number; completed: number; rejected: number; blocked: number; open: number };
  /** What completed refunds moved, per currency. */
  refunded: Record<string, number>;
  disputes: number;
  truncated: boolean;
}

export const AIRLOCK_HISTORY_LIMIT = 100;

export interface ActionContext {
  reasons: StatedReason[];
  rules: RuleLabel[];
  /** null when the action names no charge. */
  charge: { id: string; facts: Fetched<ChargeFacts> } | null;
  /** null when no customer is known (none named, and the charge could not say). */
  customer: {
    id: string;
    stripe: Fetched<CustomerFacts>;
    history: Fetched<CustomerStripeHistory>;
    airlock: AirlockHistory;
  } | null;
}

function text(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const t = v.trim();
  return t ? t.slice(0, MAX_REASON_LENGTH) : null;
}

function parse(json: string | null): Record<string, unknown> {
  if (!json) return {};
  try {
    const v = JSON.parse(json) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The reasons an agent stated for an action, most explicit first: the Airlock-Reason header of the proxy, the
 * decisions API's `justification`, then what the Stripe call itself carries (`metadata[reason]`, `description`),
 * then a caller's `summary`. Each once; the same text from two places is shown once, under the first.
 */
export function statedReasons(
  row: Pick<ActionRow, 'details' | 'params' | 'original_params'>,
): StatedReason[] {
  const details = parse(row.details);
  // What the agent sent, not what a reviewer changed while approving.
  const params = parse(row.original_params ?? row.params);
  const metadata = params['metadata'];
  const candidates: [ReasonSource, unknown][] = [
    ['Airlock-Reason', details['reason']],
    ['justification', details['justification']],
    [
      'metadata[reason]',
      metadata && typeof metadata === 'object' ? (metadata as Record<string, unknown>)['reason'] : null,
    ],
    ['description', params['description']],
    ['summary', details['summary']],
  ];
  const out: StatedReason[] = [];
  for (const [source, value] of candidates) {
    const t = text(value);
    if (t && !out.some((r) => r.text === t)) out.push({ source, text: t });
  }
  return out;
}

/** The rules that matched, by name where the policy gives one. */
export function ruleLabels(decision: Pick<StoredDecision, 'rules' | 'rule_names'>): RuleLabel[] {
  // `?? []`: a decision row written by hand (a migration, a test) may carry no rules at all.
  return (decision.rules ?? []).map((t, i) => ({ name: decision.rule_names?.[i] ?? null, text: t }));
}

/** The charge the action is about, when its request names one. */
export function namedCharge(row: Pick<ActionRow, 'params' | 'path'>): {
  charge: string | null;
  paymentIntent: string | null;
} {
  const params = parse(row.params);
  const context =
    params['context'] && typeof params['context'] === 'object'
      ? (params['context'] as Record<string, unknown>)
      : {};
  const charge =
    text(params['charge']) ??
    text(context['charge']) ??
    /^\/v1\/charges\/([A-Za-z0-9_]+)/.exec(row.path)?.[1] ??
    null;
  const paymentIntent = text(params['payment_intent']) ?? text(context['payment_intent']);
  return { charge, paymentIntent };
}

export function airlockHistory(rows: CustomerActionRow[], truncated: boolean): AirlockHistory {
  const h: AirlockHistory = {
    actions: rows.length,
    refunds: { total: 0, completed: 0, rejected: 0, blocked: 0, open: 0 },
    refunded: {},
    disputes: 0,
    truncated,
  };
  for (const r of rows) {
    if (r.kind.startsWith('dispute.')) h.disputes++;
    if (r.kind !== 'refund.create') continue;
    h.refunds.total++;
    if (r.status === 'completed') {
      h.refunds.completed++;
      const cur = r.currency ?? 'usd';
      h.refunded[cur] = (h.refunded[cur] ?? 0) + (r.amount === null ? 0 : Number(r.amount));
    } else if (r.status === 'rejected') h.refunds.rejected++;
    else if (r.status === 'blocked') h.refunds.blocked++;
    else if (r.status !== 'expired' && r.status !== 'cancelled' && r.status !== 'failed') h.refunds.open++;
  }
  return h;
}

/**
 * The context of one action. Look-ups run together under one deadline (`timeoutMs`, default the look-ups' own):
 * a notification waits at most that long for them, and a failed one is an answer the reviewer reads.
 */
export async function loadContext(
  store: Store,
  lookups: ContextLookups | null,
  row: ActionRow,
  opts: { timeoutMs?: number } = {},
): Promise<ActionContext> {
  const decision = JSON.parse(row.decision) as StoredDecision;
  const base = { reasons: statedReasons(row), rules: ruleLabels(decision) };
  const scope: AccountScope = {
    stripeAccount: row.stripe_account,
    stripeContext: row.stripe_context ?? null,
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 2_000);
  const left = () => Math.max(50, deadline - Date.now());
  const unavailable = <T>(): Fetched<T> => ({ ok: false, error: 'look-ups are not configured' });

  // A generic HTTP action's body belongs to another API: its ids are not Stripe's to look up.
  const stripe = row.mode !== 'http';
  const named = stripe ? namedCharge(row) : { charge: null, paymentIntent: null };
  let chargeId = named.charge;
  let charge: ActionContext['charge'] = null;
  if (!chargeId && named.paymentIntent) {
    const pi = lookups
      ? await lookups.latestCharge(named.paymentIntent, scope, left())
      : unavailable<string>();
    if (pi.ok) chargeId = pi.value;
    else charge = { id: named.paymentIntent, facts: pi };
  }
  const customerNamed = stripe ? row.customer : null;
  const [chargeFacts, early] = await Promise.all([
    chargeId ? (lookups ? lookups.charge(chargeId, scope, left()) : unavailable<ChargeFacts>()) : null,
    customerNamed ? customerFacts(store, lookups, row, customerNamed, scope, left) : null,
  ]);
  if (chargeId && chargeFacts) charge = { id: chargeId, facts: chargeFacts };
  const fromCharge = chargeFacts?.ok ? chargeFacts.value.customer : null;
  const customer =
    early ?? (fromCharge ? await customerFacts(store, lookups, row, fromCharge, scope, left) : null);
  return { ...base, charge, customer };
}

async function customerFacts(
  store: Store,
  lookups: ContextLookups | null,
  row: ActionRow,
  id: string,
  scope: AccountScope,
  left: () => number,
): Promise<NonNullable<ActionContext['customer']>> {
  const account = row.on_account ?? effectiveAccount(row.stripe_account, row.stripe_context ?? null);
  const unavailable = { ok: false as const, error: 'look-ups are not configured' };
  const [stripe, history, earlier] = await Promise.all([
    lookups ? lookups.customer(id, scope, left()) : unavailable,
    lookups ? lookups.customerHistory(id, scope, left()) : unavailable,
    store.actions.forCustomer(id, account, row.id, AIRLOCK_HISTORY_LIMIT + 1),
  ]);
  const truncated = earlier.length > AIRLOCK_HISTORY_LIMIT;
  return { id, stripe, history, airlock: airlockHistory(earlier.slice(0, AIRLOCK_HISTORY_LIMIT), truncated) };
}
