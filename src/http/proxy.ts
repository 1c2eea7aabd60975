import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AgentKeyCache, authenticateAgent } from '../auth/agent-keys.ts';
import { credentialFrom } from '../auth/credentials.ts';
import { type Engine, MAX_REASON_LENGTH } from '../engine/engine.ts';
import { type Gateway, MAX_WAIT_SECONDS } from '../engine/gateway.ts';
import { assertNever, isStatus } from '../engine/status.ts';
import { AirlockError } from '../errors.ts';
import type { CallbackSender } from '../outbound/callbacks.ts';
import type { ActionRow } from '../store/store.ts';
import { isValidStripePath } from '../stripe/classify.ts';
import { type Params, parseQuery } from '../stripe/params.ts';
import { checkCallbackParam } from './callback-param.ts';
import { sendError } from './errors.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface ProxyDeps {
  engine: Engine;
  gateway: Gateway;
  limiter?: RateLimiter;
  callbacks?: CallbackSender | null;
}

export function registerProxy(app: FastifyInstance, deps: ProxyDeps): void {
  const keys = new AgentKeyCache(deps.engine);
  app.addHook('onClose', async () => keys.close());
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const agent = await authenticateAgent(keys, request.headers.authorization);
    deps.limiter?.take(credentialFrom(request.headers.authorization)!);
    const method = request.method.toUpperCase();
    const [path = '', rawQuery = ''] = request.url.split('?', 2) as [string, string?];
    if (!isValidStripePath(path) || (method !== 'GET' && method !== 'POST' && method !== 'DELETE')) {
      throw new AirlockError('unknown_path', `Unrecognized request URL (${method}: ${path}).`);
    }
    const waitSeconds = parseWait(header(request, 'airlock-wait'));
    const reason = parseReason(header(request, 'airlock-reason'));
    // Checked before anything is recorded, as the actions API checks `callback`; an empty header is a bad URL.
    const callbackUrl = rawHeader(request, 'airlock-callback');
    await checkCallbackParam(deps.callbacks ?? null, callbackUrl, 'Airlock-Callback').catch((err) => {
      // Stripe's clients read any refused header as a 400 invalid_request_error, a private address included.
      if (err instanceof AirlockError && err.code !== 'parameter_invalid')
        throw new AirlockError('parameter_invalid', err.message, { param: 'Airlock-Callback' });
      throw err;
    });
    const outcome = await deps.gateway.stripe({
      agent,
      method,
      path,
      params: paramsOf(method, rawQuery, request.body),
      rawQuery,
      stripeAccount: header(request, 'stripe-account'),
      stripeContext: header(request, 'stripe-context'),
      stripeVersion: header(request, 'stripe-version'),
      idempotencyKey: header(request, 'idempotency-key'),
      waitSeconds,
      reason,
      callbackUrl: callbackUrl ?? null,
      requestId: request.id,
    });
    if (outcome.type === 'read') {
      return reply
        .code(outcome.response.status)
        .headers(outcome.response.headers)
        .send(outcome.response.body);
    }
    reply.header('Airlock-Action', outcome.action.id);
    return answer(reply, outcome.action);
  };
  for (const prefix of ['/v1/*', '/v2/*']) {
    app.route({ method: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], url: prefix, handler });
  }
}

/** What the agent sees for an action in each status: Stripe's own answer once executed, a Stripe-shaped 403 while held. */
function answer(reply: FastifyReply, row: ActionRow): FastifyReply {
  const status = isStatus(row.status) ? row.status : null;
  if (!status) throw new Error(`unknown status ${row.status}`);
  const reason = (JSON.parse(row.decision) as { reason?: string }).reason ?? '';
  switch (status) {
    case 'completed':
      return reply.code(row.response_code ?? 200).send(row.response_body);
    case 'failed':
      if (row.response_code && row.response_body)
        return reply.code(row.response_code).send(row.response_body);
      throw new AirlockError(
        'upstream_unreachable',
        `Stripe could not be reached for ${row.id}: ${row.last_error}`,
        {
          actionId: row.id,
        },
      );
    case 'awaiting_approval':
      throw new AirlockError('approval_required', `Held for human approval as ${row.id}. ${reason}`.trim(), {
        actionId: row.id,
      });
    case 'blocked':
      throw new AirlockError('action_blocked', `Blocked by policy as ${row.id}: ${reason}`, {
        actionId: row.id,
      });
    case 'rejected':
      throw new AirlockError('action_rejected', `Rejected by a reviewer as ${row.id}`, { actionId: row.id });
    case 'expired':
      throw new AirlockError('action_expired', `Expired without a decision as ${row.id}`, {
        actionId: row.id,
      });
    case 'cancelled':
      throw new AirlockError('action_cancelled', `Cancelled by the requester as ${row.id}`, {
        actionId: row.id,
      });
    case 'received':
    case 'approved':
    case 'pending':
      throw new AirlockError(
        'action_in_progress',
        `${row.id} is still being executed; retry with the same Idempotency-Key`,
        {
          actionId: row.id,
        },
      );
    default:
      return assertNever(status);
  }
}

function paramsOf(method: string, rawQuery: string, body: unknown): Params {
  if (method === 'GET' || method === 'DELETE') return rawQuery ? parseQuery(rawQuery) : {};
  if (body === undefined || body === null || body === '') return rawQuery ? parseQuery(rawQuery) : {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new AirlockError('malformed_body', 'The request body must be a set of parameters');
  }
  return body as Params;
}

function rawHeader(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function header(request: FastifyRequest, name: string): string | null {
  const v = request.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s && s.length > 0 ? s : null;
}

/**
 * The agent's stated reason (Airlock-Reason): shown to reviewers, stored on the action, never sent to Stripe. UTF-8
 * text may come percent-encoded, since header values are bytes; anything over MAX_REASON_LENGTH is refused rather
 * than cut, so a reviewer never reads half a reason.
 */
function parseReason(value: string | null): string | null {
  if (value === null) return null;
  let text = value;
  if (/%[0-9A-Fa-f]{2}/.test(text)) {
    try {
      text = decodeURIComponent(text);
    } catch {
      // Not percent-encoding after all: kept as sent.
    }
  }
  text = text.trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(text)) {
    throw new AirlockError('parameter_invalid', 'Airlock-Reason must be one line of text', {
      param: 'Airlock-Reason',
    });
  }
  if (text.length > MAX_REASON_LENGTH) {
    throw new AirlockError(
      'parameter_invalid',
      `Airlock-Reason is ${text.length} characters; at most ${MAX_REASON_LENGTH} are kept`,
      { param: 'Airlock-Reason' },
    );
  }
  return text === '' ? null : text;
}

function parseWait(value: string | null): number {
  if (!value) return 0;
  if (!/^\d{1,4}$/.test(value.trim())) {
    throw new AirlockError('parameter_invalid', 'Airlock-Wait must be a whole number of seconds', {
      param: 'Airlock-Wait',
    });
  }
  return Math.min(Number(value), MAX_WAIT_SECONDS);
}

export { sendError };
