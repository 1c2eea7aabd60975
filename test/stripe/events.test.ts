// Reading Stripe Events (src/stripe/events.ts): what a money event moved, from its object alone, and whose
// Idempotency-Key is Airlock's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  airlockKeyAction,
  EventRefused,
  eventRequest,
  laterFailure,
  moneyFacts,
  parseStripeEvent,
} from '../../src/stripe/events.ts';

const event = (type: string, object: Record<string, unknown> | null, extra: Record<string, unknown> = {}) =>
  parseStripeEvent({
    id: 'evt_1',
    object: 'event',
    created: 1,
    type,
    ...(object
      ? { data: { object, ...(extra['previous'] ? { previous_attributes: extra['previous'] } : {}) } }
      : {}),
    request: { id: 'req_1', idempotency_key: null },
    ...extra,
  });

describe('money facts', () => {
  it('reads each movement with its amount, and none for events that move no money', () => {
    expect(
      moneyFacts(event('refund.created', { id: 're_1', amount: 500, currency: 'EUR', charge: 'ch_1' })),
    ).toMatchObject({
      kind: 'refund.create',
      objectId: 're_1',
      amount: 500,
      currency: 'eur',
      charge: 'ch_1',
    });
    expect(
      moneyFacts(
        event('charge.captured', {
          id: 'ch_2',
          amount: 900,
          amount_captured: 700,
          currency: 'usd',
          customer: { id: 'cus_1' },
        }),
      ),
    ).toMatchObject({ kind: 'charge.capture', amount: 700, charge: 'ch_2', customer: 'cus_1' });
    expect(moneyFacts(event('customer.deleted', { id: 'cus_9' }))).toMatchObject({
      amount: null,
      customer: 'cus_9',
    });
    expect(moneyFacts(event('charge.succeeded', { id: 'ch_3', amount: 1 }))).toBeNull();
  });

  it('takes a reversal or fee refund as the change in its running total', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1e9 }), fc.nat({ max: 1e9 }), (before, added) => {
        const e = event(
          'transfer.reversed',
          { id: 'tr_1', amount: 2e9, amount_reversed: before + added, currency: 'usd' },
          {
            previous: { amount_reversed: before },
          },
        );
        expect(moneyFacts(e)?.amount).toBe(added);
      }),
    );
  });

  it('reads a v2 thin event by its related object, and its request from its reason', () => {
    const e = parseStripeEvent({
      id: 'evt_v2',
      object: 'v2.core.event',
      created: 1,
      type: 'v2.money_management.outbound_payment.created',
      related_object: { id: 'obp_1', type: 'v2.money_management.outbound_payment' },
      reason: { request: { id: 'req_v2', idempotency_key: 'airlock-act_ABC' } },
    });
    expect(moneyFacts(e)).toMatchObject({
      kind: 'v2.outbound_payment.create',
      objectId: 'obp_1',
      amount: null,
    });
    expect(eventRequest(e)).toEqual({ id: 'req_v2', idempotencyKey: 'airlock-act_ABC' });
  });
});

describe('requests and keys', () => {
  it("reads a request as Stripe's old API versions send it, a bare id", () => {
    expect(eventRequest(event('refund.created', { id: 're_1' }, { request: 'req_old' }))).toEqual({
      id: 'req_old',
      idempotencyKey: null,
    });
    expect(eventRequest(event('refund.created', { id: 're_1' }, { request: null }))).toEqual({
      id: null,
      idempotencyKey: null,
    });
  });

  it("takes exactly the dispatcher's key for Airlock's, nothing near it", () => {
    expect(airlockKeyAction('airlock-act_0123456789ABCDEFghij')).toBe('act_0123456789ABCDEFghij');
    fc.assert(
      fc.property(fc.string(), (junk) => {
        const id = airlockKeyAction(junk);
        if (id !== null) expect(`airlock-${id}`).toBe(junk);
      }),
    );
    for (const near of [
      'airlock-act_',
      'Airlock-act_x',
      'airlock-act_x ',
      ' airlock-act_x',
      'airlock-act_x/y',
      'xairlock-act_x',
    ])
      expect(airlockKeyAction(near)).toBeNull();
  });

  it('refuses what is not an Event with a specific error', () => {
    for (const v of [
      null,
      [],
      {},
      { id: 'evt_1' },
      { id: 'x', type: 't', created: 1 },
      { id: 'evt_1', type: '', created: 1 },
    ])
      expect(() => parseStripeEvent(v)).toThrow(EventRefused);
  });

  it('reads a later failure only for a failed or canceled refund or payout', () => {
    expect(
      laterFailure(
        event('refund.failed', { id: 're_1', status: 'failed', failure_reason: 'lost_or_stolen_card' }),
      ),
    ).toEqual({ objectId: 're_1', status: 'failed', reason: 'lost_or_stolen_card', metadataAction: null });
    expect(laterFailure(event('refund.updated', { id: 're_1', status: 'succeeded' }))).toBeNull();
    expect(
      laterFailure(
        event('payout.failed', { id: 'po_1', status: 'failed', metadata: { airlock_action: 'act_1' } }),
      ),
    ).toMatchObject({ objectId: 'po_1', metadataAction: 'act_1' });
    // The wrong kind of object for the event is not a failure of anything Airlock made.
    expect(laterFailure(event('refund.failed', { id: 'po_1', status: 'failed' }))).toBeNull();
  });
});
