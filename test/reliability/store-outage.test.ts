// Guarantee 5 under real outages: PostgreSQL stopped mid-traffic, and SQLite on a disk that fills up. Writes are
// refused with a Stripe-shaped 503 and nothing is forwarded; once the store is back, Airlock recovers without a
// restart and every action is there exactly once.
import { join } from 'node:path';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.ts';
import {
  exactlyOnce,
  type LogicalRefund,
  mountSmallDisk,
  type PrivatePostgres,
  privatePostgresProblem,
  RefundTraffic,
  type SmallDisk,
  smallDiskProblem,
  startPrivatePostgres,
} from '../helpers/outage.ts';
import { cli } from '../helpers/process.ts';
import { rejection, type Stack, startStack, stripeAt } from '../helpers/stack.ts';
import { actions as allActions } from '../helpers/store-reads.ts';

const pgProblem = privatePostgresProblem();
const diskProblem = smallDiskProblem();
for (const [what, problem] of [
  ['THE POSTGRESQL OUTAGE TEST (a private cluster made with initdb and pg_ctl)', pgProblem],
  ['THE SQLITE DISK-FULL TEST (a small tmpfs mounted for the test)', diskProblem],
] as const) {
  if (problem) console.warn(`\n${'!'.repeat(100)}\n!! SKIPPING ${what}: ${problem}\n${'!'.repeat(100)}\n`);
}

const skipped = (problem: string | null) => (problem ? ` (SKIPPED: ${problem})` : '');

// How long the sandbox holds the answers of the refunds in flight when the outage begins.
const HOLD_MS = 5_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(25);
  }
}

interface ActionSnapshot {
  id: string;
  status: string;
  kind: string;
  created_at: string;
  request_hash: string;
  response_body: string | null;
}

async function actions(store: Store): Promise<ActionSnapshot[]> {
  return (await allActions(store)).map(({ id, status, kind, created_at, request_hash, response_body }) => ({
    id,
    status,
    kind,
    created_at,
    request_hash,
    response_body,
  }));
}

/** A fresh charge in the sandbox, straight, not through Airlock. */
async function charge(stack: Stack): Promise<string> {
  return (await stack.direct.charges.create({ amount: 100_000, currency: 'usd', source: 'tok_visa' })).id;
}

function refundsOf(stack: Stack, chargeId: string): Record<string, unknown>[] {
  return stack.sandbox.list('refund').filter((r) => r['charge'] === chargeId);
}

function taggedWith(stack: Stack, actionId: string): Record<string, unknown>[] {
  return stack.sandbox
    .list('refund')
    .filter((r) => (r['metadata'] as Record<string, string> | undefined)?.['airlock_action'] === actionId);
}

/** What a Stripe-shaped refusal looks like to the official client. */
function expectStoreUnavailable(err: any): void {
  expect(err.statusCode).toBe(503);
  expect(err.type).toBe('StripeAPIError');
  expect(err.raw.type).toBe('api_error');
  expect(err.raw.code).toBe('store_unavailable');
  expect(err.message).toBe('The action store is unavailable; nothing was forwarded');
  expect(err.headers['stripe-should-retry']).toBe('false');
}

/**
 * Sets up what must survive the outage: a held refund approved just before it, whose upstream answer is still on its
 * way when the store goes, and an allowed refund in the same state. Returns once the sandbox has both requests.
 */
async function inFlightAtTheOutage(stack: Stack) {
  const agent = stripeAt(stack.agentKey, stack.airlock.port);
  const heldCharge = await charge(stack);
  const held = await rejection(agent.refunds.create({ charge: heldCharge, amount: 60_000 }));
  expect(held.raw.code).toBe('approval_required');
  const approvedId: string = held.raw.airlock_action;
  // The sandbox makes each refund, then holds its answer: the outage begins while Airlock waits for it.
  stack.sandbox.setFaults({ holdResponseMs: HOLD_MS, pathPrefix: '/v1/refunds' });
  const approve = await stack.api(`/api/actions/${approvedId}/approve`, { method: 'POST', body: {} });
  expect(approve.status).toBe(200);
  const allowedCharge = await charge(stack);
  const allowedKey = `in-flight-${allowedCharge}`;
  const allowed = rejection(
    agent.refunds.create({ charge: allowedCharge, amount: 100 }, { idempotencyKey: allowedKey }),
  );
  await until('both refunds to reach the sandbox', async () => {
    const seen = stack.sandbox.requests().filter((q) => q.method === 'POST' && q.path === '/v1/refunds');
    return (
      seen.some((q) => q.idempotencyKey === `airlock-${approvedId}`) &&
      seen.some((q) => q.params['charge'] === allowedCharge)
    );
  });
  stack.sandbox.clearFaults();
  return { approvedId, allowedCharge, allowedKey, allowed };
}

