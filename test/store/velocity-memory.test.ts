// The in-memory velocity aggregates against the database they stand in for: a store that keeps them and a second
// connection to the same SQLite file that scans rows must give the same totals, whatever commits, rolls back or
// arrives from another process.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COUNTED_STATUSES } from '../../src/engine/status.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { Status } from '../../src/store/status.ts';
import type { ActionRow, Store } from '../../src/store/store.ts';
import type { StripeEventRow } from '../../src/store/stripe-events.ts';
import type { VelocityQuery } from '../../src/store/velocity.ts';
import { actionRow } from '../helpers/action-row.ts';
import { rng } from '../helpers/random.ts';
import { tempDir } from '../helpers/stack.ts';

const NOW = Date.parse('2026-03-12T15:00:00Z');
const AGENTS = ['agt_a', 'agt_b', 'agt_c'];
const CUSTOMERS = ['cus_1', 'cus_2', null];
const ACCOUNTS = [null, 'acct_1'];
const KINDS = ['refund.create', 'payout.create', 'customer.delete', 'stripe.read'];
const WINDOWS_MS = [60_000, 3_600_000, 86_400_000, 90 * 86_400_000];
const MOVES: Partial<Record<Status, Status[]>> = {
  awaiting_approval: ['pending', 'rejected', 'expired', 'cancelled', 'blocked'],
  pending: ['completed', 'failed'],
};

