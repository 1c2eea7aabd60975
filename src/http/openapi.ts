import { z } from 'zod';
import { STATUSES } from '../engine/status.ts';
import { axiruOpenApi } from './compat/axiru.ts';
import { compatPaths, compatSchemas } from './compat/openapi.ts';
import {
  CreateActionRequest,
  CreateDecisionRequest,
  DecideRequest,
  FreezeRequest,
  RejectRequest,
  UnfreezeRequest,
} from './schemas.ts';

function schema(s: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json['$schema'];
  return json;
}

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['type', 'code', 'message'],
      properties: {
        type: { type: 'string' },
        code: { type: 'string' },
        message: { type: 'string' },
        param: { type: 'string' },
        airlock_action: { type: 'string' },
      },
    },
  },
};

const actionSchema = {
  type: 'object',
  required: ['id', 'object', 'status', 'kind'],
  properties: {
    id: { type: 'string', pattern: '^act_' },
    object: { const: 'action' },
    status: { enum: [...STATUSES] },
    kind: { type: 'string' },
    read: { type: 'boolean' },
    shadow: { type: 'boolean' },
    method: { type: 'string' },
    path: { type: 'string' },
    url: { type: ['string', 'null'] },
    params: {},
    amount: { type: ['integer', 'null'] },
    currency: { type: ['string', 'null'] },
    amount_usd: { type: ['number', 'null'] },
    decision: { type: 'object' },
    approvals: { type: 'array', items: { type: 'object' } },
    approvals_required: { type: 'integer' },
    expires_at: { type: ['string', 'null'], format: 'date-time' },
    response_code: { type: ['integer', 'null'] },
    response_body: {},
    last_error: { type: ['string', 'null'] },
    attempts: { type: 'integer' },
    callbacks: { type: 'array', items: { type: 'object' } },
    created_at: { type: 'string', format: 'date-time' },
  },
};

const decisionSchema = {
  type: 'object',
  required: ['id', 'object', 'outcome', 'status', 'reason_code', 'policy_version'],
  properties: {
    id: { type: 'string' },
    object: { const: 'decision' },
    outcome: { enum: ['allow', 'review', 'block'] },
    status: { enum: ['approved', 'awaiting_approval', 'rejected', 'blocked', 'expired', 'cancelled'] },
    reason_code: { type: 'string' },
    message: { type: 'string' },
    policy_version: { type: 'string' },
    risk_score: { type: ['integer', 'null'] },
    modified_details: { type: ['object', 'null'] },
    decision_note: { type: ['string', 'null'] },
  },
};

const freezeSchema = {
  type: 'object',
  required: ['object', 'scope', 'agent', 'reason', 'created_at'],
  properties: {
    object: { const: 'freeze' },
    scope: { enum: ['all', 'agent'] },
    agent: { type: ['string', 'null'] },
    reason: { type: ['string', 'null'] },
    created_at: { type: 'string', format: 'date-time' },
  },
};

function json(ref: string) {
  return { content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } };
}

/** A Stripe-style list of one schema. */
function listOf(ref: string) {
  return {
    description: 'A list',
    content: {
      'application/json': {
        schema: {
          type: 'object',
          properties: {
            object: { const: 'list' },
            has_more: { type: 'boolean' },
            data: { type: 'array', items: { $ref: `#/components/schemas/${ref}` } },
          },
        },
      },
    },
  };
}

const errors = {
  '400': { description: 'Invalid request; `param` names the field', ...json('Error') },
  '401': { description: 'Missing or unknown credential', ...json('Error') },
  '403': { description: 'Not allowed for this credential', ...json('Error') },
  '404': { description: 'No such object', ...json('Error') },
};

const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const waitParam = {
  name: 'wait',
  in: 'query',
  required: false,
  description: 'Seconds to long-poll until settled',
  schema: { type: 'integer', minimum: 0, maximum: 300 },
};