/** The checks after recovery that both stores share. */
async function expectRecovered(
  stack: Stack,
  traffic: RefundTraffic,
  before: ActionSnapshot[],
  window: { from: number; to: number },
  env: Record<string, string>,
) {
  // Completions a crashed database lost (relaxed commits) come back as pending and are done again, same key.
  const after = await until('every action to settle', async () => {
    const rows = await actions(stack.airlock.store);
    return rows.every((a) => a.status !== 'pending') && rows;
  });
  const byId = new Map(after.map((a) => [a.id, a]));
  // Every action recorded before the outage is intact; those finished then are unchanged.
  for (const a of before) {
    const now = byId.get(a.id);
    expect(now, a.id).toBeDefined();
    expect(now!.request_hash).toBe(a.request_hash);
    if (a.status === 'completed') expect(now).toEqual(a);
  }
  // Nothing was recorded while the store refused writes.
  const createdDuring = after.filter((a) => {
    const t = Date.parse(a.created_at);
    return t > window.from && t < window.to;
  });
  expect(createdDuring).toEqual([]);
  // Every refund the sandbox received during the outage belongs to an action recorded before it began.
  const forwardedDuring = stack.sandbox
    .requests()
    .filter((q) => q.method === 'POST' && q.path === '/v1/refunds' && q.at > window.from && q.at < window.to);
  for (const q of forwardedDuring) {
    const row = byId.get(q.idempotencyKey?.replace(/^airlock-/, '') ?? '');
    expect(
      row && Date.parse(row.created_at) < window.from,
      `${q.idempotencyKey} forwarded during the outage`,
    ).toBe(true);
  }
  const report = exactlyOnce(traffic.refunds, after, stack.sandbox.list('refund'), stack.sandbox.requests());
  expect(report).toEqual({
    upstreamRefunds: report.upstreamRefunds,
    untagged: 0,
    duplicates: 0,
    lost: 0,
    unledgered: 0,
    missingUpstream: 0,
  });
  expect(traffic.refunds.filter((r) => r.outcome === 'unfinished')).toEqual([]);
  const verify = await cli(['audit', 'verify', '--json'], env);
  expect(verify.stderr).toBe('');
  expect(verify.code).toBe(0);
  expect(JSON.parse(verify.stdout).ok).toBe(true);
}

/** Tries that began while the store was down. */
function triesDuring(refunds: LogicalRefund[], window: { from: number; to: number }) {
  return refunds.flatMap((r) => r.attempts).filter((a) => a.start > window.from && a.start < window.to);
}

async function firstWriteAfterRecovery(stack: Stack): Promise<Stripe.Refund> {
  const agent = stripeAt(stack.agentKey, stack.airlock.port);
  const chargeId = await charge(stack);
  const key = `recovery-${chargeId}`;
  return until('a write to succeed after the store returned', async () => {
    try {
      return await agent.refunds.create({ charge: chargeId, amount: 100 }, { idempotencyKey: key });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 503) throw err;
      return null;
    }
  });
}

