// Stripe's webhook signature as a class of attack, through the real server: any change to the signed body or to the
// Stripe-Signature header, a signature from another secret, none at all, or one older than the tolerance, gets a
// specific 400 and stores nothing; a replay (a delivery signed no later than one already accepted) gets a 400 and
// Stripe's own redelivery, signed anew, a 200, and neither changes anything.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIGNATURE_TOLERANCE_S } from '../../src/stripe/events.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { deliver, refundEvent, signatureFor, WEBHOOK_SECRET } from '../helpers/stripe-events.ts';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET });
});
afterAll(async () => {
  await stack?.close();
});

/** What a refused delivery must leave as it was: the events stored and the ledger's end. */
async function state() {
  return {
    events: await stack.airlock.store.stripeEvents.count(),
    head: await stack.airlock.store.ledgerHead(),
  };
}

const nowS = () => Math.floor(Date.now() / 1000);

/** A change to one character of `s` at `at`, always to a different character. */
function changeOne(s: string, at: number, to: string): string {
  const i = at % s.length;
  const c = s[i] === to ? (to === 'x' ? 'y' : 'x') : to;
  return s.slice(0, i) + c + s.slice(i + 1);
}

describe('Stripe webhook deliveries', () => {
  it("stores a correctly signed event; its exact replay gets a 400, Stripe's re-signed redelivery a 200, and neither changes anything", async () => {
    const body = JSON.stringify(refundEvent());
    const sig = signatureFor(body, { timestamp: nowS() - 20 });
    const first = await deliver(stack.airlock.url, body, sig);
    expect(first).toMatchObject({ status: 200, body: { received: true, duplicate: false } });
    const before = await state();
    expect(await deliver(stack.airlock.url, body, sig)).toMatchObject({
      status: 400,
      body: { error: { code: 'stripe_event_replayed' } },
    });
    expect(
      await deliver(stack.airlock.url, body, signatureFor(body, { timestamp: nowS() - 10 })),
    ).toMatchObject({
      status: 200,
      body: { duplicate: true },
    });
    expect(await state()).toEqual(before);
  });

  it('refuses a delivery signed no later than one already accepted for the event, and accepts one signed after (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: -100, max: 100 }), async (offset) => {
        const body = JSON.stringify(refundEvent());
        const t0 = nowS() - 150;
        expect((await deliver(stack.airlock.url, body, signatureFor(body, { timestamp: t0 }))).status).toBe(
          200,
        );
        const before = await state();
        const again = await deliver(stack.airlock.url, body, signatureFor(body, { timestamp: t0 + offset }));
        if (offset <= 0) {
          expect(again).toMatchObject({ status: 400, body: { error: { code: 'stripe_event_replayed' } } });
        } else {
          expect(again).toMatchObject({ status: 200, body: { duplicate: true } });
        }
        expect(await state()).toEqual(before);
      }),
      { numRuns: 40 },
    );
  });

  it('refuses any change to the signed body, and stores nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.constantFrom('0', '9', ' ', '"', '}', 'a'),
        fc.constantFrom('change', 'append', 'truncate'),
        async (at, to, how) => {
          const body = JSON.stringify(refundEvent({ amount: 100 + (at % 1000) }));
          const sig = signatureFor(body);
          const sent =
            how === 'change'
              ? changeOne(body, at, to)
              : how === 'append'
                ? `${body}${to}`
                : body.slice(0, body.length - 1 - (at % 10));
          fc.pre(sent !== body);
          const before = await state();
          const res = await deliver(stack.airlock.url, sent, sig);
          expect(res.status).toBe(400);
          expect(res.body.error.code).toBe('stripe_signature_invalid');
          expect(await state()).toEqual(before);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses any change to the Stripe-Signature header, another secret, or none, and stores nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.constantFrom('0', 'f', 'a', '='),
        fc.constantFrom('flip', 'time', 'secret', 'no_v1', 'empty', 'absent'),
        async (at, to, how) => {
          const body = JSON.stringify(refundEvent());
          const good = signatureFor(body);
          const [t, v1] = good.split(',') as [string, string];
          let header: string | null;
          switch (how) {
            case 'flip':
              header = `${t},v1=${changeOne(v1.slice(3), at, to)}`;
              break;
            case 'time':
              // A timestamp inside the window that the signature does not cover.
              header = `t=${nowS() - 1 - (at % 200)},${v1}`;
              break;
            case 'secret':
              header = signatureFor(body, { secret: `whsec_other_${at}` });
              break;
            case 'no_v1':
              header = `${t},v0=${v1.slice(3)}`;
              break;
            case 'empty':
              header = '';
              break;
            default:
              header = null;
          }
          fc.pre(header !== good);
          const before = await state();
          const res = await deliver(stack.airlock.url, body, header);
          expect(res.status).toBe(400);
          expect(res.body.error.code).toBe(
            how === 'absent' || how === 'empty' ? 'stripe_signature_missing' : 'stripe_signature_invalid',
          );
          expect(await state()).toEqual(before);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses a correctly signed event older (or further ahead) than the tolerance, and stores nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: SIGNATURE_TOLERANCE_S + 5, max: 90 * 86400 }),
        fc.boolean(),
        async (age, past) => {
          const body = JSON.stringify(refundEvent());
          const before = await state();
          const timestamp = past ? nowS() - age : nowS() + age;
          const res = await deliver(stack.airlock.url, body, signatureFor(body, { timestamp }));
          expect(res).toMatchObject({ status: 400, body: { error: { code: 'stripe_signature_stale' } } });
          expect(await state()).toEqual(before);
        },
      ),
      { numRuns: 15 },
    );
  });

  it('refuses a signed body that is not a Stripe Event with 400, never a crash', async () => {
    for (const body of [
      'not json',
      '[]',
      '{}',
      '{"id":"evt_1","type":"refund.created"}',
      '{"id":"x","type":"a","created":1}',
    ]) {
      const before = await state();
      const res = await deliver(stack.airlock.url, body);
      expect(res).toMatchObject({ status: 400, body: { error: { code: 'stripe_event_malformed' } } });
      expect(await state()).toEqual(before);
    }
  });

  it('says the endpoint is not configured when there is no secret', async () => {
    const bare = await startStack();
    try {
      const body = JSON.stringify(refundEvent());
      const res = await deliver(bare.airlock.url, body);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('stripe_webhooks_not_configured');
      expect(res.body.error.message).toContain('STRIPE_WEBHOOK_SECRET');
      expect(await bare.airlock.store.stripeEvents.count()).toBe(0);
    } finally {
      await bare.close();
    }
  });
});
