// PostgreSQL's velocity windows come from per-minute buckets kept in the database plus a scan of the window's two
// partial edge minutes. Whatever happened to the actions, a window must total exactly what a scan of the rows does.
import fc from 'fast-check';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COUNTED_STATUSES } from '../../src/engine/status.ts';
import type { ActionPatch, ActionRow } from '../../src/store/actions.ts';
import { STATUSES, type Status } from '../../src/store/status.ts';
import type { VelocityQuery } from '../../src/store/velocity.ts';
import { BUCKETED_STATUSES, rebuildBuckets } from '../../src/store/velocity-buckets.ts';
import { actionRow } from '../helpers/action-row.ts';
import { connectionOf, openTestStore, type TestStore, unavailable } from './databases.ts';

const BASE = Date.parse('2026-03-01T10:00:00.000Z');
const MINUTE = 60_000;
const SPAN = 3 * 60 * MINUTE;
const AGENTS = ['agt_a', 'agt_b', 'agt_c'];
const CUSTOMERS = ['cus_1', 'cus_2'];
const ACCOUNTS = [null, 'acct_1', 'acct_2', ''];
const KINDS = ['refund.create', 'payout.create', 'customer.read'];

/** A time in the three hours, often on a minute boundary or a millisecond either side of one. */
const time = fc
  .oneof(
    fc.integer({ min: 0, max: SPAN }),
    fc.integer({ min: 0, max: SPAN / MINUTE }).map((m) => m * MINUTE),
    fc
      .tuple(fc.integer({ min: 1, max: SPAN / MINUTE - 1 }), fc.constantFrom(-1, 1))
      .map(([m, d]) => m * MINUTE + d),
  )
  .map((ms) => new Date(BASE + ms).toISOString());

/** Amounts as toUsd stores them: whole cents, or unknown. */
const amount = fc.option(
  fc.integer({ min: 0, max: 5_000_000 }).map((c) => Math.round(c) / 100),
  { freq: 5 },
);

const action = fc.record({
  agent_id: fc.option(fc.constantFrom(...AGENTS), { freq: 6 }),
  customer: fc.option(fc.constantFrom(...CUSTOMERS), { freq: 2 }),
  on_account: fc.constantFrom(...ACCOUNTS),
  kind: fc.constantFrom(...KINDS),
  read: fc.constantFrom(0, 1),
  amount_usd: amount,
  created_at: time,
  status: fc.constantFrom(...STATUSES),
});

/** An update of the i-th action: a transition (guarded by its current status) or a revaluation in place. */
const change = fc.record({
  index: fc.nat(),
  transition: fc.boolean(),
  to: fc.constantFrom(...STATUSES),
  patch: fc.oneof(
    fc.constant({}),
    fc.record({ amount_usd: amount }),
    fc.record({ amount_usd: amount, customer: fc.option(fc.constantFrom(...CUSTOMERS)) }),
    fc.record({ created_at: time, kind: fc.constantFrom(...KINDS) }),
  ),
  inTransaction: fc.boolean(),
});

const window = fc.record({
  scope: fc.constantFrom('agent', 'customer', 'account') as fc.Arbitrary<VelocityQuery['scope']>,
  agent: fc.constantFrom(...AGENTS),
  customer: fc.constantFrom(...CUSTOMERS),
  account: fc.constantFrom(...ACCOUNTS),
  kinds: fc.oneof(
    fc.constant('writes' as const),
    fc.array(fc.constantFrom(...KINDS), { minLength: 1, maxLength: 4 }),
  ),
  a: time,
  b: time,
  exclude: fc.option(fc.nat(), { freq: 2 }),
});

