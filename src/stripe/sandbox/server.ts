import { createHash } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { actingAccount } from './account.ts';
import {
  failPayout,
  failRefund,
  PAYOUT_FAILURES,
  payPayout,
  REFUND_FAILURE_REASONS,
  refundsFailLater,
} from './automation.ts';
import { bodyText, checkBodySize, parseForm, parseJson } from './body.ts';
import { resourceMissing, StripeApiError, unrecognizedUrl } from './errors.ts';
import { deriveEvents, type EventRequest, renderEvent } from './events.ts';
import { newId, newRequestId } from './ids.ts';
import { applyExpand, type Params } from './params.ts';
import { createPayout } from './resources/money.ts';
import { handleV2 } from './resources/v2.ts';
import type { Handler } from './router.ts';
import { buildRouter } from './routes.ts';
import { type Change, SandboxStore, type StoredEvent, type StripeObject } from './store.ts';
import {
  type DeliveryAttempt,
  type DeliveryOptions,
  endpointWants,
  WebhookDelivery,
  type WebhookEndpoint,
} from './webhooks.ts';

export interface SandboxFaults {
  /** The next N matching requests answer `failStatus` with a Stripe api_error body, without processing. */
  failNext?: number;
  failStatus?: number;
  /** Seconds to put in a Retry-After header on fault answers (Stripe sends it with some 429s). */
  retryAfter?: number;
  /** The next N matching requests: the socket is destroyed without any answer, without processing. */
  dropNext?: number;
  /** Every matching request: socket destroyed, no processing, until cleared. */
  down?: boolean;
  /** Wait before processing each matching request. */
  delayMs?: number;
  /** Process (and store the idempotent result), then wait this long before answering. */
  holdResponseMs?: number;
  /** Faults apply only to requests whose path starts with this. */
  pathPrefix?: string;
}

export interface SandboxRequestLog {
  method: string;
  path: string;
  /** The query string exactly as received, without its `?`; '' when there was none. */
  rawQuery: string;
  /** The body exactly as received (its bytes read as UTF-8); '' when there was none. */
  rawBody: string;
  /** The Content-Type header as received, or null. */
  contentType: string | null;
  /** The parsed query and body (the query alone for GET); {} when the request was refused before parsing. */
  params: Record<string, unknown>;
  /** The request headers as received (an empty header is ''), or null when absent. */
  idempotencyKey: string | null;
  stripeAccount: string | null;
  stripeContext: string | null;
  stripeVersion: string | null;
  /** The account the request acted on (Stripe-Context's last id, else Stripe-Account), or null for the platform. */
  account: string | null;
  /** Why the sandbox refused the request before processing it (a limit, an unreadable body, an account), or null. */
  refused: string | null;
  faulted: boolean;
  at: number;
}

/** A request body as the bytes that arrived; the Stripe handler parses it under the sandbox's limits. */
interface RawBody {
  bytes: Buffer;
  json: boolean;
}

function isRawBody(v: unknown): v is RawBody {
  return typeof v === 'object' && v !== null && Buffer.isBuffer((v as RawBody).bytes);
}

