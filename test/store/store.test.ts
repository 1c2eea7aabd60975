// The Store's own guarantees, run over both stores as Kysely's tests run over every dialect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type Submission } from '../../src/engine/engine.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { StoreUnavailable } from '../../src/errors.ts';
import { newId } from '../../src/ids.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { openPostgresStore } from '../../src/store/postgres/open.ts';
import type { Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import { cli } from '../helpers/process.ts';
import { tempDir } from '../helpers/stack.ts';
import { createPostgresDatabase, DIALECTS, openTestStore, type TestStore, unavailable } from './databases.ts';

const POLICY = `
default: review
rules:
  - "Allow if :kind: = 'payout.create' and :amount_in_usd: <= 500"
`;

function payout(agent: { id: string; name: string }, cents: number): Submission {
  const params = { amount: String(cents), currency: 'usd' };
  return {
    agent,
    method: 'POST',
    path: '/v1/payouts',
    params,
    stripeAccount: null,
    stripeVersion: null,
    idempotencyKey: null,
    classification: classify({ method: 'POST', path: '/v1/payouts', params }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`store on ${dialect}`, () => {
    let t: TestStore;
    let other: Store;
    let engine: Engine;
    let agent: { id: string; name: string };

    beforeAll(async () => {
      t = await openTestStore(dialect);
      other = await t.openAnother();
      engine = new Engine({ store: t.store, policy: parsePolicy(POLICY, 'test.yaml') });
      agent = await t.store.findOrCreateAgent(newId('agt'), 'payout-bot', new Date().toISOString());
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    it('returns bigint amounts and integer columns as JavaScript numbers', async () => {
      const { action } = await engine.submit(payout(agent, 4_000_000_000_07));
      const row = (await other.getAction(action.id))!;
      expect(row.amount).toBe(4_000_000_000_07);
      expect(typeof row.amount).toBe('number');
      expect(row.amount_usd).toBe(4_000_000_000.07);
      expect(row.attempts).toBe(0);
      expect(row.read).toBe(0);
      const head = await other.ledgerHead();
      expect(typeof head.seq).toBe('number');
    });

    it('runs a repeated open without re-applying migrations, keeping the data', async () => {
      const again = await t.openAnother();
      await again.ledger.sealPending();
      expect((await again.ledgerHead()).seq).toBeGreaterThan(0);
    });

    it('claims a pending action for exactly one of many concurrent dispatchers', async () => {
      const { action } = await engine.submit(payout(agent, 100_00));
      expect(action.status).toBe('pending');
      const now = new Date();
      const until = new Date(now.getTime() + 60_000).toISOString();
      const claims = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (i % 2 ? t.store : other).claimAction(action.id, `disp_${i}`, now.toISOString(), until),
        ),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      const row = (await t.store.getAction(action.id))!;
      expect(row.attempts).toBe(1);
      expect(row.lease_owner).toBe(`disp_${claims.indexOf(true)}`);
    });

    it('takes over an expired lease, but never a live one', async () => {
      const { action } = await engine.submit(payout(agent, 100_00));
      const t0 = Date.parse('2030-01-01T00:00:00Z');
      const iso = (ms: number) => new Date(t0 + ms).toISOString();
      expect(await t.store.claimAction(action.id, 'disp_dead', iso(0), iso(5_000))).toBe(true);
      expect(await other.claimAction(action.id, 'disp_live', iso(4_999), iso(10_000))).toBe(false);
      expect(await other.claimAction(action.id, 'disp_live', iso(5_001), iso(10_000))).toBe(true);
      // The dead owner can no longer release or reschedule what it lost.
      expect(await t.store.releaseLease(action.id, 'disp_dead', {})).toBe(false);
      expect((await t.store.getAction(action.id))!.lease_owner).toBe('disp_live');
    });

    it('keeps the ledger gapless and verifiable under concurrent transactions from two instances', async () => {
      await t.store.ledger.sealPending();
      const before = (await t.store.ledgerHead()).seq;
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 ? t.store : other).transaction(async (tx) => {
            for (let k = 0; k < 2; k++) {
              await tx.appendLedger({
                actionId: null,
                type: 'test.event',
                from: null,
                to: null,
                actor: `writer-${i}`,
                data: { i, k },
                at: new Date().toISOString(),
              });
            }
          }),
        ),
      );
      await t.store.ledger.sealPending();
      const head = await t.store.ledgerHead();
      expect(head.seq).toBe(before + 80);
      const events = await t.store.ledgerPage(before, 1000);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 80 }, (_, i) => before + i + 1));
      // A transaction's two events are adjacent: chained inline under one connection (SQLite), or sealed a whole
      // transaction at a time (PostgreSQL).
      for (let i = 0; i < events.length; i += 2) expect(events[i]!.actor).toBe(events[i + 1]!.actor);
      const report = await verifyLedger(t.store);
      expect(report.problems).toEqual([]);
    });

    it('rolls back a ledger event together with the change it records', async () => {
      await t.store.ledger.sealPending();
      const before = await t.store.ledgerHead();
      const failed = await t.store
        .transaction(async (tx) => {
          await tx.appendLedger({
            actionId: null,
            type: 'test.doomed',
            from: null,
            to: null,
            actor: 'test',
            data: {},
            at: new Date().toISOString(),
          });
          throw new Error('boom');
        })
        .catch((e: Error) => e.message);
      expect(failed).toBe('boom');
      await t.store.ledger.sealPending();
      expect(await t.store.ledgerHead()).toEqual(before);
    });

    it(
      dialect === 'postgres'
        ? 'runs one agent’s serialised sections one at a time across instances, other agents alongside'
        : 'runs serialised sections one at a time, every agent’s, each seeing what the one before wrote',
      async () => {
        const spans: { who: string; start: number; end: number; seen: number }[] = [];
        const section = (s: Store, agentId: string, who: string) =>
          s.serializeAgent(agentId, async (tx) => {
            const start = performance.now();
            // As a velocity window reads the agent's history: the rows the sections before this one wrote.
            const written = await tx.credentials.listAgents();
            const seen = written.filter((a) => a.name.startsWith(`${agentId}:`)).length;
            await sleep(25);
            await tx.findOrCreateAgent(newId('agt'), `${agentId}:${who}`, new Date().toISOString());
            spans.push({ who, start, end: performance.now(), seen });
          });
        const same = newId('agt');
        const another = newId('agt');
        await Promise.all([
          section(t.store, same, 'a1'),
          section(other, same, 'a2'),
          section(t.store, same, 'a3'),
          section(other, another, 'b1'),
        ]);
        const mine = spans.filter((s) => s.who.startsWith('a')).sort((x, y) => x.start - y.start);
        expect(mine).toHaveLength(3);
        expect(mine.map((s) => s.seen)).toEqual([0, 1, 2]);
        for (let i = 1; i < mine.length; i++) expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end);
        const b1 = spans.find((s) => s.who === 'b1')!;
        // On PostgreSQL another agent's lock is another lock. On SQLite every section is a group-commit job on
        // its connection's one transaction, and the file's write lock orders the connections: one at a time.
        if (dialect === 'postgres') expect(b1.start).toBeLessThan(mine[mine.length - 1]!.start);
        else for (const a of mine) expect(b1.start >= a.end || b1.end <= a.start).toBe(true);
      },
    );

    it(
      dialect === 'postgres'
        ? 'wakes listeners on another instance when a transaction commits, not when it rolls back'
        : 'has no cross-instance signal on SQLite: one process owns the file and wakes itself',
      async () => {
        const heard: string[] = [];
        const stop = other.onActionsReady((id) => heard.push(id));
        await other.actionsReadyListening();
        await t.store.transaction((tx) => tx.notifyActionReady('act_committed'));
        await t.store
          .transaction(async (tx) => {
            await tx.notifyActionReady('act_rolled_back');
            throw new Error('rollback');
          })
          .catch(() => {});
        await sleep(200);
        stop();
        expect(heard).toEqual(dialect === 'postgres' ? ['act_committed'] : []);
      },
    );

    it('applies migrations with `airlock migrate` once, then reports the schema up to date', async () => {
      const db = dialect === 'postgres' ? await createPostgresDatabase() : null;
      const env: Record<string, string> = db
        ? { DATABASE_URL: db.url }
        : { AIRLOCK_DATA: `${tempDir()}/migrate.db` };
      try {
        const dry = await cli(['migrate', '--dry-run', '--json'], env);
        expect(dry.code).toBe(0);
        const pending = JSON.parse(dry.stdout).pending as string[];
        expect(pending[0]).toBe('0001_core');
        const first = await cli(['migrate', '--json'], env);
        expect(first.code).toBe(0);
        expect(JSON.parse(first.stdout)).toEqual({ dialect, applied: pending });
        const second = await cli(['migrate', '--json'], env);
        expect(JSON.parse(second.stdout)).toEqual({ dialect, applied: [] });
      } finally {
        await db?.drop();
      }
    });
  });
}

describe.skipIf(unavailable('postgres'))('postgres store failing closed', () => {
  it('refuses to open with store_unavailable when no server answers', async () => {
    const err = await openPostgresStore('postgres://postgres@127.0.0.1:1/test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailable);
  });

  it('answers store_unavailable, inside and outside transactions, once the database is gone', async () => {
    const db = await createPostgresDatabase();
    const store = await openPostgresStore(db.url);
    try {
      await store.ping();
      await db.drop(); // terminates this store's connections too
      const outside = await store.getAction('act_x').catch((e: unknown) => e);
      expect(outside).toBeInstanceOf(StoreUnavailable);
      const inside = await store.transaction((tx) => tx.getAction('act_x')).catch((e: unknown) => e);
      expect(inside).toBeInstanceOf(StoreUnavailable);
    } finally {
      await store.close();
    }
  });
});
