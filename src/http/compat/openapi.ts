// The compatible shapes in the OpenAPI document, from the same zod schemas their routes validate with.
import { z } from 'zod';
import {
  CHEQPOINT_BASE,
  CheqpointAsyncRequest,
  CheqpointSyncRequest,
  SAFEFETCH_BASE,
  SafeFetchApproveBody,
  SafeFetchRequest,
} from './schemas.ts';

function schema(s: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json['$schema'];
  return json;
}

const ref = (name: string) => ({
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } },
});
const errors = {
  '400': { description: "Invalid request; `param` names the field in the caller's shape", ...ref('Error') },
  '401': { description: 'Missing or unknown credential', ...ref('Error') },
  '403': { description: 'Not allowed for this credential', ...ref('Error') },
  '404': { description: 'No such object', ...ref('Error') },
};
const idParam = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });
const action = { '200': { description: 'The action', ...ref('Action') }, ...errors };
const answer = { '200': { description: "Cheqpoint's answer", ...ref('CheqpointAnswer') }, ...errors };

export const compatSchemas = {
  CheqpointSyncRequest: schema(CheqpointSyncRequest),
  CheqpointAsyncRequest: schema(CheqpointAsyncRequest),
  CheqpointAnswer: {
    type: 'object',
    required: ['approvalId', 'status', 'modifiedDetails', 'decisionNote'],
    properties: {
      approvalId: { type: 'string', pattern: '^act_' },
      status: { enum: ['approved', 'rejected', 'pending'] },
      modifiedDetails: { type: ['object', 'null'] },
      decisionNote: { type: ['string', 'null'] },
      outcome: { enum: ['allow', 'review', 'block'] },
      reasonCode: { type: 'string' },
      message: { type: 'string' },
      policyVersion: { type: 'string' },
    },
  },
  SafeFetchRequest: schema(SafeFetchRequest),
  SafeFetchApproveBody: schema(SafeFetchApproveBody),
};

export const compatPaths = {
  [`${CHEQPOINT_BASE}/requests/sync`]: {
    post: {
      operationId: 'cheqpointRequestSync',
      summary: "Cheqpoint's requestSync: answers once decided, or pending after timeoutMs (agent key)",
      requestBody: { required: true, ...ref('CheqpointSyncRequest') },
      responses: answer,
    },
  },
  [`${CHEQPOINT_BASE}/requests/async`]: {
    post: {
      operationId: 'cheqpointRequestAsync',
      summary:
        "Cheqpoint's requestAsync: answers at once, posts the final decision to callbackUrl (agent key)",
      requestBody: { required: true, ...ref('CheqpointAsyncRequest') },
      responses: answer,
    },
  },
  [`${CHEQPOINT_BASE}/requests/{approvalId}`]: {
    get: {
      operationId: 'cheqpointGet',
      parameters: [
        idParam('approvalId'),
        {
          name: 'timeoutMs',
          in: 'query',
          required: false,
          schema: { type: 'integer', minimum: 0, maximum: 300000 },
        },
      ],
      responses: answer,
    },
  },
  [`${SAFEFETCH_BASE}/actions`]: {
    post: {
      operationId: 'safeFetch',
      summary: "SafeFetch's call: wrap an HTTP call to an allow-listed upstream (agent key)",
      requestBody: { required: true, ...ref('SafeFetchRequest') },
      responses: action,
    },
  },
  [`${SAFEFETCH_BASE}/actions/{id}`]: {
    get: { operationId: 'safeFetchGet', parameters: [idParam('id')], responses: action },
  },
  [`${SAFEFETCH_BASE}/actions/{id}/approve`]: {
    post: {
      operationId: 'safeFetchApprove',
      summary: 'Approve as sent, or with a lower amount in modified_details (reviewer token)',
      parameters: [idParam('id')],
      requestBody: { required: false, ...ref('SafeFetchApproveBody') },
      responses: action,
    },
  },
  [`${SAFEFETCH_BASE}/actions/{id}/reject`]: {
    post: {
      operationId: 'safeFetchReject',
      summary: 'Reject (reviewer token)',
      parameters: [idParam('id')],
      responses: action,
    },
  },
  [`${SAFEFETCH_BASE}/actions/{id}/cancel`]: {
    post: {
      operationId: 'safeFetchCancel',
      summary: 'Withdraw (the requesting agent)',
      parameters: [idParam('id')],
      responses: action,
    },
  },
};
