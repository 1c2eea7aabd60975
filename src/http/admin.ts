// The admin API: what `airlock freeze`, `unfreeze`, `freezes` and `keys revoke` do, over HTTP, for admin tokens
// (adm_…) only. It moves no money and decides nothing: agents request, reviewers decide, admins can only stop.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Admin, authenticate, revokeAgentKey } from '../auth/credentials.ts';
import type { Engine } from '../engine/engine.ts';
import {
  ALL_AGENTS,
  clearFreeze,
  describeFreezes,
  type Freeze,
  freezeScope,
  setFreeze,
} from '../engine/freeze.ts';
import { AirlockError } from '../errors.ts';
import { parse } from './api.ts';
import { FreezeRequest, UnfreezeRequest } from './schemas.ts';

export const ADMIN_API = '/api/admin';

function freezeObject(f: Freeze, agent: string | null) {
  return {
    object: 'freeze',
    scope: f.scope === ALL_AGENTS ? 'all' : 'agent',
    agent,
    reason: f.reason,
    created_at: f.created_at,
  };
}

export function registerAdminApi(app: FastifyInstance, deps: { engine: Engine }): void {
  const { engine } = deps;

  async function adminOnly(request: FastifyRequest): Promise<Admin> {
    const p = await authenticate(engine.store, request.headers.authorization, engine.clock.now());
    if (p.type !== 'admin') {
      throw new AirlockError(
        'forbidden',
        'The admin API takes an admin token (adm_…); agent keys and reviewer tokens cannot use it.',
      );
    }
    return p.admin;
  }

  app.get(`${ADMIN_API}/freezes`, async (request) => {
    await adminOnly(request);
    const data = (await describeFreezes(engine.store)).map((f) => freezeObject(f, f.agent));
    return { object: 'list', data, has_more: false };
  });

  app.post(`${ADMIN_API}/freeze`, async (request) => {
    const admin = await adminOnly(request);
    const body = parse(FreezeRequest, request.body);
    const scope = await freezeScope(engine.store, body.agent);
    const freeze = await setFreeze(engine.store, scope, body.reason ?? null, `admin:${admin.name}`);
    engine.freezes.invalidate(); // this instance applies it at once; others within FREEZE_CACHE_MS
    return freezeObject(freeze, body.agent ?? null);
  });

  app.post(`${ADMIN_API}/unfreeze`, async (request) => {
    const admin = await adminOnly(request);
    const body = parse(UnfreezeRequest, request.body);
    const scope = await freezeScope(engine.store, body.agent);
    const lifted = await clearFreeze(engine.store, scope, `admin:${admin.name}`);
    engine.freezes.invalidate();
    return {
      object: 'unfreeze',
      scope: scope === ALL_AGENTS ? 'all' : 'agent',
      agent: body.agent ?? null,
      lifted,
    };
  });

  app.post<{ Params: { id: string } }>(`${ADMIN_API}/keys/:id/revoke`, async (request) => {
    await adminOnly(request);
    const { id } = request.params;
    if (!(await revokeAgentKey(engine.store, id))) {
      throw new AirlockError('resource_missing', `No active agent key '${id}'`, { param: 'id' });
    }
    return { object: 'agent_key', id, revoked: true };
  });
}
