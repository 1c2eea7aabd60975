// Cheqpoint's request and answer, mapped onto the decisions API: the same engine, policy and ledger. A caller keeps
// its code and changes the base URL (…/api/cheqpoint/v1) and the key (an Airlock agent key). docs/migrate/cheqpoint.md
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Agent } from '../../engine/engine.ts';
import { type CheqpointAnswer, toCheqpointAnswer } from '../../engine/shapes.ts';
import { AirlockError } from '../../errors.ts';
import type { ActionRow } from '../../store/store.ts';
import { type ApiHandlers, parse } from '../api.ts';
import { CreateDecisionRequest } from '../schemas.ts';
import { type FieldNames, inCallerFields } from './fields.ts';
import {
  CHEQPOINT_ACTIONS,
  CHEQPOINT_BASE,
  CheqpointAsyncRequest,
  CheqpointStatusQuery,
  CheqpointSyncRequest,
  DEFAULT_TIMEOUT_MS,
} from './schemas.ts';

export type { CheqpointAnswer };

/** Airlock's decisions-API field → Cheqpoint's, for errors raised past the mapping. */
const FIELDS: FieldNames = {
  'intent.kind': 'action',
  'intent.amount': 'details.amount_cents',
  'intent.currency': 'details.currency',
  'intent.metadata': 'details.metadata',
  'context.charge': 'details.charge_id',
  'context.customer': 'details.customer_id',
  'context.reason': 'details.reason',
  idempotency_key: 'idempotencyKey',
  callback_url: 'callbackUrl',
};

/** The same request in the decisions API's shape: the kind from the table, the amount and currency as given. */
export function toDecisionRequest(
  req: z.output<typeof CheqpointSyncRequest> | z.output<typeof CheqpointAsyncRequest>,
): z.input<typeof CreateDecisionRequest> {
  const d = req.details;
  const context: Record<string, string> = {};
  if (d.charge_id !== undefined) context['charge'] = d.charge_id;
  if (d.customer_id !== undefined) context['customer'] = d.customer_id;
  if (d.reason !== undefined) context['reason'] = d.reason;
  return {
    intent: {
      kind: CHEQPOINT_ACTIONS[req.action],
      ...(d.amount_cents !== undefined ? { amount: d.amount_cents } : {}),
      ...(d.currency !== undefined ? { currency: d.currency } : {}),
      ...(d.metadata !== undefined ? { metadata: d.metadata } : {}),
    },
    ...(Object.keys(context).length > 0 ? { context } : {}),
    ...(req.summary !== undefined ? { summary: req.summary } : {}),
    ...(req.justification !== undefined ? { justification: req.justification } : {}),
    ...(req.idempotencyKey !== undefined ? { idempotency_key: req.idempotencyKey } : {}),
    ...(req.callbackUrl !== undefined ? { callback_url: req.callbackUrl } : {}),
  };
}

/** Cheqpoint's endpoints, one line in app.ts. Reviewers decide with Airlock's review API, dashboard, email or Slack. */
export function registerCheqpoint(app: FastifyInstance, api: ApiHandlers): void {
  async function answer(row: ActionRow): Promise<CheqpointAnswer> {
    return toCheqpointAnswer(await api.renderDecision(row));
  }

  function decide(
    request: FastifyRequest,
    agent: Agent,
    body: ReturnType<typeof toDecisionRequest>,
    waitMs: number,
  ) {
    return inCallerFields(FIELDS, async () =>
      api.createDecision(request, parse(CreateDecisionRequest, body), { shape: 'cheqpoint', waitMs, agent }),
    );
  }

  app.post(`${CHEQPOINT_BASE}/requests/sync`, async (request) => {
    const agent = await api.agentOnly(request);
    const req = parse(CheqpointSyncRequest, request.body);
    return answer(await decide(request, agent, toDecisionRequest(req), req.timeoutMs ?? DEFAULT_TIMEOUT_MS));
  });

  app.post(`${CHEQPOINT_BASE}/requests/async`, async (request) => {
    const agent = await api.agentOnly(request);
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (typeof body === 'object' && 'timeoutMs' in body) {
      throw new AirlockError(
        'parameter_invalid',
        'timeoutMs: requestAsync answers at once and posts the final decision to callbackUrl; use requestSync to wait',
        { param: 'timeoutMs' },
      );
    }
    const req = parse(CheqpointAsyncRequest, request.body);
    return answer(await decide(request, agent, toDecisionRequest(req), 0));
  });

  app.get<{ Params: { approvalId: string } }>(`${CHEQPOINT_BASE}/requests/:approvalId`, async (request) => {
    const q = parse(CheqpointStatusQuery, request.query);
    const row = await inCallerFields({ id: 'approvalId' }, () =>
      api.readAction(request, request.params.approvalId, q.timeoutMs ?? 0),
    );
    if (row.mode !== 'decide') {
      throw new AirlockError('resource_missing', `No such approval request: '${row.id}'`, {
        param: 'approvalId',
      });
    }
    return answer(row);
  });
}
