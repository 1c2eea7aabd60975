import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authenticate, credentialFrom, type Principal } from '../auth/credentials.ts';
import { type CallbackDelivery, callbacksFor } from '../engine/callbacks.ts';
import type { Dispatcher } from '../engine/dispatcher.ts';
import {
  type Agent,
  type Engine,
  isSettledAction,
  type Reviewer,
  type Submission,
} from '../engine/engine.ts';
import type { CallbackShape } from '../engine/shapes.ts';
import { STATUSES } from '../engine/status.ts';
import { type ActionObject, type DecisionObject, toActionObject, toDecisionObject } from '../engine/view.ts';
import { AirlockError } from '../errors.ts';
import type { CallbackSender } from '../outbound/callbacks.ts';
import { type OutboundHttp, refusedHeader } from '../outbound/http.ts';
import { actionFacts, matchRoute } from '../outbound/routes.ts';
import type { ActionRow } from '../store/store.ts';
import { type Classification, statedFacts } from '../stripe/classify.ts';
import type { Params } from '../stripe/params.ts';
import { checkCallbackParam } from './callback-param.ts';
import { openApiDocument } from './openapi.ts';
import type { RateLimiter } from './rate-limit.ts';
import {
  CreateActionRequest,
  CreateDecisionRequest,
  DecideRequest,
  RejectRequest,
  WaitQuery,
} from './schemas.ts';

/** Who may use these APIs: reviewers and agents; admin tokens use the admin API only. */
type ApiPrincipal = Exclude<Principal, { type: 'admin' }>;

export interface ApiDeps {
  engine: Engine;
  dispatcher: Dispatcher;
  http: OutboundHttp | null;
  callbacks: CallbackSender | null;
  limiter?: RateLimiter;
}

