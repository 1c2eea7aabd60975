// SafeFetch's call style over the Airlock client: `safeFetch({url, method, headers, body, approve, notify, callback})`
// returns the action, and `safeFetch.get`, `.approve` and `.cancel` act on it. Same timeouts, retries and fail-closed
// errors as the client: when Airlock cannot be reached, the call throws AirlockUnavailableError and nothing ran.
import type { SafeFetchApproveBody, SafeFetchRequest } from '../http/compat/schemas.ts';
import { AirlockClient, type AirlockClientOptions, newIdempotencyKey, SEND } from './client.ts';
import type { SafeFetchAction as Action } from './types.ts';

export type { SafeFetchApproveBody, SafeFetchRequest };

export interface SafeFetch {
  (req: SafeFetchRequest): Promise<Action>;
  get(id: string): Promise<Action>;
  /**
   * Airlock lets only reviewers approve: the client's key must be a reviewer token (rk_…), never the agent's.
   * `modified_details.amount` lowers the amount of a call whose route declares one; the body is sent with it.
   */
  approve(id: string, opts?: SafeFetchApproveBody): Promise<Action>;
  /** Reviewer token, as approve; the note is kept with the action. */
  reject(id: string, opts?: { note?: string }): Promise<Action>;
  /** The requesting agent withdraws its own held action. */
  cancel(id: string): Promise<Action>;
}

const BASE = '/api/safefetch/v1/actions';

/** SafeFetch's client, over an AirlockClient (or its options). */
export function createSafeFetch(client: AirlockClient | AirlockClientOptions): SafeFetch {
  const airlock = client instanceof AirlockClient ? client : new AirlockClient(client);
  const at = (id: string, verb = '') => `${BASE}/${encodeURIComponent(id)}${verb}`;
  const safeFetch = (req: SafeFetchRequest): Promise<Action> => {
    // A key per call, so a retry of a create that may have arrived returns the same action: it never runs twice.
    const idempotencyKey = req.idempotency_key ?? newIdempotencyKey();
    return airlock[SEND]<Action>({
      method: 'POST',
      path: BASE,
      body: { ...req, idempotency_key: idempotencyKey },
      idempotencyKey,
      retry: 'always',
      risk: 'money',
    });
  };
  return Object.assign(safeFetch, {
    get: (id: string) =>
      airlock[SEND]<Action>({ method: 'GET', path: at(id), retry: 'always', risk: 'decide' }),
    approve: (id: string, opts: SafeFetchApproveBody = {}) =>
      airlock[SEND]<Action>({
        method: 'POST',
        path: at(id, '/approve'),
        body: opts,
        retry: 'unreached',
        risk: 'decide',
      }),
    reject: (id: string, opts: { note?: string } = {}) =>
      airlock[SEND]<Action>({
        method: 'POST',
        path: at(id, '/reject'),
        body: opts,
        retry: 'unreached',
        risk: 'decide',
      }),
    cancel: (id: string) =>
      airlock[SEND]<Action>({
        method: 'POST',
        path: at(id, '/cancel'),
        body: {},
        retry: 'unreached',
        risk: 'decide',
      }),
  });
}
