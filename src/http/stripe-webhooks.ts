import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { StripeEventIngest } from '../engine/stripe-events.ts';
import { EventRefused, signatureTime, verifyStripeEvent } from '../stripe/events.ts';

export interface StripeWebhookOptions {
  ingest: StripeEventIngest;
  /** The endpoint's signing secret (`whsec_…`); without it the endpoint refuses everything, saying why. */
  secret: string | null;
  path: string;
  log: Logger;
  bodyLimitBytes: number;
}

/**
 * Stripe's webhook deliveries. The signature is checked over the body's exact bytes with the official client's
 * verifier (five minutes' tolerance) before anything is read, and a refused delivery stores nothing. A redelivery
 * of an event already stored (Stripe signs each one anew) answers 200 and changes nothing, so Stripe stops retrying
 * it; a delivery signed no later than one already accepted is a replay of a captured request and gets a 400.
 */
export function registerStripeWebhooks(app: FastifyInstance, opts: StripeWebhookOptions): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'string', bodyLimit: opts.bodyLimitBytes },
      (_req, body, done) => done(null, body),
    );
    scope.post(opts.path, async (request, reply) => {
      if (!opts.secret)
        return reply
          .code(503)
          .send(
            error(
              'stripe_webhooks_not_configured',
              'Stripe webhooks are not configured here: set STRIPE_WEBHOOK_SECRET (stripe_webhook_secret) to the endpoint secret, see docs/stripe-events.md',
            ),
          );
      const raw = typeof request.body === 'string' ? request.body : '';
      const header = request.headers['stripe-signature'];
      let event: ReturnType<typeof verifyStripeEvent>;
      try {
        event = verifyStripeEvent(
          raw,
          typeof header === 'string' ? header : undefined,
          opts.secret,
          opts.ingest.engine.clock.now().getTime(),
        );
      } catch (err) {
        if (!(err instanceof EventRefused)) throw err;
        opts.log.warn({ code: err.code, request_id: request.id }, `refused a Stripe webhook: ${err.message}`);
        return reply.code(400).send(error(err.code, err.message));
      }
      const result = await opts.ingest.ingest(event, 'webhook', signatureTime(header as string) ?? undefined);
      if (result.replayed) {
        opts.log.warn({ event: result.id, request_id: request.id }, 'refused a replayed Stripe webhook');
        return reply
          .code(400)
          .send(
            error(
              'stripe_event_replayed',
              `This delivery of ${result.id} was signed no later than one already received: a replay, so nothing was changed. Stripe signs each redelivery anew.`,
            ),
          );
      }
      return reply.code(200).send({ received: true, id: result.id, duplicate: !result.stored });
    });
  });
}

function error(code: string, message: string) {
  return { error: { type: 'invalid_request_error', code, message } };
}
