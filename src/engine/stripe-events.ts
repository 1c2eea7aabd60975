// Stripe Events into Airlock: every event is stored once by its id (webhook and backfill share this path, so a
// redelivered or backfilled event is never counted twice), and a money movement Airlock did not make is recorded
// in the ledger as `stripe.outside` and alerted unless the policy expects it. docs/stripe-events.md.
import { type OutsideSource, type Policy, toUsd } from '../policy/index.ts';
import type { Store, StripeEventRow } from '../store/store.ts';
import {
  airlockKeyAction,
  type EventRequest,
  eventRequest,
  laterFailure,
  type MoneyFacts,
  moneyFacts,
  type StripeEvent,
} from '../stripe/events.ts';
import type { Engine } from './engine.ts';

/** Statuses of an action whose request went to Stripe (failed: an error answer, or a later failure). */
const SENT = new Set(['pending', 'completed', 'failed']);

export type EventOrigin = 'airlock' | OutsideSource | 'none';

/** Queues the alerts about an outside event in the transaction that stores it (src/notify/outside.ts). */
export interface OutsideAlerts {
  enqueue(tx: Store, event: StripeEventRow, policy: Policy): Promise<void>;
}

/** Told after an outside event is committed: the metric. */
export interface OutsideObserver {
  outside(e: { type: string; source: OutsideSource; expected: boolean }): void;
}

export interface IngestResult {
  id: string;
  /** False when the event was stored before (a redelivery, or the backfill meeting a webhook's event). */
  stored: boolean;
  /** True when a webhook delivery was signed no later than one already accepted: a replay, which changed nothing. */
  replayed: boolean;
  origin: EventOrigin;
  action: string | null;
  expected: boolean;
}

export class StripeEventIngest {
  alerts: OutsideAlerts | null = null;
  observer: OutsideObserver | null = null;

  constructor(readonly engine: Engine) {}

  /** `signedAt`: a webhook delivery's Stripe-Signature time, by which a replayed delivery is told from Stripe's redelivery. */
  async ingest(event: StripeEvent, via: 'webhook' | 'backfill', signedAt?: number): Promise<IngestResult> {
    const { store, clock } = this.engine;
    const policy = this.engine.policy;
    const money = moneyFacts(event);
    const request = eventRequest(event);
    const action = money ? await this.#airlocksAction(money, request) : null;
    const origin: EventOrigin = !money
      ? 'none'
      : action
        ? 'airlock'
        : request.id === null
          ? 'automation'
          : 'outside';
    const outside = origin === 'automation' || origin === 'outside';
    const expected = outside && isExpected(policy, event.type, origin);
    const at = clock.now().toISOString();
    const row: StripeEventRow = {
      id: event.id,
      type: event.type,
      created: event.created,
      livemode: event.livemode ? 1 : 0,
      object_id: money?.objectId ?? objectId(event),
      request_id: request.id,
      idempotency_key: request.idempotencyKey,
      origin,
      kind: money?.kind ?? null,
      amount: money?.amount ?? null,
      currency: money?.currency ?? null,
      amount_usd:
        money?.amount != null && money.currency
          ? toUsd(money.amount, money.currency, policy.currencyRates)
          : null,
      customer: money?.customer ?? null,
      // A dispute names its charge too: the risk score reads it without a look-up.
      charge: money?.charge ?? refOf(event.data?.object['charge']),
      account: typeof event['account'] === 'string' ? event['account'] : null,
      action_id: action,
      expected: expected ? 1 : 0,
      via,
      payload: JSON.stringify(event),
      received_at: at,
      signed_at: signedAt ?? null,
    };
    const landed = await store.transaction(async (tx): Promise<'stored' | 'again' | 'replayed'> => {
      if (!(await tx.stripeEvents.insert(row))) {
        if (signedAt === undefined || (await tx.stripeEvents.acceptRedelivery(row.id, signedAt)))
          return 'again';
        return 'replayed';
      }
      if (outside) {
        await tx.appendLedger({
          actionId: null,
          type: 'stripe.outside',
          from: null,
          to: null,
          actor: 'stripe',
          data: {
            event: row.id,
            type: row.type,
            object: row.object_id,
            amount: row.amount,
            currency: row.currency,
            source: origin,
            request: row.request_id,
            expected,
            via,
          },
          at,
        });
        if (!expected) await this.alerts?.enqueue(tx, row, policy);
      }
      return 'stored';
    });
    if (landed === 'replayed')
      return { id: row.id, stored: false, replayed: true, origin, action: null, expected };
    const stored = landed === 'stored';
    if (stored && outside) this.observer?.outside({ type: row.type, source: origin, expected });
    // On every delivery, not only the first: a crash after the event was stored must not lose the update.
    const failed = await this.#reconcileFailure(event, request);
    return { id: row.id, stored, replayed: false, origin, action: action ?? failed, expected };
  }