describe.skipIf(pgProblem)(`PostgreSQL stopped mid-traffic${skipped(pgProblem)}`, () => {
  let cluster: PrivatePostgres;
  let stack: Stack;
  let forwarding: Stack;
  let env: Record<string, string>;

  beforeAll(async () => {
    cluster = await startPrivatePostgres();
    await cluster.createDatabase('airlock_refuse');
    await cluster.createDatabase('airlock_forward');
    env = { DATABASE_URL: cluster.url('airlock_refuse') };
    stack = await startStack(env);
    // A second instance, on its own database of the same cluster, that forwards reads while the store is down.
    forwarding = await startStack({
      DATABASE_URL: cluster.url('airlock_forward'),
      AIRLOCK_STORE_OUTAGE_READS: 'forward',
    });
  }, 60_000);

  afterAll(async () => {
    await cluster?.start().catch(() => {});
    await stack?.close();
    await forwarding?.close();
    await cluster?.close();
  });

  it('refuses writes with a Stripe-shaped 503, forwards nothing, and recovers without a restart', async () => {
    const traffic = new RefundTraffic({
      airlockPort: stack.airlock.port,
      agentKey: stack.agentKey,
      direct: stack.direct,
      agents: 3,
    });
    const agent = stripeAt(stack.agentKey, stack.airlock.port);
    const probeCharges = await Promise.all([charge(stack), charge(stack), charge(stack)]);
    const readCharge = await charge(stack);
    const forwardingAgent = stripeAt(forwarding.agentKey, forwarding.airlock.port);
    const forwardingCharge = (
      await forwarding.direct.charges.create({ amount: 5000, currency: 'usd', source: 'tok_visa' })
    ).id;
    // Warms the forwarding instance's key cache: a key is checked against the store at most every 10 s.
    await forwardingAgent.charges.retrieve(forwardingCharge);
    const held = await rejection(agent.refunds.create({ charge: await charge(stack), amount: 70_000 }));
    // Agents are under way, and two refunds are upstream awaiting their answers, when the store goes.
    const inFlight = await inFlightAtTheOutage(stack);
    traffic.start();
    await until(
      'traffic to make refunds',
      async () => traffic.refunds.filter((r) => r.outcome === 'refunded').length >= 6,
    );
    const before = await actions(stack.airlock.store);

    const stopping = Date.now();
    await cluster.stop();
    const from = Date.now();

    // The refund allowed just before is recorded and upstream: the agent hears it is in progress, not "nothing
    // was forwarded".
    const inProgress = await inFlight.allowed;
    expect(inProgress.statusCode).toBe(409);
    expect(inProgress.raw.code).toBe('action_in_progress');
    expect(inProgress.raw.airlock_action).toMatch(/^act_/);

    // Money-moving writes: a refund, a held-sized refund, a payout. Each is refused and never forwarded.
    for (const [n, attempt] of [
      () => agent.refunds.create({ charge: probeCharges[0]!, amount: 100 }),
      () => agent.refunds.create({ charge: probeCharges[1]!, amount: 80_000 }),
      () => agent.payouts.create({ amount: 5000, currency: 'usd' }),
      () => agent.refunds.create({ charge: probeCharges[2]!, amount: 100 }, { idempotencyKey: 'probe' }),
    ].entries()) {
      const err = await rejection(attempt());
      expectStoreUnavailable(err);
      expect(err.raw.airlock_action, `probe ${n}`).toBeUndefined();
    }
    // Reads: refused by default, forwarded by the instance configured to.
    expectStoreUnavailable(await rejection(agent.charges.retrieve(readCharge)));
    expect((await forwardingAgent.charges.retrieve(forwardingCharge)).id).toBe(forwardingCharge);
    expectStoreUnavailable(
      await rejection(forwardingAgent.refunds.create({ charge: forwardingCharge, amount: 100 })),
    );
    // The review side cannot read or decide either, and readiness says why.
    const list = await stack.api('/api/actions');
    expect(list.status).toBe(503);
    expect(list.body.error.code).toBe('store_unavailable');
    const approve = await stack.api(`/api/actions/${held.raw.airlock_action}/approve`, {
      method: 'POST',
      body: {},
    });
    expect(approve.status).toBe(503);
    expect(approve.body.error.code).toBe('store_unavailable');
    const ready = await fetch(`${stack.airlock.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: { store: { ok: boolean } } }).checks.store.ok).toBe(false);
    // The answers held through the outage arrive; their completions cannot be recorded yet.
    await sleep(Math.max(0, stopping + HOLD_MS + 500 - Date.now()));
    await sleep(500);

    const to = Date.now();
    await cluster.start();
    const recovered = await firstWriteAfterRecovery(stack);
    expect(recovered.object).toBe('refund');
    expect((await fetch(`${stack.airlock.url}/readyz`)).status).toBe(200);
    expect((await stack.api('/api/actions')).status).toBe(200);
    expect((await forwardingAgent.refunds.create({ charge: forwardingCharge, amount: 100 })).object).toBe(
      'refund',
    );

    // The approved refund whose dispatch the outage cut short is finished by the same running server, once.
    const approved = await until('the approved refund to complete', async () => {
      const res = await stack.api(`/api/actions/${inFlight.approvedId}`);
      return res.body.status === 'completed' ? res.body : null;
    });
    const tagged = taggedWith(stack, inFlight.approvedId);
    expect(tagged).toHaveLength(1);
    expect(approved.response_body.id).toBe(tagged[0]!['id']);
    // The allowed one: the agent's retry with the same key gets Stripe's one refund.
    const retried = await agent.refunds.create(
      { charge: inFlight.allowedCharge, amount: 100 },
      { idempotencyKey: inFlight.allowedKey },
    );
    expect(retried.metadata?.['airlock_action']).toBe(inProgress.raw.airlock_action);
    expect(refundsOf(stack, inFlight.allowedCharge).map((r) => r['id'])).toEqual([retried.id]);
    // Refused requests were never forwarded, not even later.
    for (const c of probeCharges) expect(refundsOf(stack, c)).toEqual([]);
    expect(stack.sandbox.requests().filter((q) => q.path === '/v1/payouts')).toEqual([]);

    await traffic.stop();
    const during = triesDuring(traffic.refunds, { from, to });
    expect(during.length).toBeGreaterThan(0);
    for (const t of during)
      expect(t).toMatchObject({
        status: 503,
        code: 'store_unavailable',
        type: 'api_error',
        shouldRetry: 'false',
      });
    await expectRecovered(stack, traffic, before, { from, to }, env);
  }, 90_000);
});

describe.skipIf(diskProblem)(`SQLite on a disk that fills up${skipped(diskProblem)}`, () => {
  let disk: SmallDisk;
  let stack: Stack;
  let env: Record<string, string>;

  beforeAll(async () => {
    disk = mountSmallDisk(64);
    env = { AIRLOCK_DATA: join(disk.dir, 'airlock.db') };
    stack = await startStack(env);
  });

  afterAll(async () => {
    disk?.drain();
    await stack?.close();
    disk?.close();
  });

  it('refuses writes with a Stripe-shaped 503 while SQLite gets SQLITE_FULL, and recovers when space returns', async () => {
    const traffic = new RefundTraffic({
      airlockPort: stack.airlock.port,
      agentKey: stack.agentKey,
      direct: stack.direct,
      agents: 3,
    });
    const agent = stripeAt(stack.agentKey, stack.airlock.port);
    const probeCharges = await Promise.all([charge(stack), charge(stack)]);
    const readCharge = await charge(stack);
    // Agents are under way, and two refunds are upstream awaiting their answers, when the store goes.
    const inFlight = await inFlightAtTheOutage(stack);
    traffic.start();
    await until(
      'traffic to make refunds',
      async () => traffic.refunds.filter((r) => r.outcome === 'refunded').length >= 6,
    );
    const before = await actions(stack.airlock.store);

    const filling = Date.now();
    disk.fill(env['AIRLOCK_DATA']!);
    const from = Date.now();

    for (const attempt of [
      () => agent.refunds.create({ charge: probeCharges[0]!, amount: 100 }),
      () => agent.refunds.create({ charge: probeCharges[1]!, amount: 80_000 }),
      () => agent.payouts.create({ amount: 5000, currency: 'usd' }),
    ]) {
      expectStoreUnavailable(await rejection(attempt()));
    }
    // A full disk can still be read: reads write nothing, so they are served even with store_outage.reads: refuse.
    expect((await agent.charges.retrieve(readCharge)).id).toBe(readCharge);
    await sleep(Math.max(0, filling + HOLD_MS + 500 - Date.now()));
    // The allowed refund recorded before the disk filled: upstream, its completion not recorded.
    const inProgress = await inFlight.allowed;
    expect(inProgress.statusCode).toBe(409);
    expect(inProgress.raw.code).toBe('action_in_progress');
    await sleep(500);

    const to = Date.now();
    disk.drain();
    const recovered = await firstWriteAfterRecovery(stack);
    expect(recovered.object).toBe('refund');

    const approved = await until('the approved refund to complete', async () => {
      const res = await stack.api(`/api/actions/${inFlight.approvedId}`);
      return res.body.status === 'completed' ? res.body : null;
    });
    const tagged = taggedWith(stack, inFlight.approvedId);
    expect(tagged).toHaveLength(1);
    expect(approved.response_body.id).toBe(tagged[0]!['id']);
    const retried = await agent.refunds.create(
      { charge: inFlight.allowedCharge, amount: 100 },
      { idempotencyKey: inFlight.allowedKey },
    );
    expect(refundsOf(stack, inFlight.allowedCharge).map((r) => r['id'])).toEqual([retried.id]);
    for (const c of probeCharges) expect(refundsOf(stack, c)).toEqual([]);

    await traffic.stop();
    // The probes above prove the refusal; the agents' own tries need not include one. A full disk can still be
    // read, so an agent whose refund was upstream when the disk filled is told 409 until space returns, and a write
    // that fits in WAL pages SQLite already holds still commits (and is checked below as recorded, like any other).
    const during = triesDuring(traffic.refunds, { from, to });
    for (const t of during) expect([200, 409, 503]).toContain(t.status);
    for (const t of during.filter((t) => t.status === 503))
      expect(t).toMatchObject({ code: 'store_unavailable', type: 'api_error', shouldRetry: 'false' });
    for (const t of during.filter((t) => t.status === 409)) expect(t.code).toBe('action_in_progress');
    await expectRecovered(stack, traffic, before, { from, to }, env);
  }, 90_000);
});