/** The /api surface as OpenAPI 3.1, generated from the same zod schemas the server validates with. */
export function openApiDocument(serverUrl?: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Airlock API',
      version: '0.1.0',
      description:
        'Actions, decisions and review APIs of Airlock, the approval gateway for agent Stripe calls.',
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Agent key (ak_…) or reviewer token (rvw_…); admin token (adm_…) for /api/admin only',
        },
      },
      schemas: {
        Error: errorSchema,
        Action: actionSchema,
        Decision: decisionSchema,
        CreateActionRequest: schema(CreateActionRequest),
        CreateDecisionRequest: schema(CreateDecisionRequest),
        DecideRequest: schema(DecideRequest),
        RejectRequest: schema(RejectRequest),
        Freeze: freezeSchema,
        FreezeRequest: schema(FreezeRequest),
        UnfreezeRequest: schema(UnfreezeRequest),
        ...axiruOpenApi().schemas,
        ...compatSchemas,
      },
    },
    paths: {
      ...axiruOpenApi().paths,
      ...compatPaths,
      '/api/actions': {
        get: {
          operationId: 'listActions',
          summary: 'List actions, newest first',
          parameters: [
            { name: 'status', in: 'query', required: false, schema: { type: 'string' } },
            {
              name: 'limit',
              in: 'query',
              required: false,
              schema: { type: 'integer', minimum: 1, maximum: 100 },
            },
            { name: 'starting_after', in: 'query', required: false, schema: { type: 'string' } },
          ],
          responses: {
            '200': listOf('Action'),
            ...errors,
          },
        },
        post: {
          operationId: 'createAction',
          summary: 'Wrap an HTTP call to an allow-listed upstream (agent key)',
          requestBody: { required: true, ...json('CreateActionRequest') },
          responses: { '200': { description: 'The action', ...json('Action') }, ...errors },
        },
      },
      '/api/actions/{id}': {
        get: {
          operationId: 'getAction',
          parameters: [idParam, waitParam],
          responses: { '200': { description: 'The action', ...json('Action') }, ...errors },
        },
      },
      '/api/actions/{id}/approve': {
        post: {
          operationId: 'approveAction',
          summary: 'Approve, optionally with changes (reviewer token)',
          parameters: [idParam],
          requestBody: { required: false, ...json('DecideRequest') },
          responses: {
            '200': { description: 'The action after the vote', ...json('Action') },
            '409': { description: 'Already decided', ...json('Error') },
            ...errors,
          },
        },
      },
      '/api/actions/{id}/reject': {
        post: {
          operationId: 'rejectAction',
          parameters: [idParam],
          requestBody: { required: false, ...json('RejectRequest') },
          responses: {
            '200': { description: 'The rejected action', ...json('Action') },
            '409': { description: 'Already decided', ...json('Error') },
            ...errors,
          },
        },
      },
      '/api/actions/{id}/cancel': {
        post: {
          operationId: 'cancelAction',
          summary: 'Withdraw a held action (the requesting agent)',
          parameters: [idParam],
          responses: { '200': { description: 'The cancelled action', ...json('Action') }, ...errors },
        },
      },
      '/api/decisions': {
        post: {
          operationId: 'createDecision',
          summary: 'Ask whether an intended action may proceed (agent key)',
          requestBody: { required: true, ...json('CreateDecisionRequest') },
          responses: {
            '200': { description: 'The decision', ...json('Decision') },
            '409': { description: 'Idempotency key reused for a different intent', ...json('Error') },
            ...errors,
          },
        },
      },
      '/api/decisions/{id}': {
        get: {
          operationId: 'getDecision',
          parameters: [idParam, waitParam],
          responses: { '200': { description: 'The decision', ...json('Decision') }, ...errors },
        },
      },
      '/api/admin/freezes': {
        get: {
          operationId: 'listFreezes',
          summary: 'The freezes in force (admin token)',
          responses: {
            '200': listOf('Freeze'),
            ...errors,
          },
        },
      },
      '/api/admin/freeze': {
        post: {
          operationId: 'freeze',
          summary: 'Kill switch: refuse every write by one agent, or by all agents (admin token)',
          requestBody: { required: false, ...json('FreezeRequest') },
          responses: { '200': { description: 'The freeze', ...json('Freeze') }, ...errors },
        },
      },
      '/api/admin/unfreeze': {
        post: {
          operationId: 'unfreeze',
          summary: 'Lift a freeze (admin token)',
          requestBody: { required: false, ...json('UnfreezeRequest') },
          responses: {
            '200': {
              description: 'Whether a freeze was lifted',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      object: { const: 'unfreeze' },
                      scope: { enum: ['all', 'agent'] },
                      agent: { type: ['string', 'null'] },
                      lifted: { type: 'boolean' },
                    },
                  },
                },
              },
            },
            ...errors,
          },
        },
      },
      '/api/admin/keys/{id}/revoke': {
        post: {
          operationId: 'revokeAgentKey',
          summary: 'Revoke an agent key by its id, key_… (admin token)',
          parameters: [idParam],
          responses: {
            '200': {
              description: 'Revoked',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      object: { const: 'agent_key' },
                      id: { type: 'string' },
                      revoked: { const: true },
                    },
                  },
                },
              },
            },
            ...errors,
          },
        },
      },
    },
  };
}