  /**
   * A refund or payout Airlock completed that Stripe now reports failed or cancelled moves its action to `failed`
   * (ledger event action.failed_upstream, and its callback). Only for the very object the action made: a tag
   * copied onto another object changes nothing.
   */
  async #reconcileFailure(event: StripeEvent, request: EventRequest): Promise<string | null> {
    const failure = laterFailure(event);
    if (!failure) return null;
    for (const id of new Set([failure.metadataAction, airlockKeyAction(request.idempotencyKey)])) {
      if (!id) continue;
      const action = await this.engine.store.getAction(id);
      if (action?.mode !== 'stripe' || answeredObject(action.response_body)?.id !== failure.objectId)
        continue;
      await this.engine.failedUpstream(id, {
        event: event.id,
        type: event.type,
        object: failure.objectId,
        status: failure.status,
        reason: failure.reason,
      });
      return id;
    }
    return null;
  }

  /**
   * The action an event records, when Airlock made it: the event's Idempotency-Key is the one the dispatcher sends
   * (`airlock-<action id>`) or its object carries `metadata[airlock_action]`, and that action exists here. A
   * completed action whose answer was another object of the same type is not this one (a key or tag copied from it).
   */
  async #airlocksAction(money: MoneyFacts, request: EventRequest): Promise<string | null> {
    for (const id of new Set([airlockKeyAction(request.idempotencyKey), money.metadataAction])) {
      if (!id) continue;
      const action = await this.engine.store.getAction(id);
      // Only an action Airlock sent can have made it: a held, rejected or blocked one's key, reused by a raw-key
      // caller, must not hide the movement.
      if (action?.mode !== 'stripe' || !SENT.has(action.status)) continue;
      const answered = answeredObject(action.response_body);
      if (action.status === 'failed' && answered?.id !== money.objectId) continue;
      if (
        answered &&
        money.objectId &&
        answered.object === objectType(money) &&
        answered.id !== money.objectId
      )
        continue;
      return action.id;
    }
    return null;
  }
}

function isExpected(policy: Policy, type: string, source: OutsideSource): boolean {
  return policy.outsideAirlock.expected.some(
    (e) => e.type === type && (e.source === null || e.source === source),
  );
}

function refOf(v: unknown): string | null {
  if (typeof v === 'string' && v) return v;
  const id = typeof v === 'object' && v !== null ? (v as { id?: unknown }).id : null;
  return typeof id === 'string' && id ? id : null;
}

function objectId(event: StripeEvent): string | null {
  const id = event.data?.object['id'];
  return typeof id === 'string' ? id : (event.related_object?.id ?? null);
}

function objectType(money: MoneyFacts): string {
  return money.objectId?.split('_')[0] ?? '';
}

/** The id and id prefix of the object Stripe answered an action with. */
function answeredObject(body: string | null): { id: string; object: string } | null {
  if (!body) return null;
  try {
    const id = (JSON.parse(body) as { id?: unknown }).id;
    return typeof id === 'string' ? { id, object: id.split('_')[0] ?? '' } : null;
  } catch {
    return null;
  }
}
