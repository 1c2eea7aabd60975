// Credential expiry and admin tokens, end to end: keys made with the CLI, used with the official `stripe` client
// against a real Airlock on a real SQLite file, with the admin API pressing the kill switch.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authenticate,
  createAdminToken,
  createAgentKey,
  createReviewer,
  listAgentKeys,
  revokeAdminToken,
  revokeAgentKey,
  revokeReviewerToken,
} from '../../src/auth/credentials.ts';
import { ALL_AGENTS, clearFreeze, describeFreezes, freezeScope, setFreeze } from '../../src/engine/freeze.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { cli } from '../helpers/process.ts';
import { charge, rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';
import { DIALECTS, openTestStore, unavailable } from '../store/databases.ts';

/** A clock the test moves forward; Airlock decides expiry on it. */
class MovableClock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

let stack: Stack;
const clock = new MovableClock();
const env = () => ({ AIRLOCK_DATA: join(stack.dir, 'airlock.db') });

beforeAll(async () => {
  stack = await startStack({}, clock);
});
afterAll(async () => {
  await stack?.close();
});

async function admin(path: string, token: string, body?: unknown) {
  const res = await fetch(`${stack.airlock.url}/api/admin${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('credential expiry', () => {
  it('creates keys, reviewer tokens and admin tokens with --expires-in, and refuses a duration it cannot read', async () => {
    const before = Date.now();
    const key = await cli(['keys', 'create', 'expiring-bot', '--expires-in', '30d', '--json'], env());
    expect(key.code).toBe(0);
    const created = JSON.parse(key.stdout);
    expect(created.key).toMatch(/^ak_\w{40}$/);
    const days = (Date.parse(created.expires_at) - before) / 86_400_000;
    expect(days).toBeGreaterThanOrEqual(30);
    expect(days).toBeLessThan(30.1);

    const reviewer = await cli(
      ['reviewers', 'create', '--email', 'temp@example.com', '--expires-in', '12h', '--json'],
      env(),
    );
    expect(reviewer.code).toBe(0);
    const token = JSON.parse(reviewer.stdout);
    expect(token.token).toMatch(/^rvw_/);
    expect(token.token_id).toMatch(/^rtk_/);
    expect(Date.parse(token.expires_at) - before).toBeGreaterThanOrEqual(12 * 3_600_000);

    const bad = await cli(['admins', 'create', 'ops', '--expires-in', 'soon'], env());
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--expires-in takes a positive duration such as 90m, 12h, 30d or 4w');

    // Listing shows the expiry and never the key or its hash.
    const list = await cli(['keys', 'list', '--json'], env());
    const row = JSON.parse(list.stdout).data.find((k: { id: string }) => k.id === created.id);
    expect(row).toMatchObject({ owner: 'expiring-bot', expires_at: created.expires_at, revoked_at: null });
    expect(list.stdout).not.toContain(created.key);
    expect(list.stdout).not.toContain('key_hash');
  }, 120_000);

  it('stops a cached agent key the moment it expires, on the proxy, before the 10 s cache would', async () => {
    const expiresAt = new Date(clock.now().getTime() + 3_600_000).toISOString();
    const { key } = await createAgentKey(stack.airlock.store, 'hourly-bot', { expiresAt });
    const agent = stripeAt(key, stack.airlock.port);
    const ch = await charge(stack, 10_000);
    // Used once: the proxy now holds the key in its cache.
    expect((await agent.balance.retrieve()).object).toBe('balance');
    clock.offsetMs += 2 * 3_600_000;
    try {
      const read = await rejection(agent.balance.retrieve());
      expect(read.type).toBe('StripeAuthenticationError');
      expect(read.statusCode).toBe(401);
      expect(read.code).toBe('api_key_expired');
      expect(read.message).toContain('Expired API Key provided');
      expect(read.message).toContain(expiresAt);
      const write = await rejection(agent.refunds.create({ charge: ch.id, amount: 1000 }));
      expect(write.code).toBe('api_key_expired');
      expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
    } finally {
      clock.offsetMs -= 2 * 3_600_000;
    }
    // Back before the expiry, the same key works again: the refusal came from the expiry, not from a revocation.
    expect((await agent.balance.retrieve()).object).toBe('balance');
  });

  it('refuses a reviewer token revoked with airlock reviewers revoke-token', async () => {
    const { token, token_id } = await createReviewer(stack.airlock.store, 'leaver@example.com');
    expect((await stack.api('/api/actions', { token })).status).toBe(200);
    expect((await cli(['reviewers', 'revoke-token', token_id], env())).code).toBe(0);
    const res = await stack.api('/api/actions', { token });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_api_key');
  }, 60_000);

  it('refuses an expired reviewer token on the review API with a 401 that says it expired', async () => {
    const expiresAt = new Date(clock.now().getTime() + 3_600_000).toISOString();
    const { token } = await createReviewer(stack.airlock.store, 'shift@example.com', { expiresAt });
    expect((await stack.api('/api/actions', { token })).status).toBe(200);
    clock.offsetMs += 2 * 3_600_000;
    try {
      const res = await stack.api('/api/actions', { token });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('api_key_expired');
      expect(res.body.error.message).toContain(`It expired at ${expiresAt}`);
    } finally {
      clock.offsetMs -= 2 * 3_600_000;
    }
  });
});

describe('admin tokens', () => {
  let adminToken: string;
  let adminId: string;

  beforeAll(async () => {
    const made = await cli(['admins', 'create', 'ops', '--json'], env());
    expect(made.code).toBe(0);
    ({ token: adminToken, id: adminId } = JSON.parse(made.stdout));
    expect(adminToken).toMatch(/^adm_\w{40}$/);
    expect(adminId).toMatch(/^atk_/);
  }, 60_000);

  it('freezes one agent through the admin API: its refund gets the frozen answer, another agent’s goes through', async () => {
    const other = stripeAt((await createAgentKey(stack.airlock.store, 'other-bot')).key, stack.airlock.port);
    const frozen = await admin('/freeze', adminToken, { agent: 'support-bot', reason: 'incident 7' });
    expect(frozen.status).toBe(200);
    expect(frozen.body).toMatchObject({
      object: 'freeze',
      scope: 'agent',
      agent: 'support-bot',
      reason: 'incident 7',
    });

    const ch = await charge(stack, 20_000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 1000 }));
    expect(err.type).toBe('StripePermissionError');
    expect(err.code).toBe('action_blocked');
    expect(err.message).toContain('money-out is frozen for this agent (incident 7)');
    const refund = await other.refunds.create({ charge: ch.id, amount: 1000 });
    expect(refund.status).toBe('succeeded');
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);

    const list = await admin('/freezes', adminToken);
    expect(list.body.data).toEqual([expect.objectContaining({ scope: 'agent', agent: 'support-bot' })]);

    const lifted = await admin('/unfreeze', adminToken, { agent: 'support-bot' });
    expect(lifted.body).toMatchObject({ object: 'unfreeze', agent: 'support-bot', lifted: true });
    expect((await stack.agent.refunds.create({ charge: ch.id, amount: 1000 })).status).toBe('succeeded');
    expect((await admin('/unfreeze', adminToken, { agent: 'support-bot' })).body.lifted).toBe(false);
  });

  it('freezes every agent and lifts it, and the ledger records who did both', async () => {
    expect((await admin('/freeze', adminToken, {})).status).toBe(200);
    const other = stripeAt((await createAgentKey(stack.airlock.store, 'third-bot')).key, stack.airlock.port);
    const err = await rejection(
      other.refunds.create({ charge: (await charge(stack, 5000)).id, amount: 100 }),
    );
    expect(err.code).toBe('action_blocked');
    expect(err.message).toContain('money-out is frozen for every agent');
    // Reads still work while frozen.
    expect((await other.balance.retrieve()).object).toBe('balance');
    expect((await admin('/unfreeze', adminToken, {})).body).toMatchObject({ scope: 'all', lifted: true });

    const events = await ledger(stack.airlock.store, (e) => e.actor === 'admin:ops');
    expect(events.map((e) => e.type)).toEqual(['freeze.set', 'freeze.lifted', 'freeze.set', 'freeze.lifted']);
    expect(JSON.parse(events[2]!.data)).toEqual({ scope: '*', reason: null });
    expect((await verifyLedger(stack.airlock.store)).ok).toBe(true);
  });

  it('revokes an agent key through the admin API; the official client then gets an authentication error', async () => {
    const { id, key } = await createAgentKey(stack.airlock.store, 'leaky-bot');
    const res = await admin(`/keys/${id}/revoke`, adminToken, {});
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ object: 'agent_key', id, revoked: true });
    const err = await rejection(stripeAt(key, stack.airlock.port).balance.retrieve());
    expect(err.type).toBe('StripeAuthenticationError');
    expect(err.code).toBe('invalid_api_key');
    const again = await admin(`/keys/${id}/revoke`, adminToken, {});
    expect(again.status).toBe(404);
  });

  it('answers bad admin requests with specific 4xx errors', async () => {
    const unknownAgent = await admin('/freeze', adminToken, { agent: 'nobody' });
    expect(unknownAgent.status).toBe(404);
    expect(unknownAgent.body.error).toMatchObject({ code: 'resource_missing', param: 'agent' });
    const unknownField = await admin('/freeze', adminToken, { everyone: true });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.param).toBe('everyone');
    const longReason = await admin('/freeze', adminToken, { reason: 'x'.repeat(501) });
    expect(longReason.status).toBe(400);
    expect((await admin('/freezes', adminToken)).body.data).toEqual([]);
  });

  it('cannot move money or approve: the proxy and the review API refuse an admin token', async () => {
    const viaStripe = await rejection(stripeAt(adminToken, stack.airlock.port).balance.retrieve());
    expect(viaStripe.type).toBe('StripePermissionError');
    expect(viaStripe.message).toContain('Admin tokens cannot call the Stripe proxy');
    const held = await rejection(stack.agent.refunds.create({ charge: (await charge(stack, 90_000)).id }));
    expect(held.code).toBe('approval_required');
    const actionId = held.raw.airlock_action as string;
    const approve = await stack.api(`/api/actions/${actionId}/approve`, {
      method: 'POST',
      body: {},
      token: adminToken,
    });
    expect(approve.status).toBe(403);
    expect((await stack.airlock.engine.get(actionId)).status).toBe('awaiting_approval');
  });

  it('refuses the admin token once revoked with airlock admins revoke', async () => {
    expect((await cli(['admins', 'revoke', adminId], env())).code).toBe(0);
    const res = await admin('/freezes', adminToken);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_api_key');
    const list = JSON.parse((await cli(['admins', 'list', '--json'], env())).stdout);
    expect(list.data).toEqual([
      expect.objectContaining({ id: adminId, owner: 'ops', revoked_at: expect.any(String) }),
    ]);
  }, 60_000);
});

/** What authenticate() answers for a credential at a time: the principal's type, or the refusal's code. */
async function outcome(store: Stack['airlock']['store'], token: string, at: Date): Promise<string> {
  try {
    return (await authenticate(store, `Bearer ${token}`, at)).type;
  } catch (err) {
    return (err as { code: string }).code;
  }
}

describe.each(DIALECTS)('credentials and freezes on %s', (dialect) => {
  it.skipIf(unavailable(dialect))(
    'expires, revokes and records on this store as on the other',
    async () => {
      const t = await openTestStore(dialect);
      try {
        const { store } = t;
        const now = new Date();
        const later = new Date(now.getTime() + 2 * 3_600_000);
        const expiresAt = new Date(now.getTime() + 3_600_000).toISOString();
        const agent = await createAgentKey(store, 'bot', { expiresAt });
        const reviewer = await createReviewer(store, 'r@example.com', { expiresAt });
        const adminTok = await createAdminToken(store, 'ops', { expiresAt });
        const forever = await createAgentKey(store, 'bot');
        for (const token of [agent.key, reviewer.token, adminTok.token]) {
          expect(await outcome(store, token, later)).toBe('api_key_expired');
        }
        expect(await outcome(store, agent.key, now)).toBe('agent');
        expect(await outcome(store, reviewer.token, now)).toBe('reviewer');
        expect(await outcome(store, adminTok.token, now)).toBe('admin');
        expect(await outcome(store, forever.key, later)).toBe('agent');

        expect(await revokeAgentKey(store, forever.id)).toBe(true);
        expect(await revokeAgentKey(store, forever.id)).toBe(false);
        expect(await revokeReviewerToken(store, reviewer.token_id)).toBe(true);
        expect(await revokeAdminToken(store, adminTok.id)).toBe(true);
        for (const token of [forever.key, reviewer.token, adminTok.token]) {
          expect(await outcome(store, token, now)).toBe('invalid_api_key');
        }
        expect(await outcome(store, '', now)).toBe('authentication_required');
        const keys = await listAgentKeys(store);
        expect(keys.map((k) => k.id).sort()).toEqual([agent.id, forever.id].sort());
        expect(JSON.stringify(keys)).not.toContain(agent.key.slice(7));

        const scope = await freezeScope(store, 'bot');
        expect(scope).toBe(agent.agent_id);
        await setFreeze(store, scope, 'drill', 'admin:ops');
        await setFreeze(store, ALL_AGENTS, null);
        expect((await describeFreezes(store)).map((f) => f.agent).sort()).toEqual(['bot', null].sort());
        expect(await clearFreeze(store, scope, 'admin:ops')).toBe(true);
        expect(await clearFreeze(store, scope, 'admin:ops')).toBe(false);
        expect(await clearFreeze(store, ALL_AGENTS)).toBe(true);
        await expect(freezeScope(store, 'nobody')).rejects.toMatchObject({ code: 'resource_missing' });
        const events = (await ledger(store)).map(({ type, actor }) => ({ type, actor }));
        expect(events).toEqual([
          { type: 'freeze.set', actor: 'admin:ops' },
          { type: 'freeze.set', actor: 'cli' },
          { type: 'freeze.lifted', actor: 'admin:ops' },
          { type: 'freeze.lifted', actor: 'cli' },
        ]);
        expect(await verifyLedger(store)).toMatchObject({ ok: true, events: 4 });
      } finally {
        await t.cleanup();
      }
    },
    60_000,
  );
});