const ListQuery = z
  .object({
    status: z.enum(STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(10),
    starting_after: z.string().max(64).optional(),
  })
  .strict();

/** Validates with a shared schema; the first problem becomes a 400 that names the field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const keys = 'keys' in issue && Array.isArray(issue.keys) ? (issue.keys as string[]) : [];
  const param = [...issue.path.map(String), ...keys.slice(0, 1)].join('.') || undefined;
  throw new AirlockError(
    'parameter_invalid',
    `${param ? `${param}: ` : ''}${issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message}`,
    param ? { param } : {},
  );
}

function classification(
  kind: string,
  amount: number | undefined,
  currency: string | undefined,
): Classification {
  return statedFacts(kind, amount ?? null, currency ?? null);
}

// RFC 9110 field names are tokens; values are visible characters with inner spaces and tabs only. Checked here so a
// header that could not be sent is a 400 at submission, not an uncertain failure at dispatch.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;

function checkHeaders(headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    const param = `headers.${name}`;
    if (!HEADER_NAME.test(name)) {
      throw new AirlockError(
        'parameter_invalid',
        `${JSON.stringify(param)} is not a valid header name: use letters, digits and !#$%&'*+-.^_\`|~ only`,
        { param },
      );
    }
    if (!HEADER_VALUE.test(value)) {
      throw new AirlockError(
        'parameter_invalid',
        `${param} is not a valid header value: no control characters (CR, LF, NUL), no leading or trailing whitespace`,
        { param },
      );
    }
  }
}

/** What the compatible shapes (src/http/compat/) reuse: the same checks, submission and views as the routes here. */
export interface ApiHandlers {
  /** The agent making the request (authenticated and rate-limited), so a body is checked only for a known caller. */
  agentOnly(request: FastifyRequest): Promise<Agent>;
  /** The actions API's create, from a validated body; `shape` picks the body of the action's callback. */
  createAction(
    request: FastifyRequest,
    body: z.output<typeof CreateActionRequest>,
    opts?: { shape?: CallbackShape; agent?: Agent },
  ): Promise<ActionRow>;
  /** The decisions API's create, waiting up to `waitMs` for a person; `shape` picks the callback's body. */
  createDecision(
    request: FastifyRequest,
    body: z.output<typeof CreateDecisionRequest>,
    opts?: { shape?: CallbackShape; waitMs?: number; agent?: Agent },
  ): Promise<ActionRow>;
  /** An action the caller may see, long-polled up to `waitMs` until it settles. */
  readAction(request: FastifyRequest, id: string, waitMs: number): Promise<ActionRow>;
  render(row: ActionRow): Promise<ActionObject & { callbacks: CallbackDelivery[] }>;
  renderDecision(row: ActionRow): Promise<DecisionObject>;
  approve(request: FastifyRequest, id: string, body: unknown): Promise<ActionRow>;
  reject(request: FastifyRequest, id: string, body: unknown): Promise<ActionRow>;
  cancel(request: FastifyRequest, id: string): Promise<ActionRow>;
}

/** The review API (reviewers decide; agents read and withdraw their own), the actions API and the decisions API. */
export function registerApi(app: FastifyInstance, deps: ApiDeps): ApiHandlers {
  const { engine } = deps;

  async function principal(request: FastifyRequest): Promise<ApiPrincipal> {
    const p = await authenticate(engine.store, request.headers.authorization, engine.clock.now());
    if (p.type === 'admin') {
      throw new AirlockError(
        'forbidden',
        'Admin tokens only use the admin API (/api/admin); reviewers decide, agents request.',
      );
    }
    if (p.type === 'agent') deps.limiter?.take(credentialFrom(request.headers.authorization)!);
    return p;
  }

  async function reviewerOnly(request: FastifyRequest): Promise<Reviewer> {
    const p = await principal(request);
    if (p.type !== 'reviewer') {
      throw new AirlockError(
        'forbidden',
        'Agent keys cannot approve or reject actions; a reviewer must decide.',
      );
    }
    return p.reviewer;
  }

  async function agentOnly(request: FastifyRequest): Promise<Agent> {
    const p = await principal(request);
    if (p.type !== 'agent')
      throw new AirlockError('forbidden', 'Only agents request actions; use an agent key');
    return p.agent;
  }

  async function visible(p: ApiPrincipal, id: string): Promise<ActionRow> {
    const row = await engine.get(id);
    if (p.type === 'agent' && row.agent_id !== p.agent.id) {
      throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
    }
    return row;
  }

  async function render(row: ActionRow) {
    const [approvals, agent, callbacks] = await Promise.all([
      engine.store.listApprovals(row.id),
      row.agent_id ? engine.store.getAgent(row.agent_id) : Promise.resolve(undefined),
      row.callback_url ? callbacksFor(engine.store, row.id) : Promise.resolve([]),
    ]);
    return { ...toActionObject(row, approvals, agent ?? null), callbacks };
  }

  async function renderDecision(row: ActionRow) {
    return toDecisionObject(row, await engine.store.listApprovals(row.id));
  }

  /** Settles inline what can settle now: an allowed action runs, a held one waits up to `waitMs`. */
  async function settle(row: ActionRow, created: boolean, waitMs: number): Promise<ActionRow> {
    if (row.status === 'pending' && created) await deps.dispatcher.drive(row.id);
    if (waitMs > 0 && !isSettledAction(row)) {
      const mode = row.mode;
      return engine.waitFor(row.id, (s) => isSettledAction({ status: s, mode }), waitMs);
    }
    return engine.get(row.id);
  }

  const checkCallback = (url: string | undefined, param: string) =>
    checkCallbackParam(deps.callbacks, url, param);

  app.get('/api/openapi.json', async () => openApiDocument());

  // --- review API ------------------------------------------------------------------------------------------------

  app.get('/api/actions', async (request) => {
    const p = await principal(request);
    const q = parse(ListQuery, request.query);
    const { rows, hasMore } = await engine.store.listActions({
      status: q.status,
      limit: q.limit,
      startingAfter: q.starting_after,
      agentId: p.type === 'agent' ? p.agent.id : undefined,
    });
    return {
      object: 'list',
      url: '/api/actions',
      has_more: hasMore,
      data: await Promise.all(rows.map(render)),
    };
  });

  async function readAction(request: FastifyRequest, id: string, waitMs: number): Promise<ActionRow> {
    const p = await principal(request);
    const row = await visible(p, id);
    // Long-poll until the action settles: a held action returns once decided and executed, or at the deadline.
    if (waitMs > 0 && !isSettledAction(row)) {
      const mode = row.mode;
      return engine.waitFor(row.id, (s) => isSettledAction({ status: s, mode }), waitMs);
    }
    return row;
  }

  app.get<{ Params: { id: string } }>('/api/actions/:id', async (request) => {
    const q = parse(WaitQuery, request.query);
    return render(await readAction(request, request.params.id, (q.wait ?? 0) * 1000));
  });

  app.get<{ Params: { id: string } }>('/api/actions/:id/events', async (request) => {
    const p = await principal(request);
    const row = await visible(p, request.params.id);
    const events = await engine.store.ledgerForAction(row.id);
    return {
      object: 'list',
      has_more: false,
      data: events.map((e) => ({
        seq: e.seq,
        type: e.type,
        from: e.from_status,
        to: e.to_status,
        actor: e.actor,
        data: JSON.parse(e.data),
        at: e.at,
        hash: e.hash,
      })),
    };
  });

  async function approve(request: FastifyRequest, id: string, raw: unknown): Promise<ActionRow> {
    const reviewer = await reviewerOnly(request);
    const body = parse(DecideRequest, raw);
    return engine.approve(id, reviewer, body.note ?? null, body.changes ?? null, { requestId: request.id });
  }

  async function reject(request: FastifyRequest, id: string, raw: unknown): Promise<ActionRow> {
    const reviewer = await reviewerOnly(request);
    const body = parse(RejectRequest, raw);
    return engine.reject(id, reviewer, body.note ?? null, { requestId: request.id });
  }

  async function cancel(request: FastifyRequest, id: string): Promise<ActionRow> {
    return engine.cancel(id, await agentOnly(request));
  }

  app.post<{ Params: { id: string } }>('/api/actions/:id/approve', async (request) => {
    const row = await approve(request, request.params.id, request.body);
    return row.mode === 'decide' ? renderDecision(row) : render(row);
  });

  app.post<{ Params: { id: string } }>('/api/actions/:id/reject', async (request) => {
    const row = await reject(request, request.params.id, request.body);
    return row.mode === 'decide' ? renderDecision(row) : render(row);
  });

  app.post<{ Params: { id: string } }>('/api/actions/:id/cancel', async (request) => {
    return render(await cancel(request, request.params.id));
  });

  // --- actions API: wrap any HTTP call on the allow-list -------------------------------------------------------

  async function createAction(
    request: FastifyRequest,
    body: z.output<typeof CreateActionRequest>,
    opts: { shape?: CallbackShape; agent?: Agent } = {},
  ): Promise<ActionRow> {
    const agent = opts.agent ?? (await agentOnly(request));
    if (!deps.http) {
      throw new AirlockError('upstream_not_allowed', 'No upstream hosts are configured (http_upstreams)', {
        param: 'url',
      });
    }
    const url = await deps.http.check(body.url);
    const headers = body.headers ?? {};
    checkHeaders(headers);
    const refused = refusedHeader(headers);
    if (refused) {
      throw new AirlockError(
        'parameter_invalid',
        `headers.${refused} is not accepted: credentials for an upstream are configured by the operator`,
        { param: `headers.${refused}` },
      );
    }
    await checkCallback(body.callback, 'callback');
    const httpBody =
      body.body === undefined ? null : typeof body.body === 'string' ? body.body : JSON.stringify(body.body);
    // The operator's routes say what the call is; the facts are read from httpBody, the bytes stored and sent.
    const host = deps.http.match(url.hostname);
    const route = matchRoute(host?.routes ?? [], body.method, url.pathname);
    const facts = actionFacts(
      route,
      { method: body.method, pathname: url.pathname, search: url.search, headers, body: httpBody },
      { kind: body.kind, amount: body.amount, currency: body.currency },
    );
    const params = {
      url: url.toString(),
      headers,
      body: body.body === undefined ? null : (body.body as never),
    };
    const sub: Submission = {
      agent,
      mode: 'http',
      method: body.method,
      path: url.pathname,
      url: url.toString(),
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: body.idempotency_key ?? null,
      classification: statedFacts(facts.kind, facts.amount, facts.currency),
      declared: facts.declared,
      httpHeaders: headers,
      httpBody,
      callbackUrl: body.callback ?? null,
      forceReview: body.approve === true,
      details: {
        summary: body.summary ?? null,
        notify: body.notify ?? [],
        ...(facts.declared ? { declared: facts.declared } : {}),
        // The route the facts were read by: a reviewer's lower amount is written where this one was read.
        ...(route ? { route } : {}),
        ...(opts.shape ? { callback_shape: opts.shape } : {}),
      },
      requestId: request.id,
    };
    const { action, created } = await engine.submit(sub);
    return settle(action, created, (body.wait ?? 0) * 1000);
  }

  app.post('/api/actions', async (request) => {
    const agent = await agentOnly(request);
    return render(await createAction(request, parse(CreateActionRequest, request.body), { agent }));
  });

  // --- decisions API: ask first, act yourself ------------------------------------------------------------------

  async function createDecision(
    request: FastifyRequest,
    body: z.output<typeof CreateDecisionRequest>,
    opts: { shape?: CallbackShape; waitMs?: number; agent?: Agent } = {},
  ): Promise<ActionRow> {
    const agent = opts.agent ?? (await agentOnly(request));
    await checkCallback(body.callback_url, 'callback_url');
    const intent = body.intent;
    const params: Params = { intent: intent as Params };
    if (body.context) params['context'] = body.context as Params;
    if (intent.metadata) params['metadata'] = intent.metadata;
    const context = body.context ?? {};
    const sub: Submission = {
      agent,
      mode: 'decide',
      method: 'DECIDE',
      path: `/decisions/${intent.kind}`,
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: body.idempotency_key ?? null,
      classification: {
        ...classification(intent.kind, intent.amount, intent.currency),
        customer: typeof context['customer'] === 'string' ? context['customer'] : null,
        charge: typeof context['charge'] === 'string' ? context['charge'] : null,
      },
      callbackUrl: body.callback_url ?? null,
      details: {
        summary: body.summary ?? null,
        justification: body.justification ?? null,
        ...(opts.shape ? { callback_shape: opts.shape } : {}),
      },
      requestId: request.id,
    };
    let result: Awaited<ReturnType<Engine['submit']>>;
    try {
      result = await engine.submit(sub);
    } catch (err) {
      if (err instanceof AirlockError && err.code === 'idempotency_error') {
        throw new AirlockError(
          'idempotency_conflict',
          `idempotency_key '${body.idempotency_key}' was already used for a different intent (${err.actionId}); use a new key for a new decision`,
          { param: 'idempotency_key', ...(err.actionId ? { actionId: err.actionId } : {}) },
        );
      }
      throw err;
    }
    return settle(result.action, result.created, opts.waitMs ?? 0);
  }

  app.post('/api/decisions', async (request) => {
    const agent = await agentOnly(request);
    const body = parse(CreateDecisionRequest, request.body);
    return renderDecision(await createDecision(request, body, { waitMs: (body.wait ?? 0) * 1000, agent }));
  });

  app.get<{ Params: { id: string } }>('/api/decisions/:id', async (request) => {
    const p = await principal(request);
    const q = parse(WaitQuery, request.query);
    let row = await visible(p, request.params.id);
    if (row.mode !== 'decide')
      throw new AirlockError('resource_missing', `No such decision: '${row.id}'`, { param: 'id' });
    if (q.wait && !isSettledAction(row)) {
      row = await engine.waitFor(
        row.id,
        (s) => isSettledAction({ status: s, mode: 'decide' }),
        q.wait * 1000,
      );
    }
    return renderDecision(row);
  });

  return {
    agentOnly,
    createAction,
    createDecision,
    readAction,
    render,
    renderDecision,
    approve,
    reject,
    cancel,
  };
}