export interface Sandbox {
  url: string;
  port: number;
  setFaults(f: SandboxFaults): void;
  clearFaults(): void;
  /** Every Stripe API request received, in order. */
  requests(): SandboxRequestLog[];
  /**
   * All objects of a type (`refund`, `charge`, …), oldest first: of every account, or only of `account` (null: the
   * platform's own).
   */
  list(objectType: string, opts?: { account?: string | null }): Record<string, unknown>[];
  onRequest(cb: (r: SandboxRequestLog) => void): () => void;
  /** Clears objects, idempotency records, the request log and faults. */
  reset(): void;
  /** Test-only hook for seeding history: sets timestamp fields (`created`, `canceled_at`) of a stored object. */
  backdate(id: string, times: Record<string, number>): void;
  /** Every event of every account, oldest first. */
  events(): Record<string, unknown>[];
  /**
   * Delivers events to `url` signed with `secret`, for this process only (Airlock registers itself at each start).
   * `enabledEvents` defaults to every type; `accounts` to 'all' (the platform's events and connected accounts').
   */
  addWebhookEndpoint(endpoint: {
    url: string;
    secret: string;
    enabledEvents?: string[];
    accounts?: 'platform' | 'connect' | 'all';
  }): { id: string };
  removeWebhookEndpoint(id: string): void;
  /** The endpoints added in process, with their secrets (the caller's own). */
  webhookEndpoints(): { id: string; url: string; secret: string; enabledEvents: string[] }[];
  /** Every webhook delivery attempt, in order. */
  deliveries(): DeliveryAttempt[];
  /** Stripe's automation, on demand: fails a refund that succeeded (refund.updated, refund.failed, …). */
  failRefund(id: string, reason?: string): Record<string, unknown>;
  /** Pays a pending payout (payout.paid). */
  payPayout(id: string): Record<string, unknown>;
  /** Fails a pending or paid payout (payout.failed), with one of Stripe's failure codes. */
  failPayout(id: string, failureCode?: string): Record<string, unknown>;
  /** Makes a payout as Stripe's payout schedule does: `automatic: true`, its payout.created with `request.id: null`. */
  automaticPayout(p: { amount: number; currency?: string; account?: string | null }): Record<string, unknown>;
  /** Runs scheduled automation (the later failure of refunds on `tok_refundFail` charges) now. */
  runAutomation(): number;
  /**
   * Test-only: processes the same request `count` times in one transaction, each with a request id of its own,
   * as if sent one by one without an Idempotency-Key. Answers how many events were made.
   */
  bulk(req: BulkRequest): { count: number; events: number; last: unknown };
  close(): Promise<void>;
}

export interface BulkRequest {
  path: string;
  params?: Record<string, unknown>;
  count: number;
  method?: 'POST' | 'DELETE';
  account?: string | null;
}

export interface SandboxOptions {
  /** SQLite file; default ':memory:'. */
  dbPath?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Webhook retry backoff and timeout. */
  webhooks?: DeliveryOptions;
  /** How long after a refund on a `tok_refundFail` charge it fails; default 2000 ms. */
  refundFailureDelayMs?: number;
}

const faultsSchema = z.object({
  failNext: z.number().int().min(0).optional(),
  failStatus: z.number().int().min(400).max(599).optional(),
  retryAfter: z.number().int().min(0).optional(),
  dropNext: z.number().int().min(0).optional(),
  down: z.boolean().optional(),
  delayMs: z.number().min(0).optional(),
  holdResponseMs: z.number().min(0).optional(),
  pathPrefix: z.string().optional(),
});

const bulkSchema = z.object({
  path: z.string().startsWith('/v1/'),
  params: z.record(z.string(), z.unknown()).optional(),
  count: z.number().int().min(1).max(100_000),
  method: z.enum(['POST', 'DELETE']).optional(),
  account: z.string().nullable().optional(),
});

const endpointSchema = z.object({
  url: z.url(),
  secret: z.string().min(1),
  enabledEvents: z.array(z.string().min(1)).min(1).optional(),
  accounts: z.enum(['platform', 'connect', 'all']).optional(),
});

const automaticPayoutSchema = z.object({
  amount: z.number().int().min(1),
  currency: z
    .string()
    .regex(/^[a-z]{3}$/)
    .optional(),
  account: z.string().nullable().optional(),
});

const AUTOMATION: EventRequest = { id: null, idempotency_key: null };

// Fastify's own cap, far above the sandbox's body limit, so that a body over that limit is still read and logged.
const HARD_BODY_LIMIT = 16 * 1024 * 1024;
const KEY_PATTERN = /^(sk|rk)_(test|live)_\S+$/;
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const NO_KEY_MESSAGE =
  "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";

type Outcome = { status: number; body: string; stored: boolean };

/** What a transaction made: its stored events with the endpoints each goes to, and its raw writes. */
interface Made {
  events: { stored: StoredEvent; targets: WebhookEndpoint[]; object: StripeObject }[];
  changes: Change[];
}