const opened: Store[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

function row(id: string, at: number, pick: <T>(xs: readonly T[]) => T, random: () => number): ActionRow {
  const kind = pick(KINDS);
  return actionRow({
    id,
    status: pick(['awaiting_approval', 'pending', 'completed', 'blocked'] as const),
    kind,
    read: kind === 'stripe.read' ? 1 : 0,
    params: '{}',
    amount: 100,
    amount_usd: random() < 0.1 ? null : Math.round(random() * 100_000) / 100,
    agent_id: pick(AGENTS),
    customer: pick(CUSTOMERS),
    on_account: pick(ACCOUNTS),
    created_at: new Date(at).toISOString(),
  });
}

const CHARGES = ['ch_1', 'ch_2', 'ch_3'];

/** A Stripe event as the ingest stores it: money moved outside Airlock, by automation, by Airlock, or none. */
function event(
  id: string,
  at: number,
  pick: <T>(xs: readonly T[]) => T,
  random: () => number,
): StripeEventRow {
  const origin = pick(['outside', 'automation', 'airlock', 'none']);
  const dispute = random() < 0.15;
  return {
    id,
    type: dispute ? 'charge.dispute.created' : 'refund.created',
    // Stripe's seconds: the windows must read the same edge either way.
    created: Math.floor(at / 1000),
    livemode: 0,
    object_id: null,
    request_id: null,
    idempotency_key: null,
    origin,
    kind: origin === 'none' || random() < 0.1 ? null : pick(KINDS.filter((k) => k !== 'stripe.read')),
    amount: 100,
    currency: 'usd',
    amount_usd: random() < 0.1 ? null : Math.round(random() * 100_000) / 100,
    customer: pick(CUSTOMERS),
    charge: pick([...CHARGES, null]),
    account: pick(ACCOUNTS),
    action_id: null,
    expected: 0,
    via: 'webhook',
    payload: '{}',
    received_at: new Date(NOW).toISOString(),
    signed_at: null,
  };
}

async function pair(retainedMs = 90 * 86_400_000): Promise<{ memory: Store; scan: Store }> {
  const file = join(tempDir(), 'velocity.db');
  const memory = await openSqliteStore(file);
  const scan = await openSqliteStore(file, { migrate: false });
  opened.push(memory, scan);
  await memory.keepVelocityInMemory(COUNTED_STATUSES, () => NOW, retainedMs);
  return { memory, scan };
}

describe('in-memory velocity aggregates', () => {
  it('give the same totals as a scan of the rows and of outside Stripe events, and the same disputes, through commits, moves, re-valuations, rolled-back jobs, other processes and a widened retention', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      // Windows longer than what memory holds read the database; a policy reload widens what it holds.
      const { memory, scan } = await pair(pick(WINDOWS_MS));
      const ids: string[] = [];
      let n = 0;
      const queries = (): VelocityQuery[] =>
        Array.from({ length: 6 }, () => {
          const scope = pick(['agent', 'customer', 'account'] as const);
          const until = NOW - Math.floor(random() * 120_000);
          return {
            scope,
            subject: scope === 'agent' ? pick(AGENTS) : scope === 'customer' ? pick(CUSTOMERS) : null,
            account: scope === 'agent' ? null : pick(ACCOUNTS),
            kinds: random() < 0.3 ? 'writes' : [pick(KINDS), ...(random() < 0.3 ? [pick(KINDS)] : [])],
            statuses: COUNTED_STATUSES,
            since: new Date(until - pick(WINDOWS_MS)).toISOString(),
            until: new Date(until).toISOString(),
            excludeId: random() < 0.2 && ids.length > 0 ? pick(ids) : null,
          };
        });
      for (let step = 0; step < 40; step++) {
        if (step === 20) await memory.keepVelocityInMemory(COUNTED_STATUSES, () => NOW, pick(WINDOWS_MS));
        const roll = random();
        if (roll < 0.5) {
          // A batch of inserts and moves, one job of which may fail and roll back alone.
          await Promise.all(
            Array.from({ length: 1 + Math.floor(random() * 5) }, async () => {
              const fail = random() < 0.2;
              await memory
                .transaction(async (tx) => {
                  const id = `act_${seed}_${++n}`;
                  await tx.insertAction(
                    row(id, NOW - Math.floor(random() * 100 * 86_400_000 * random() ** 3), pick, random),
                  );
                  if (random() < 0.3) {
                    const at = NOW - Math.floor(random() * 100 * 86_400_000 * random() ** 3);
                    await tx.stripeEvents.insert(event(`evt_${seed}_${n}`, at, pick, random));
                  }
                  const other = ids.length > 0 ? pick(ids) : null;
                  const current = other ? await tx.getAction(other) : undefined;
                  const to = current ? MOVES[current.status as Status] : undefined;
                  if (current && to && random() < 0.5) {
                    // A re-valuation or a reviewer's modification, sometimes with the move.
                    const amount_usd = random() < 0.1 ? null : Math.round(random() * 100_000) / 100;
                    await tx.transitionAction(current.id, current.status as Status, pick(to), { amount_usd });
                  } else if (current && to) {
                    await tx.transitionAction(current.id, current.status as Status, pick(to), {});
                  } else if (current && random() < 0.5) {
                    await tx.updateActionFrom(current.id, current.status as Status, {
                      amount_usd: Math.round(random() * 100_000) / 100,
                    });
                  }
                  if (fail) throw new Error('rolled back on purpose');
                  ids.push(id);
                })
                .catch((err: Error) => {
                  if (err.message !== 'rolled back on purpose') throw err;
                });
            }),
          );
        } else if (roll < 0.6 && ids.length > 0) {
          // Another process (the CLI) moves an action: the aggregates must not answer from before it.
          const current = await scan.getAction(pick(ids));
          const to = current ? MOVES[current.status as Status] : undefined;
          if (current && to) await scan.transitionAction(current.id, current.status as Status, pick(to), {});
        } else if (roll < 0.7) {
          // Another process stores a Stripe event (the backfill CLI).
          const at = NOW - Math.floor(random() * 100 * 86_400_000 * random() ** 3);
          await scan.stripeEvents.insert(event(`evt_${seed}_cli_${++n}`, at, pick, random));
        }
        for (const charge of CHARGES) {
          expect(await memory.stripeEvents.disputed(charge), charge).toBe(
            await scan.stripeEvents.disputed(charge),
          );
        }
        for (const q of queries()) {
          expect(await memory.velocity.total(q), JSON.stringify(q)).toEqual(await scan.velocity.total(q));
        }
      }
      await memory.close();
      await scan.close();
      opened.length = 0;
    }
  });

  it('answer from memory again after another process committed, once rebuilt', async () => {
    const random = rng(99);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const { memory, scan } = await pair();
    const q: VelocityQuery = {
      scope: 'agent',
      subject: 'agt_a',
      kinds: 'writes',
      statuses: COUNTED_STATUSES,
      since: new Date(NOW - 86_400_000).toISOString(),
      until: new Date(NOW).toISOString(),
    };
    await scan.insertAction({
      ...row('act_cli', NOW - 1000, pick, random),
      agent_id: 'agt_a',
      read: 0,
      status: 'completed',
    });
    expect(memory.velocityInMemory).toBe(true);
    const answered = await memory.velocity.total(q);
    expect(answered).toEqual(await scan.velocity.total(q));
    // Memory built before the other process's commit would count 0. Whether the rebuild has finished by now
    // depends on the driver's scheduling (with AIRLOCK_SQLITE_WRITER=worker, the read waits behind it).
    expect(answered.count).toBe(1);
    // The rebuild runs as the next job of the writer; a transaction after it sees it done.
    await memory.transaction(async () => {});
    await memory.transaction(async () => {});
    expect(memory.velocityInMemory).toBe(true);
    await memory.insertAction({
      ...row('act_own', NOW - 500, pick, random),
      agent_id: 'agt_a',
      read: 0,
      status: 'completed',
    });
    expect(await memory.velocity.total(q)).toEqual({ count: 2, usd: expect.any(Number) });
    expect(await memory.velocity.total(q)).toEqual(await scan.velocity.total(q));
    expect(memory.velocityInMemory).toBe(true);
  });
});
