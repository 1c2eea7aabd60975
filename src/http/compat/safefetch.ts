// SafeFetch's action shape, mapped onto the actions API: the same allow-list, declared routes, engine, policy and
// ledger. A caller keeps its code and changes the base URL (…/api/safefetch/v1) and the key. docs/migrate/safefetch.md
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { toSafeFetchAction } from '../../engine/shapes.ts';
import { AirlockError } from '../../errors.ts';
import type { ActionRow } from '../../store/store.ts';
import { type ApiHandlers, parse } from '../api.ts';
import { CreateActionRequest } from '../schemas.ts';
import { type FieldNames, inCallerFields } from './fields.ts';
import { SAFEFETCH_BASE, SafeFetchApproveBody, SafeFetchRequest } from './schemas.ts';

// Stripe secret and restricted keys, live or test. Airlock's own reviewer tokens (rk_ + random) do not match.
const STRIPE_KEY = /\b[sr]k_(?:live|test)_[0-9A-Za-z]{8,}/;

/**
 * Where a Stripe key travels in the request, if anywhere: headers first (SafeFetch passes the caller's
 * `Authorization` through), then the URL and the body. Checked before anything is stored or logged.
 */
export function stripeKeyField(raw: unknown): string | null {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const req = raw as Record<string, unknown>;
  const headers = req['headers'];
  if (headers && typeof headers === 'object' && !Array.isArray(headers)) {
    for (const [name, value] of Object.entries(headers)) {
      if (typeof value === 'string' && STRIPE_KEY.test(value)) return `headers.${name}`;
    }
  }
  if (typeof req['url'] === 'string' && STRIPE_KEY.test(req['url'])) return 'url';
  if (req['body'] !== undefined) {
    const text = typeof req['body'] === 'string' ? req['body'] : JSON.stringify(req['body']);
    if (text !== undefined && STRIPE_KEY.test(text)) return 'body';
  }
  return null;
}

/** Airlock's actions-API field → SafeFetch's, for errors raised past the mapping. */
const FIELDS: FieldNames = { notify: 'notify.email' };
const APPROVE_FIELDS: FieldNames = { amount: 'modified_details.amount', changes: 'modified_details' };

/** The same request in the actions API's shape. */
export function toActionRequest(req: z.output<typeof SafeFetchRequest>): z.input<typeof CreateActionRequest> {
  const emails = req.notify ? [req.notify.email].flat() : [];
  return {
    url: req.url,
    ...(req.method !== undefined ? { method: req.method } : {}),
    ...(req.headers !== undefined ? { headers: req.headers } : {}),
    ...(req.body !== undefined ? { body: req.body } : {}),
    ...(req.approve !== undefined ? { approve: req.approve } : {}),
    ...(emails.length > 0 ? { notify: emails.map((e) => `email:${e}`) } : {}),
    ...(req.callback !== undefined ? { callback: req.callback } : {}),
    ...(req.idempotency_key !== undefined ? { idempotency_key: req.idempotency_key } : {}),
  };
}

/** SafeFetch's endpoints, one line in app.ts: create, get, approve (reviewer tokens only), cancel, and reject. */
export function registerSafeFetch(app: FastifyInstance, api: ApiHandlers): void {
  const render = async (row: ActionRow) => toSafeFetchAction(await api.render(row));

  app.post(`${SAFEFETCH_BASE}/actions`, async (request) => {
    const agent = await api.agentOnly(request);
    // Before validation, so not even an error about another field echoes a request that holds a key.
    const keyAt = stripeKeyField(request.body);
    if (keyAt) {
      throw new AirlockError(
        'parameter_invalid',
        `${keyAt} carries a Stripe secret key. Airlock holds upstream credentials (the operator configures them per ` +
          'host) and adds them itself; the key must not travel with the request, and it was neither stored nor ' +
          'logged. Remove it, and roll the key if an agent ever held it.',
        { param: keyAt },
      );
    }
    const req = parse(SafeFetchRequest, request.body);
    if (req.approve === true && req.sync === true) {
      throw new AirlockError(
        'parameter_invalid',
        'approve: true cannot be combined with sync: true: a call that waits for a person cannot answer in the same ' +
          'request. Drop sync, then read the action with get(id) or take it from the callback.',
        { param: 'sync' },
      );
    }
    // `sync` asks for the upstream's answer in this response: Airlock runs an allowed call before answering anyway.
    const row = await inCallerFields(FIELDS, () =>
      api.createAction(request, parse(CreateActionRequest, toActionRequest(req)), {
        shape: 'safefetch',
        agent,
      }),
    );
    return render(row);
  });

  app.get<{ Params: { id: string } }>(`${SAFEFETCH_BASE}/actions/:id`, async (request) =>
    render(await api.readAction(request, request.params.id, 0)),
  );

  app.post<{ Params: { id: string } }>(`${SAFEFETCH_BASE}/actions/:id/approve`, async (request) => {
    // A lower amount is written into the body where the operator's route reads it (docs/migrate/safefetch.md).
    const body = parse(SafeFetchApproveBody, request.body);
    const decide = {
      ...(body.note !== undefined ? { note: body.note } : {}),
      ...(body.modified_details ? { changes: { amount: body.modified_details.amount } } : {}),
    };
    return render(
      await inCallerFields(APPROVE_FIELDS, () => api.approve(request, request.params.id, decide)),
    );
  });

  app.post<{ Params: { id: string } }>(`${SAFEFETCH_BASE}/actions/:id/reject`, async (request) =>
    render(await api.reject(request, request.params.id, request.body)),
  );

  app.post<{ Params: { id: string } }>(`${SAFEFETCH_BASE}/actions/:id/cancel`, async (request) =>
    render(await api.cancel(request, request.params.id)),
  );
}