describe.skipIf(unavailable('postgres'))('velocity buckets on PostgreSQL', () => {
  let t: TestStore;
  beforeAll(async () => {
    t = await openTestStore('postgres');
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  async function reset(): Promise<void> {
    const db = connectionOf(t.store);
    await sql`delete from actions`.execute(db);
    await sql`delete from velocity_minutes`.execute(db);
  }

  /** Every bucket that holds something, in key order. */
  async function buckets(): Promise<unknown[]> {
    const { rows } =
      await sql`select scope, subject, account, minute, kind, read, shard, n::text, usd_cents::text
      from velocity_minutes where n <> 0 or usd_cents <> 0
      order by scope, subject, account, minute, kind, read, shard`.execute(connectionOf(t.store));
    return rows;
  }

  it('counts the lifecycle’s counted statuses', () => {
    expect([...BUCKETED_STATUSES].sort()).toEqual([...COUNTED_STATUSES].sort());
  });

  it('totals every window exactly as a scan of the actions does', async () => {
    let answered = 0;
    let asked = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { minLength: 1, maxLength: 40 }),
        fc.array(change, { maxLength: 15 }),
        fc.array(window, { minLength: 1, maxLength: 25 }),
        async (actions, changes, windows) => {
          await reset();
          const rows: ActionRow[] = actions.map((a) => actionRow({ ...a, status: a.status as Status }));
          for (const row of rows) await t.store.actions.insert(row);
          for (const ch of changes) {
            const row = rows[ch.index % rows.length]!;
            const patch = { ...ch.patch, updated_at: new Date(BASE).toISOString() } as ActionPatch;
            const run = async (store: typeof t.store) => {
              if (ch.transition) {
                const moved = await store.actions.transition(row.id, row.status, ch.to, patch);
                expect(moved).toBeDefined();
                Object.assign(row, patch, { status: ch.to });
              } else {
                expect(await store.actions.updateIn(row.id, row.status, patch)).toBe(true);
                Object.assign(row, patch);
              }
            };
            if (ch.inTransaction) await t.store.transaction(run);
            else await run(t.store);
          }
          for (const w of windows) {
            const [since, until] = w.a <= w.b ? [w.a, w.b] : [w.b, w.a];
            const q: VelocityQuery = {
              scope: w.scope,
              subject: w.scope === 'agent' ? w.agent : w.scope === 'customer' ? w.customer : null,
              account: w.account,
              kinds: w.kinds,
              statuses: COUNTED_STATUSES,
              since,
              until,
              excludeId: w.exclude === null ? null : (rows[w.exclude % rows.length]?.id ?? null),
            };
            const scanned = await t.store.velocity.scanTotal(q);
            const fromBuckets = await t.store.velocity.bucketTotal(q);
            asked++;
            if (fromBuckets) {
              answered++;
              expect(fromBuckets, JSON.stringify(q)).toEqual(scanned);
            }
            expect(await t.store.velocity.total(q)).toEqual(scanned);
          }
          // Kept one action at a time, the buckets are what summing the rows afresh gives.
          const kept = await buckets();
          await rebuildBuckets(connectionOf(t.store) as Kysely<unknown>);
          expect(await buckets()).toEqual(kept);
        },
      ),
      { numRuns: 60 },
    );
    // Most windows span a whole minute: the buckets, not the fallback scan, answered them.
    expect(answered / asked).toBeGreaterThan(0.5);
  }, 120_000);

  it('stays exact under concurrent decisions on several instances sharing customers and accounts', async () => {
    await reset();
    const instances = [t.store, await t.openAnother(), await t.openAnother()];
    await Promise.all(
      instances.flatMap((store, s) =>
        AGENTS.map(async (agent, g) => {
          for (let i = 0; i < 15; i++) {
            await store.serializeAgent(agent, (tx) =>
              tx.actions.insert(
                actionRow({
                  agent_id: agent,
                  customer: CUSTOMERS[i % 2]!,
                  on_account: ACCOUNTS[(i + g) % 3]!,
                  amount_usd: (s * 100 + g * 10 + i) / 4,
                  created_at: new Date(BASE + (i % 3) * MINUTE + s).toISOString(),
                }),
              ),
            );
          }
        }),
      ),
    );
    const kept = await buckets();
    await rebuildBuckets(connectionOf(t.store) as Kysely<unknown>);
    expect(await buckets()).toEqual(kept);
    for (const account of ACCOUNTS.slice(0, 3)) {
      const q: VelocityQuery = {
        scope: 'account',
        subject: null,
        account,
        kinds: 'writes',
        statuses: COUNTED_STATUSES,
        since: new Date(BASE).toISOString(),
        until: new Date(BASE + 10 * MINUTE).toISOString(),
      };
      const total = await t.store.velocity.bucketTotal(q);
      expect(total?.count).toBe(45);
      expect(total).toEqual(await t.store.velocity.scanTotal(q));
    }
  });

  it('backfills the buckets of actions stored before the migration', async () => {
    await reset();
    const db = connectionOf(t.store);
    for (let i = 0; i < 30; i++) {
      await t.store.actions.insert(
        actionRow({
          agent_id: AGENTS[i % 3]!,
          customer: i % 4 === 0 ? null : CUSTOMERS[i % 2]!,
          on_account: ACCOUNTS[i % 4]!,
          kind: KINDS[i % 3]!,
          read: i % 3 === 2 ? 1 : 0,
          amount_usd: i % 5 === 0 ? null : i * 10.01,
          status: STATUSES[i % STATUSES.length]!,
          created_at: new Date(BASE + i * 17_003).toISOString(),
        }),
      );
    }
    const kept = await buckets();
    expect(kept.length).toBeGreaterThan(5);
    // A database as it was before 0019: no buckets table, neither it nor any later migration applied.
    await sql`drop table velocity_minutes`.execute(db);
    await sql`alter table ledger_head drop column unsealed_from`.execute(db);
    await sql`delete from kysely_migration where name >= '0019'`.execute(db);
    expect(await t.store.migrate()).toEqual(['0019_velocity_minutes', '0020_ledger_unsealed_from']);
    expect(await buckets()).toEqual(kept);
  });

  it('takes a rolled-back action and transition out of the buckets with them', async () => {
    await reset();
    const at = new Date(BASE + 5 * MINUTE + 30_000).toISOString();
    const first = actionRow({ agent_id: 'agt_a', customer: 'cus_1', amount_usd: 12.5, created_at: at });
    await t.store.actions.insert(first);
    const kept = await buckets();
    expect(kept).toHaveLength(3);
    const q: VelocityQuery = {
      scope: 'agent',
      subject: 'agt_a',
      kinds: 'writes',
      statuses: COUNTED_STATUSES,
      since: new Date(BASE).toISOString(),
      until: new Date(BASE + 10 * MINUTE).toISOString(),
    };
    expect(await t.store.velocity.bucketTotal(q)).toEqual({ count: 1, usd: 12.5 });
    await expect(
      t.store.transaction(async (tx) => {
        await tx.actions.insert(
          actionRow({ agent_id: 'agt_a', customer: 'cus_1', amount_usd: 7, created_at: at }),
        );
        expect(await tx.velocity.bucketTotal(q)).toEqual({ count: 2, usd: 19.5 });
        expect(await tx.actions.transition(first.id, 'awaiting_approval', 'rejected', {})).toBeDefined();
        expect(await tx.velocity.bucketTotal(q)).toEqual({ count: 1, usd: 7 });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await buckets()).toEqual(kept);
    expect(await t.store.velocity.bucketTotal(q)).toEqual({ count: 1, usd: 12.5 });
  });
});
