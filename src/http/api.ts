import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AGENT_KEY_PREFIX,
  credentialFrom,
  hashCredential,
  REVIEWER_TOKEN_PREFIX,
} from '../auth/credentials.ts';
import type { Agent, Engine, Reviewer } from '../engine/engine.ts';
import { isTerminal, STATUSES } from '../engine/status.ts';
import { toActionObject } from '../engine/view.ts';
import { AirlockError } from '../errors.ts';
import type { ActionRow } from '../store/store.ts';

type Principal = { type: 'reviewer'; reviewer: Reviewer } | { type: 'agent'; agent: Agent };

const DecideBody = z
  .object({ note: z.string().max(2000).optional() })
  .strict()
  .optional()
  .nullable();

const ListQuery = z
  .object({
    status: z.enum(STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(10),
    starting_after: z.string().max(64).optional(),
  })
  .strict();

const GetQuery = z.object({ wait: z.coerce.number().int().min(0).max(300).optional() }).strict();

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.join('.') || undefined;
  const code = issue.code === 'unrecognized_keys' ? 'parameter_invalid' : 'parameter_invalid';
  return raise(code, `${param ? `${param}: ` : ''}${issue.message}`, param);
}

function raise(code: 'parameter_invalid', message: string, param: string | undefined): never {
  throw new AirlockError(code, message, param ? { param } : {});
}

/** The review API: reviewers list, read and decide actions; agents may only read and withdraw their own. */
export function registerApi(app: FastifyInstance, engine: Engine): void {
  async function principal(request: FastifyRequest): Promise<Principal> {
    const token = credentialFrom(request.headers.authorization);
    if (!token)
      throw new AirlockError(
        'authentication_required',
        'Send a reviewer token as Authorization: Bearer rk_…',
      );
    if (token.startsWith(REVIEWER_TOKEN_PREFIX)) {
      const reviewer = await engine.store.findReviewerByTokenHash(hashCredential(token));
      if (reviewer) return { type: 'reviewer', reviewer };
    } else if (token.startsWith(AGENT_KEY_PREFIX)) {
      const agent = await engine.store.findAgentByKeyHash(hashCredential(token));
      if (agent) return { type: 'agent', agent };
    }
    throw new AirlockError('invalid_api_key', 'Invalid credential');
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

  async function visible(p: Principal, id: string): Promise<ActionRow> {
    const row = await engine.get(id);
    if (p.type === 'agent' && row.agent_id !== p.agent.id) {
      throw new AirlockError('resource_missing', `No such action: '${id}'`, { param: 'id' });
    }
    return row;
  }

  async function render(row: ActionRow) {
    const [approvals, agent] = await Promise.all([
      engine.store.listApprovals(row.id),
      row.agent_id ? engine.store.getAgent(row.agent_id) : Promise.resolve(undefined),
    ]);
    return toActionObject(row, approvals, agent ?? null);
  }

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

  app.get<{ Params: { id: string } }>('/api/actions/:id', async (request) => {
    const p = await principal(request);
    const q = parse(GetQuery, request.query);
    let row = await visible(p, request.params.id);
    // Long-poll until the action settles: a held action returns once decided and executed, or at the deadline.
    if (q.wait) row = await engine.waitFor(row.id, isTerminal, q.wait * 1000);
    return render(row);
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

  for (const verb of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string } }>(`/api/actions/:id/${verb}`, async (request) => {
      const reviewer = await reviewerOnly(request);
      const body = parse(DecideBody, request.body);
      const note = body?.note ?? null;
      const row =
        verb === 'approve'
          ? await engine.approve(request.params.id, reviewer, note)
          : await engine.reject(request.params.id, reviewer, note);
      return render(row);
    });
  }

  app.post<{ Params: { id: string } }>('/api/actions/:id/cancel', async (request) => {
    const p = await principal(request);
    if (p.type !== 'agent')
      throw new AirlockError('forbidden', 'Only the requesting agent can cancel; reviewers reject.');
    return render(await engine.cancel(request.params.id, p.agent));
  });
}
