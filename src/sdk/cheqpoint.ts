// Cheqpoint's call style over the Airlock client: `requestSync` and `requestAsync` take Cheqpoint's fields and answer
// Cheqpoint's shape, through Airlock's Cheqpoint endpoints. Same timeouts, retries and fail-closed errors as the
// client: when Airlock cannot be reached they throw AirlockUnavailableError, never a made-up approval.
import type { CheqpointAnswer } from '../engine/shapes.ts';
import type { CheqpointAsyncRequest, CheqpointSyncRequest } from '../http/compat/schemas.ts';
import { AirlockClient, type AirlockClientOptions, newIdempotencyKey, SEND } from './client.ts';

export type { CheqpointAnswer, CheqpointAsyncRequest, CheqpointSyncRequest };

const BASE = '/api/cheqpoint/v1/requests';
const DEFAULT_TIMEOUT_MS = 30_000;

export interface Cheqpoint {
  /** Waits up to `timeoutMs` (default 30 s) for the decision; `pending` past it. Act only on `approved`. */
  requestSync(req: CheqpointSyncRequest): Promise<CheqpointAnswer>;
  /** Answers at once; the final decision is POSTed, signed with Airlock-Signature, to `callbackUrl`. */
  requestAsync(req: CheqpointAsyncRequest): Promise<CheqpointAnswer>;
  /** The request's state now, or once decided within `timeoutMs`. */
  get(approvalId: string, opts?: { timeoutMs?: number }): Promise<CheqpointAnswer>;
}

/** Cheqpoint's client, over an AirlockClient (or its options) holding an agent key. */
export function createCheqpoint(client: AirlockClient | AirlockClientOptions): Cheqpoint {
  const airlock = client instanceof AirlockClient ? client : new AirlockClient(client);
  // A key per request, so the client may retry a create that may have arrived: it never decides twice.
  const create = (path: string, req: CheqpointSyncRequest | CheqpointAsyncRequest, waitMs: number) => {
    const idempotencyKey = req.idempotencyKey ?? newIdempotencyKey();
    return airlock[SEND]<CheqpointAnswer>({
      method: 'POST',
      path,
      body: { ...req, idempotencyKey },
      waitSeconds: Math.ceil(waitMs / 1000),
      idempotencyKey,
      retry: 'always',
      risk: 'money',
    });
  };
  return {
    requestSync: (req) => create(`${BASE}/sync`, req, req.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    requestAsync: (req) => create(`${BASE}/async`, req, 0),
    get: (approvalId, opts = {}) =>
      airlock[SEND]<CheqpointAnswer>({
        method: 'GET',
        path: `${BASE}/${encodeURIComponent(approvalId)}`,
        query: { timeoutMs: opts.timeoutMs },
        waitSeconds: Math.ceil((opts.timeoutMs ?? 0) / 1000),
        retry: 'always',
        risk: 'decide',
      }),
  };
}
