import type { AttributeResolver, StoredDecision, Submission } from '../engine/engine.ts';
import type { ResolveContext } from '../engine/resolvers/velocity.ts';
import { declaredClaims } from '../engine/systems/evaluation.ts';
import { baseAttributes } from '../policy/attributes.ts';
import { decide } from '../policy/evaluate.ts';
import type { AttrValue, Outcome, Policy, PolicyDecision } from '../policy/types.ts';
import type { ActionRow, Store } from '../store/store.ts';
import { classify } from '../stripe/classify.ts';
import type { Params } from '../stripe/params.ts';

export const OUTCOMES: readonly Outcome[] = ['allow', 'review', 'block'];

export interface Move {
  from: Outcome;
  to: Outcome;
  count: number;
  usd: number;
  examples: { id: string; kind: string; amount_usd: number | null; created_at: string; reason: string }[];
}

export interface SimulationReport {
  policy_version: string;
  since: string;
  until: string;
  actions: number;
  changed: number;
  /** Every (from, to) pair that occurred, the unchanged ones included. */
  moves: Move[];
  /** Totals per outcome before and after. */
  before: Record<Outcome, { count: number; usd: number }>;
  after: Record<Outcome, { count: number; usd: number }>;
}

const empty = () => ({
  allow: { count: 0, usd: 0 },
  review: { count: 0, usd: 0 },
  block: { count: 0, usd: 0 },
});

const round = (n: number) => Math.round(n * 100) / 100;

/** Re-decides one stored action under `policy`, as of the moment it was received. */
export async function redecide(
  store: Store,
  policy: Policy,
  resolvers: readonly AttributeResolver[],
  row: ActionRow,
  agent: { id: string; name: string } | null,
): Promise<{ decision: PolicyDecision; attributes: Record<string, AttrValue> }> {
  const params = JSON.parse(row.params) as Params;
  const original = classify({ method: row.method, path: row.path, params });
  // What the live decision completed from Stripe (currency, the amount of a full refund) is on the row.
  const classification = {
    ...original,
    kind: row.kind,
    amount: row.amount === null ? null : Number(row.amount),
    currency: row.currency,
    customer: row.customer ?? original.customer,
  };
  const now = new Date(row.created_at);
  const submission: Submission = {
    agent,
    method: row.method,
    path: row.path,
    params,
    stripeAccount: row.stripe_account,
    stripeContext: row.stripe_context ?? null,
    stripeVersion: row.stripe_version,
    idempotencyKey: null,
    classification: original,
  };
  let attributes: Record<string, AttrValue> = baseAttributes(
    {
      kind: classification.kind,
      read: row.read === 1,
      method: row.method,
      path: row.path,
      amount: classification.amount,
      currency: classification.currency,
      agent: agent?.name ?? null,
      // The account the call acted on, as the live decision saw it.
      stripe_account: row.on_account ?? row.stripe_account,
      stripe_context: row.stripe_context ?? null,
      // A generic call's caller claims count as they did live: they can only make the decision stricter.
      declared: row.mode === 'stripe' ? null : declaredClaims(row),
      customer: classification.customer,
      charge: classification.charge,
      destination: classification.destination,
      payment_intent: classification.payment_intent,
    },
    now,
    policy,
  );
  for (const resolver of resolvers) {
    const ctx: ResolveContext = {
      submission,
      classification,
      base: attributes,
      policy,
      now,
      store,
      excludeId: row.id,
    };
    const extra = await resolver.resolve(ctx);
    attributes = { ...attributes, ...extra.attributes };
  }
  const metadata: Record<string, string> = {};
  const m = params['metadata'];
  if (m && typeof m === 'object' && !Array.isArray(m)) {
    for (const [k, v] of Object.entries(m)) if (typeof v === 'string') metadata[k] = v;
  }
  return { decision: decide(policy, { attributes, metadata }), attributes };
}

/**
 * Re-decides every write the store received in [since, until) under `policy` and counts what moves between
 * allow, review and block. Velocity windows are read from the store as it is: they reflect what the running
 * policy let through, not what the new one would have. Upstream facts (charge age, disputes) are not fetched
 * again, so rules on them see them missing.
 */
export async function simulate(
  store: Store,
  policy: Policy,
  resolvers: readonly AttributeResolver[],
  opts: { since: Date; until: Date; examples?: number; onProgress?: (done: number) => void },
): Promise<SimulationReport> {
  const since = opts.since.toISOString();
  const until = opts.until.toISOString();
  const moves = new Map<string, Move>();
  const before = empty();
  const after = empty();
  const agents = new Map<string, { id: string; name: string } | null>();
  let actions = 0;
  let changed = 0;
  let cursor: { created_at: string; id: string } | null = null;
  for (;;) {
    const page = await store.actions.writesCreatedBetween(since, until, cursor, 500);
    if (page.length === 0) break;
    for (const row of page) {
      let agent = row.agent_id ? agents.get(row.agent_id) : null;
      if (row.agent_id && agent === undefined) {
        agent = (await store.getAgent(row.agent_id)) ?? null;
        agents.set(row.agent_id, agent);
      }
      const stored = JSON.parse(row.decision) as StoredDecision;
      const { decision } = await redecide(store, policy, resolvers, row, agent ?? null);
      const from = stored.outcome;
      const to = decision.outcome;
      const usd = row.amount_usd ?? 0;
      before[from].count++;
      before[from].usd = round(before[from].usd + usd);
      after[to].count++;
      after[to].usd = round(after[to].usd + usd);
      const key = `${from}>${to}`;
      let move = moves.get(key);
      if (!move) {
        move = { from, to, count: 0, usd: 0, examples: [] };
        moves.set(key, move);
      }
      move.count++;
      move.usd = round(move.usd + usd);
      if (from !== to) {
        changed++;
        if (move.examples.length < (opts.examples ?? 3)) {
          move.examples.push({
            id: row.id,
            kind: row.kind,
            amount_usd: row.amount_usd,
            created_at: row.created_at,
            reason: decision.reason,
          });
        }
      }
      actions++;
    }
    opts.onProgress?.(actions);
    const last = page[page.length - 1]!;
    cursor = { created_at: last.created_at, id: last.id };
  }
  const order = (m: Move) => OUTCOMES.indexOf(m.from) * 3 + OUTCOMES.indexOf(m.to);
  return {
    policy_version: policy.version,
    since,
    until,
    actions,
    changed,
    moves: [...moves.values()].sort((a, b) => order(a) - order(b)),
    before,
    after,
  };
}