/** A control route's JSON body, or {} when there is none or it is not an object. */
function jsonBody(body: unknown): Record<string, unknown> {
  if (!isRawBody(body) || body.bytes.length === 0) return {};
  try {
    const parsed = JSON.parse(body.bytes.toString('utf8')) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

function apiKeyOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(' ');
  const scheme = space < 0 ? '' : header.slice(0, space).toLowerCase();
  const value = space < 0 ? header : header.slice(space + 1).trim();
  if (scheme === 'basic') return Buffer.from(value, 'base64').toString('utf8').split(':')[0];
  return value;
}

/** Shows at most a known prefix and the last four characters, as Stripe does. */
export function redactKey(key: string): string {
  const prefix = /^[a-z]{2,3}_(test|live)_/.exec(key)?.[0] ?? '';
  const tail = key.length - prefix.length >= 16 ? key.slice(-4) : '';
  return prefix + '*'.repeat(Math.max(4, key.length - prefix.length - tail.length)) + tail;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
      );
    }
    return v;
  });
}

function errorJson(err: StripeApiError): string {
  return JSON.stringify(err.body());
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const store = new SandboxStore(opts.dbPath ?? ':memory:');
  const router = buildRouter();
  const log: SandboxRequestLog[] = [];
  const listeners = new Set<(r: SandboxRequestLog) => void>();
  const inFlight = new Set<string>();
  let faults: SandboxFaults = {};
  let closed = false;
  // Deliveries do not outlive the process: nothing stored as pending is still on its way.
  store.clearPendingWebhooks();
  const delivery = new WebhookDelivery(opts.webhooks ?? {}, (id, pending) =>
    store.setPendingWebhooks(id, pending),
  );
  const ownEndpoints = new Map<string, WebhookEndpoint>();
  const scheduled = new Map<string, { timer: NodeJS.Timeout; run: () => void }>();
  const refundFailureDelayMs = opts.refundFailureDelayMs ?? 2000;

  const app = Fastify({
    logger: false,
    bodyLimit: HARD_BODY_LIMIT,
    // Queries are parsed from the raw URL by the Stripe handler, under the sandbox's limits.
    routerOptions: { querystringParser: () => ({}) },
  });

  // Bodies stay bytes until the Stripe handler has logged them; it parses them under the sandbox's limits.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, { bytes: body as Buffer, json: true } satisfies RawBody);
  });
  // Stripe's v1 bodies are form-encoded with bracket notation; anything else is read the same way.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, { bytes: body as Buffer, json: false } satisfies RawBody);
  });

  function send(reply: FastifyReply, status: number, json: string): FastifyReply {
    return reply.code(status).header('content-type', 'application/json').send(json);
  }

  app.setErrorHandler((error, _request, reply) => {
    reply.header('request-id', newRequestId());
    if (error instanceof StripeApiError) return send(reply, error.status, errorJson(error));
    const { statusCode, message } = error as { statusCode?: number; message?: string };
    const status = statusCode ?? 500;
    const type = status < 500 ? 'invalid_request_error' : 'api_error';
    return send(reply, status, JSON.stringify({ error: { type, message: message ?? 'Bad request.' } }));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.header('request-id', newRequestId());
    return send(reply, 404, errorJson(unrecognizedUrl(request.method, request.url.split('?')[0]!)));
  });

  app.post('/__sandbox/faults', async (request, reply) => {
    let body: unknown;
    try {
      body = isRawBody(request.body) ? JSON.parse(request.body.bytes.toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    const parsed = faultsSchema.safeParse(body);
    if (!parsed.success) {
      return send(
        reply,
        400,
        JSON.stringify({ error: { type: 'invalid_request_error', message: parsed.error.message } }),
      );
    }
    faults = parsed.data;
    return send(reply, 200, JSON.stringify(faults));
  });
  app.delete('/__sandbox/faults', async (_request, reply) => {
    faults = {};
    return send(reply, 200, '{}');
  });
  app.get('/__sandbox/requests', async (_request, reply) => send(reply, 200, JSON.stringify(log)));
  app.get<{ Params: { type: string } }>('/__sandbox/objects/:type', async (request, reply) => {
    // `?account=acct_…` narrows to one account, `?account=` to the platform's own objects.
    const account = new URL(request.url, 'http://sandbox').searchParams.get('account');
    return send(reply, 200, JSON.stringify(store.all(request.params.type, account ?? undefined)));
  });
  app.get('/__sandbox/events', async (_request, reply) =>
    send(reply, 200, JSON.stringify(store.allEvents())),
  );
  app.get('/__sandbox/deliveries', async (_request, reply) =>
    send(reply, 200, JSON.stringify(delivery.attempts())),
  );
  app.post<{ Params: { id: string } }>('/__sandbox/refunds/:id/fail', async (request, reply) => {
    const body = jsonBody(request.body);
    const reason =
      typeof body['failure_reason'] === 'string' ? body['failure_reason'] : 'expired_or_canceled_card';
    if (!(REFUND_FAILURE_REASONS as readonly string[]).includes(reason)) {
      return controlError(
        reply,
        new StripeApiError(
          400,
          'invalid_request_error',
          `Invalid failure_reason: must be one of ${REFUND_FAILURE_REASONS.join(', ')}`,
          { param: 'failure_reason' },
        ),
      );
    }
    try {
      return send(
        reply,
        200,
        JSON.stringify(automate(request.params.id, 'refund', (s, r) => failRefund(s, r, reason))),
      );
    } catch (err) {
      return controlError(reply, err);
    }
  });
  app.post<{ Params: { id: string } }>('/__sandbox/payouts/:id/pay', async (request, reply) => {
    try {
      return send(reply, 200, JSON.stringify(automate(request.params.id, 'payout', payPayout)));
    } catch (err) {
      return controlError(reply, err);
    }
  });
  app.post<{ Params: { id: string } }>('/__sandbox/payouts/:id/fail', async (request, reply) => {
    const body = jsonBody(request.body);
    const code = typeof body['failure_code'] === 'string' ? body['failure_code'] : 'account_closed';
    if (!(code in PAYOUT_FAILURES)) {
      return controlError(
        reply,
        new StripeApiError(
          400,
          'invalid_request_error',
          `Invalid failure_code: must be one of ${Object.keys(PAYOUT_FAILURES).join(', ')}`,
          { param: 'failure_code' },
        ),
      );
    }
    try {
      return send(
        reply,
        200,
        JSON.stringify(automate(request.params.id, 'payout', (s, p) => failPayout(s, p, code))),
      );
    } catch (err) {
      return controlError(reply, err);
    }
  });
  app.post('/__sandbox/payouts/automatic', async (request, reply) => {
    const parsed = automaticPayoutSchema.safeParse(jsonBody(request.body));
    if (!parsed.success) {
      return send(
        reply,
        400,
        JSON.stringify({ error: { type: 'invalid_request_error', message: parsed.error.message } }),
      );
    }
    return send(reply, 200, JSON.stringify(automaticPayout(parsed.data)));
  });
  app.post('/__sandbox/automation/run', async (_request, reply) =>
    send(reply, 200, JSON.stringify({ ran: runAutomation() })),
  );
  app.post('/__sandbox/bulk', async (request, reply) => {
    const parsed = bulkSchema.safeParse(jsonBody(request.body));
    if (!parsed.success) {
      return send(
        reply,
        400,
        JSON.stringify({ error: { type: 'invalid_request_error', message: parsed.error.message } }),
      );
    }
    try {
      return send(reply, 200, JSON.stringify(bulk(parsed.data)));
    } catch (err) {
      return controlError(reply, err);
    }
  });
  app.post('/__sandbox/reset', async (_request, reply) => {
    reset();
    return send(reply, 200, '{}');
  });

  app.route({ method: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], url: '/*', handler: handleStripe });

  async function handleStripe(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> {
    const method = request.method;
    const mark = request.url.indexOf('?');
    const path = mark < 0 ? request.url : request.url.slice(0, mark);
    const rawQuery = mark < 0 ? '' : request.url.slice(mark + 1);
    const raw = isRawBody(request.body) ? request.body : null;
    const stripeAccountHeader = rawHeader(request, 'stripe-account');
    const stripeContextHeader = rawHeader(request, 'stripe-context');
    const idempotencyHeader = rawHeader(request, 'idempotency-key');
    // An empty header is no header, as Stripe's clients never send one.
    const idempotencyKey = idempotencyHeader || null;
    const apiKey = apiKeyOf(request.headers.authorization);

    // Both are read before anything else so that the log holds them; a refusal is answered after authentication.
    let refusal: StripeApiError | null = null;
    let account: string | null = null;
    let params: Params = {};
    try {
      account = actingAccount(
        stripeAccountHeader || null,
        stripeContextHeader || null,
        redactKey(apiKey ?? ''),
      );
    } catch (err) {
      refusal = refusalOf(err);
    }
    try {
      params = requestParams(method, rawQuery, raw);
    } catch (err) {
      refusal ??= refusalOf(err);
    }
    const f = faults;
    const matches = f.pathPrefix === undefined || path.startsWith(f.pathPrefix);

    let fault: 'drop' | 'fail' | null = null;
    if (matches) {
      if (f.down) fault = 'drop';
      else if (f.dropNext && f.dropNext > 0) {
        f.dropNext--;
        fault = 'drop';
      } else if (f.failNext && f.failNext > 0) {
        f.failNext--;
        fault = 'fail';
      }
    }
    const entry: SandboxRequestLog = {
      method,
      path,
      rawQuery,
      rawBody: raw ? raw.bytes.toString('utf8') : '',
      contentType: rawHeader(request, 'content-type'),
      params,
      idempotencyKey: idempotencyHeader,
      stripeAccount: stripeAccountHeader,
      stripeContext: stripeContextHeader,
      stripeVersion: rawHeader(request, 'stripe-version'),
      account,
      refused: refusal?.message ?? null,
      faulted: fault !== null,
      at: Date.now(),
    };
    log.push(entry);
    for (const cb of listeners) cb(entry);

    if (fault === 'drop') {
      reply.hijack();
      request.raw.socket.destroy();
      return undefined;
    }
    const requestId = newRequestId();
    reply.header('request-id', requestId);
    if (idempotencyKey) reply.header('idempotency-key', idempotencyKey);
    if (fault === 'fail') {
      if (f.retryAfter !== undefined) reply.header('retry-after', String(f.retryAfter));
      const err = new StripeApiError(
        f.failStatus ?? 500,
        'api_error',
        'An unknown error occurred while processing your request (sandbox fault).',
      );
      return send(reply, err.status, errorJson(err));
    }

    if (!apiKey || !KEY_PATTERN.test(apiKey)) {
      const message = apiKey ? `Invalid API Key provided: ${redactKey(apiKey)}` : NO_KEY_MESSAGE;
      reply.header('www-authenticate', 'Basic realm="Stripe"');
      return send(reply, 401, JSON.stringify({ error: { type: 'invalid_request_error', message } }));
    }
    // Refused whole: nothing is processed and no idempotency record is kept, so a corrected retry is processed.
    if (refusal) return send(reply, refusal.status, errorJson(refusal));

    const isV2 = path.startsWith('/v2/');
    let handler: Handler | undefined;
    let args: string[] = [];
    if (isV2) handler = handleV2;
    else if (path.startsWith('/v1/')) {
      const m = router.match(method, path);
      if (m) ({ handler, args } = m);
    }
    if (!handler) return send(reply, 404, errorJson(unrecognizedUrl(method, path)));

    const idempotent = idempotencyKey !== null && (method === 'POST' || (isV2 && method === 'DELETE'));
    let scope: string | null = null;
    let canonicalParams = '';
    if (idempotent) {
      if (idempotencyKey.length > 255) {
        const err = new StripeApiError(
          400,
          'invalid_request_error',
          `Invalid idempotency key: it can be at most 255 characters long.`,
        );
        return send(reply, 400, errorJson(err));
      }
      // Stripe keeps idempotency records per account: the same key under two accounts is two requests.
      scope = `${createHash('sha256').update(apiKey).digest('base64url')}\n${account ?? ''}\n${idempotencyKey}`;
      canonicalParams = canonical(params);
      if (inFlight.has(scope)) {
        const err = new StripeApiError(
          409,
          'idempotency_error',
          `There is currently another in-progress request using this Idempotency-Key (that probably means you submitted twice, and the other request is still going through): '${idempotencyKey}'. Please try again later.`,
        );
        return send(reply, 409, errorJson(err));
      }
      const previous = store.getIdempotency(scope);
      if (previous && Date.now() - previous.createdMs < IDEMPOTENCY_TTL_MS) {
        if (previous.method !== method || previous.path !== path) {
          const err = new StripeApiError(
            400,
            'idempotency_error',
            `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${previous.method} ${previous.path}' vs '${method} ${path}'). Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
          );
          return send(reply, 400, errorJson(err));
        }
        if (previous.params !== canonicalParams) {
          const err = new StripeApiError(
            400,
            'idempotency_error',
            `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
          );
          return send(reply, 400, errorJson(err));
        }
        reply.header('idempotent-replayed', 'true');
        return send(reply, previous.status, previous.body);
      }
      inFlight.add(scope);
    }

    let outcome: Outcome;
    try {
      if (matches && f.delayMs) await sleep(f.delayMs);
      if (closed) {
        reply.hijack();
        request.raw.socket.destroy();
        return undefined;
      }
      outcome = process(
        handler,
        { store: store.forAccount(account), params, args, method, path },
        scope,
        canonicalParams,
        { id: requestId, idempotency_key: idempotencyKey },
      );
    } finally {
      if (scope) inFlight.delete(scope);
    }
    if (matches && f.holdResponseMs) await sleep(f.holdResponseMs);
    return send(reply, outcome.status, outcome.body);
  }

  function process(
    handler: Handler,
    ctx: Parameters<Handler>[0],
    scope: string | null,
    canonicalParams: string,
    request: EventRequest,
  ): Outcome {
    let made: Made = { events: [], changes: [] };
    try {
      // A StripeApiError keeps the writes made before it (a declined charge is still recorded); other errors roll back.
      const outcome = store.transaction(() => {
        let outcome: Outcome;
        const changes: Change[] = [];
        try {
          const result = store.journaled(changes, () => applyExpand(ctx.store, handler(ctx), ctx.params));
          outcome = { status: 200, body: JSON.stringify(result), stored: true };
        } catch (err) {
          if (!(err instanceof StripeApiError)) throw err;
          outcome = { status: err.status, body: errorJson(err), stored: err.stored };
        }
        made = record(changes, request);
        if (scope && outcome.stored) {
          store.putIdempotency(scope, {
            method: ctx.method,
            path: ctx.path,
            params: canonicalParams,
            status: outcome.status,
            body: outcome.body,
            createdMs: Date.now(),
          });
        }
        return outcome;
      });
      dispatch(made);
      return outcome;
    } catch (err) {
      const message = `Sandbox internal error: ${err instanceof Error ? err.message : String(err)}`;
      return { status: 500, body: JSON.stringify({ error: { type: 'api_error', message } }), stored: false };
    }
  }

  // Read from the store once and again after any endpoint changes, not on every request.
  let endpointCache: WebhookEndpoint[] | null = null;

  /** The endpoints that receive events now: those created through the API and those added in process. */
  function liveEndpoints(): WebhookEndpoint[] {
    if (endpointCache) return endpointCache;
    const stored = store
      .allWithAccount('webhook_endpoint')
      .filter(({ object: e }) => !e['deleted'] && e['status'] === 'enabled')
      .map(
        ({ account, object: e }): WebhookEndpoint => ({
          id: e.id,
          url: e['url'] as string,
          secret: e['secret'] as string,
          enabledEvents: e['enabled_events'] as string[],
          scope: e['connect'] ? 'connect' : 'self',
          account,
        }),
      );
    endpointCache = [...stored, ...ownEndpoints.values()];
    return endpointCache;
  }

  /** Stores the events a transaction's writes make; called inside that transaction. */
  function record(changes: Change[], request: EventRequest): Made {
    // An endpoint made or changed in this very transaction counts from its next event on.
    if (changes.some((c) => c.after.includes('"object":"webhook_endpoint"'))) endpointCache = null;
    const endpoints = liveEndpoints();
    const events: Made['events'] = [];
    const derived = deriveEvents(changes, (fee, account) =>
      store.all('fee_refund', account).filter((r) => r['fee'] === fee),
    );
    for (const { account, event } of derived) {
      const targets = endpoints.filter((e) => endpointWants(e, event.type, account));
      const stored = renderEvent(account, event, request, targets.length);
      store.insertEvent(stored);
      events.push({ stored, targets, object: event.object });
    }
    return { events, changes };
  }

  /** After the transaction commits: queues deliveries and schedules the automation the events call for. */
  function dispatch(made: Made): void {
    for (const c of made.changes) {
      const after = JSON.parse(c.after) as StripeObject;
      if (after.object === 'webhook_endpoint' && (after['deleted'] || after['status'] !== 'enabled')) {
        delivery.drop(after.id);
      }
    }
    for (const { stored, targets, object } of made.events) {
      for (const endpoint of targets) {
        delivery.enqueue(endpoint, stored.id, stored.type, () => {
          const event = JSON.parse(stored.json) as Record<string, unknown>;
          event['pending_webhooks'] = delivery.pendingFor(stored.id);
          return JSON.stringify(event);
        });
      }
      if (stored.type === 'refund.created') {
        const charge = store.forAccount(stored.account || null).find(object['charge'] as string);
        if (refundsFailLater(charge)) scheduleRefundFailure(object.id);
      }
    }
  }

  function scheduleRefundFailure(refundId: string): void {
    const run = () => {
      scheduled.delete(refundId);
      if (closed) return;
      try {
        automate(refundId, 'refund', (s, refund) => failRefund(s, refund, 'expired_or_canceled_card'));
      } catch {
        // Already failed or canceled by a test: nothing left to do.
      }
    };
    scheduled.set(refundId, { timer: setTimeout(run, refundFailureDelayMs), run });
  }

  /** Stripe's own automation on one object: its events carry `request.id: null`. */
  function automate(
    id: string,
    type: string,
    fn: (s: SandboxStore, obj: StripeObject) => StripeObject,
  ): StripeObject {
    const account = store.accountOf(id);
    if (account === undefined) throw resourceMissing(type, id);
    return automated(account || null, (scoped) => fn(scoped, scoped.get(type, id)));
  }

  function automated(account: string | null, fn: (s: SandboxStore) => StripeObject): StripeObject {
    const scoped = store.forAccount(account);
    let made: Made = { events: [], changes: [] };
    const result = store.transaction(() => {
      const changes: Change[] = [];
      const out = store.journaled(changes, () => fn(scoped));
      made = record(changes, AUTOMATION);
      return out;
    });
    dispatch(made);
    return result;
  }

  /** Stripe's payout schedule paying out the balance: a payout no request made (`automatic: true`). */
  function automaticPayout(p: { amount: number; currency?: string; account?: string | null }): StripeObject {
    return automated(p.account ?? null, (s) => {
      const payout = createPayout(s, { amount: String(p.amount), currency: p.currency ?? 'usd' });
      payout['automatic'] = true;
      return s.save(payout);
    });
  }

  function runAutomation(): number {
    const due = [...scheduled.values()];
    for (const task of due) {
      clearTimeout(task.timer);
      task.run();
    }
    return due.length;
  }

  function bulk(req: BulkRequest): { count: number; events: number; last: unknown } {
    const method = req.method ?? 'POST';
    const m = router.match(method, req.path);
    if (!m) throw unrecognizedUrl(method, req.path);
    const account = req.account ?? null;
    const made: Made = { events: [], changes: [] };
    let last: unknown;
    store.transaction(() => {
      for (let i = 0; i < req.count; i++) {
        const changes: Change[] = [];
        const ctx = {
          store: store.forAccount(account),
          params: { ...req.params },
          args: m.args,
          method,
          path: req.path,
        };
        last = store.journaled(changes, () => m.handler(ctx));
        const one = record(changes, { id: newRequestId(), idempotency_key: null });
        made.events.push(...one.events);
        made.changes.push(...changes);
      }
    });
    dispatch(made);
    return { count: req.count, events: made.events.length, last };
  }

  function controlError(reply: FastifyReply, err: unknown): FastifyReply {
    if (err instanceof StripeApiError) return send(reply, err.status, errorJson(err));
    throw err;
  }

  function reset(): void {
    for (const task of scheduled.values()) clearTimeout(task.timer);
    scheduled.clear();
    store.reset();
    endpointCache = null;
    log.length = 0;
    faults = {};
  }

  try {
    await app.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1' });
  } catch (err) {
    // A taken port must not leave the sandbox's database open: the caller may try another port.
    await app.close();
    store.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (opts.port ?? 0);
  const host = opts.host ?? '127.0.0.1';

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    setFaults(f) {
      faults = { ...faultsSchema.parse(f) };
    },
    clearFaults() {
      faults = {};
    },
    requests: () => [...log],
    list: (objectType, listOpts) =>
      store.all(objectType, listOpts?.account === undefined ? undefined : (listOpts.account ?? '')),
    onRequest(cb) {
      listeners.add(cb);
      return () => {
        listeners.delete(cb);
      };
    },
    reset,
    backdate: (id, times) => store.backdate(id, times),
    events: () => store.allEvents(),
    addWebhookEndpoint(endpoint) {
      const e = endpointSchema.parse(endpoint);
      const id = newId('we');
      const scope = e.accounts === 'platform' ? 'self' : e.accounts === 'connect' ? 'connect' : 'all';
      endpointCache = null;
      ownEndpoints.set(id, {
        id,
        url: e.url,
        secret: e.secret,
        enabledEvents: e.enabledEvents ?? ['*'],
        scope,
        account: '',
      });
      return { id };
    },
    webhookEndpoints: () =>
      [...ownEndpoints.values()].map((e) => ({
        id: e.id,
        url: e.url,
        secret: e.secret,
        enabledEvents: e.enabledEvents,
      })),
    removeWebhookEndpoint(id) {
      ownEndpoints.delete(id);
      endpointCache = null;
      delivery.drop(id);
    },
    deliveries: () => delivery.attempts(),
    failRefund: (id, reason = 'expired_or_canceled_card') =>
      automate(id, 'refund', (s, refund) => failRefund(s, refund, reason)),
    payPayout: (id) => automate(id, 'payout', payPayout),
    failPayout: (id, code = 'account_closed') => automate(id, 'payout', (s, p) => failPayout(s, p, code)),
    automaticPayout: (p) => automaticPayout(automaticPayoutSchema.parse(p)),
    runAutomation,
    bulk: (req) => bulk(bulkSchema.parse(req)),
    async close() {
      closed = true;
      for (const task of scheduled.values()) clearTimeout(task.timer);
      scheduled.clear();
      delivery.close();
      await app.close();
      store.close();
    },
  };
}

/** A request header as received: '' when sent empty, null when absent. */
function rawHeader(request: FastifyRequest, name: string): string | null {
  const v = request.headers[name];
  if (Array.isArray(v)) return v.join(', ');
  return v ?? null;
}

function refusalOf(err: unknown): StripeApiError {
  if (err instanceof StripeApiError) return err;
  throw err;
}

/** The query (GET) or query and body, parsed under the sandbox's limits; throws the refusal otherwise. */
function requestParams(method: string, rawQuery: string, raw: RawBody | null): Params {
  const query = parseForm(rawQuery, 'query');
  if (method === 'GET' || raw === null) return query;
  checkBodySize(raw.bytes.length);
  const text = bodyText(raw.bytes);
  const body = raw.json ? parseJson(text) : parseForm(text, 'body');
  return { ...query, ...body };
}
