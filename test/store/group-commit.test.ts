// The SQLite group commit (src/store/sqlite/group-commit.ts), reached the way the engine reaches it: Store.transaction on
// a store opened by openSqliteStore. Physical commits are counted from the WAL file itself.
import { readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { StoreUnavailable } from '../../src/errors.ts';
import { newId } from '../../src/ids.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import { Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/stack.ts';
import { connectionOf, openTestStore, type TestStore } from './databases.ts';

/**
 * Commit records in the WAL since the last truncating checkpoint: every committed write transaction ends in one
 * frame whose header carries the database size after the commit; all other frames carry zero there.
 */
function walCommits(dbFile: string): number {
  let wal: Buffer;
  try {
    wal = readFileSync(`${dbFile}-wal`);
  } catch {
    return 0;
  }
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    // Frames left over from before a WAL restart carry the old salts and are not part of the log.
    if (wal.readUInt32BE(at + 8) !== salt1 || wal.readUInt32BE(at + 12) !== salt2) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits++;
  }
  return commits;
}

/** Empties the WAL so walCommits counts from zero. */
async function truncateWal(store: Store): Promise<void> {
  const { rows } = await sql<{
    busy: number;
    log: number;
  }>`pragma wal_checkpoint(truncate)`.execute(connectionOf(store));
  expect(rows[0]).toMatchObject({ busy: 0, log: 0 });
}

/** The connection's synchronous level as SQLite will apply it at the next commit: 1 NORMAL, 2 FULL. */
async function synchronousLevel(store: Store): Promise<number> {
  const { rows } = await sql<{ synchronous: number }>`pragma synchronous`.execute(connectionOf(store));
  return rows[0]!.synchronous;
}

/** A job's typical work: a row and the ledger event that records it. */
async function addAgent(tx: Store, name: string): Promise<string> {
  const { id } = await tx.findOrCreateAgent(newId('agt'), name, new Date().toISOString());
  await tx.appendLedger({
    actionId: null,
    type: 'test.agent_added',
    from: null,
    to: null,
    actor: name,
    data: { id },
    at: new Date().toISOString(),
  });
  return id;
}

const FULL_B = `full-b-${'x'.repeat(200_000)}`;

/**
 * A batch whose second job needs more pages than the file may grow to (max_page_count, a real SQLITE_FULL). For a
 * single-row insert SQLite then rolls back the whole transaction, not just the statement.
 */
async function batchOnFullDisk(store: Store): Promise<PromiseSettledResult<string>[]> {
  const pages = await sql<{ page_count: number }>`pragma page_count`.execute(connectionOf(store));
  const limit = await sql<{ max_page_count: number }>`pragma max_page_count`.execute(connectionOf(store));
  await sql.raw(`pragma max_page_count = ${pages.rows[0]!.page_count}`).execute(connectionOf(store));
  try {
    return await Promise.allSettled([
      store.transaction((tx) => addAgent(tx, 'full-a')),
      store.transaction((tx) => addAgent(tx, FULL_B)),
    ]);
  } finally {
    await sql.raw(`pragma max_page_count = ${limit.rows[0]!.max_page_count}`).execute(connectionOf(store));
  }
}

// Every case runs over both SQLite writers: the connection on the event loop (the default) and in a worker thread
// (AIRLOCK_SQLITE_WRITER=worker, src/store/sqlite/worker.ts), which must keep the same batches, order and failures.
describe.each([
  ['event loop', ''],
  ['worker thread', 'worker'],
])('with the SQLite writer on the %s', (_where, writer) => {
  const before = process.env['AIRLOCK_SQLITE_WRITER'];
  beforeAll(() => {
    process.env['AIRLOCK_SQLITE_WRITER'] = writer;
  });
  afterAll(() => {
    if (before === undefined) delete process.env['AIRLOCK_SQLITE_WRITER'];
    else process.env['AIRLOCK_SQLITE_WRITER'] = before;
  });

  describe('SQLite group commit on a file store', () => {
    let t: TestStore;
    let store: Store;
    /** A second connection to the same file: it sees only what has been committed. */
    let reader: Database.Database;

    const committedAgents = (names: string[]): string[] =>
      (
        reader
          .prepare(`select name from agents where name in (${names.map(() => '?').join(',')}) order by name`)
          .all(...names) as { name: string }[]
      ).map((r) => r.name);

    beforeEach(async () => {
      t = await openTestStore('sqlite');
      store = t.store;
      reader = new Database(t.location, { readonly: true });
      expect(store.fullSync).toBe(true);
    });
    afterEach(async () => {
      reader?.close();
      await t?.cleanup();
    });

    it('commits each transaction on its own when each waits for the previous one', async () => {
      await truncateWal(store);
      for (const name of ['seq-1', 'seq-2', 'seq-3']) await store.transaction((tx) => addAgent(tx, name));
      expect(walCommits(t.location)).toBe(3);
      expect(committedAgents(['seq-1', 'seq-2', 'seq-3'])).toEqual(['seq-1', 'seq-2', 'seq-3']);
    });

    it('shares one physical commit among transactions submitted in the same turn, and stores all their writes', async () => {
      const names = ['same-1', 'same-2', 'same-3', 'same-4', 'same-5'];
      const before = (await store.ledgerHead()).seq;
      await truncateWal(store);
      let seenFromOutsideDuringLast: string[] | undefined;
      const ids = await Promise.all(
        names.map((name, i) =>
          store.transaction(async (tx) => {
            const id = await addAgent(tx, name);
            // The earlier jobs have finished, yet none of them is committed: they are in this job's transaction.
            if (i === names.length - 1) seenFromOutsideDuringLast = committedAgents(names);
            return id;
          }),
        ),
      );
      expect(seenFromOutsideDuringLast).toEqual([]);
      expect(walCommits(t.location)).toBe(1);
      expect(committedAgents(names)).toEqual(names);
      for (const [i, id] of ids.entries()) expect(await store.getAgent(id)).toEqual({ id, name: names[i] });
      expect((await store.ledgerHead()).seq).toBe(before + names.length);
      expect((await verifyLedger(store)).problems).toEqual([]);
    });

    it('rolls back only the failing job of a batch, its ledger events included, and rejects it with its own error', async () => {
      const before = await store.ledgerHead();
      await truncateWal(store);
      const refusal = new Error('job b refuses');
      const [a, b, c] = await Promise.allSettled([
        store.transaction((tx) => addAgent(tx, 'batch-a')),
        store.transaction(async (tx) => {
          // Moves the batch's ledger head two events on, then fails: both must be undone, head included.
          await addAgent(tx, 'batch-b');
          await tx.appendLedger({
            actionId: null,
            type: 'test.doomed',
            from: null,
            to: null,
            actor: 'batch-b',
            data: {},
            at: new Date().toISOString(),
          });
          throw refusal;
        }),
        store.transaction((tx) => addAgent(tx, 'batch-c')),
      ]);
      expect(a.status).toBe('fulfilled');
      expect(b.status).toBe('rejected');
      expect((b as PromiseRejectedResult).reason).toBe(refusal);
      expect(c.status).toBe('fulfilled');

      // One batch, one commit: the failure did not split it.
      expect(walCommits(t.location)).toBe(1);
      expect(committedAgents(['batch-a', 'batch-b', 'batch-c'])).toEqual(['batch-a', 'batch-c']);

      // c's event follows a's directly: the head b had moved was put back, so the chain has no gap.
      const events = await store.ledgerPage(before.seq, 100);
      expect(events.map((e) => [e.seq, e.actor])).toEqual([
        [before.seq + 1, 'batch-a'],
        [before.seq + 2, 'batch-c'],
      ]);
      expect(events[0]!.prev_hash).toBe(before.hash);
      expect(events[1]!.prev_hash).toBe(events[0]!.hash);
      expect(await store.ledgerHead()).toEqual({ seq: before.seq + 2, hash: events[1]!.hash });
      const report = await verifyLedger(store);
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
    });

    it('rejects every job of a batch whose COMMIT fails, stores none of their writes, and commits later transactions', async () => {
      const before = await store.ledgerHead();
      await truncateWal(store);
      const missingAgent = newId('agt');
      const settled = await Promise.allSettled([
        store.transaction((tx) => addAgent(tx, 'doomed-a')),
        store.transaction(async (tx) => {
          // A deferred foreign key is checked at COMMIT only (foreign_keys is on): this job's own statements and its
          // savepoint release succeed, and the physical COMMIT of the whole batch fails.
          await sql`pragma defer_foreign_keys = on`.execute(connectionOf(tx));
          await tx.insertAgentKey({
            id: newId('key'),
            agent_id: missingAgent,
            key_hash: newId('hash'),
            prefix: 'ak_test',
            created_at: new Date().toISOString(),
          });
          await addAgent(tx, 'doomed-b');
        }),
        store.transaction((tx) => addAgent(tx, 'doomed-c')),
      ]);
      // Each job's own work succeeded; only COMMIT failed, and no job is acknowledged.
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
      const reasons = settled.map((s) => (s as PromiseRejectedResult).reason as Error & { code?: string });
      for (const reason of reasons) {
        expect(reason.code).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
        expect(reason.message).toMatch(/FOREIGN KEY constraint failed/);
      }

      expect(walCommits(t.location)).toBe(0);
      expect(committedAgents(['doomed-a', 'doomed-b', 'doomed-c'])).toEqual([]);
      expect(
        reader.prepare('select count(*) as n from agent_keys where agent_id = ?').get(missingAgent),
      ).toEqual({
        n: 0,
      });
      expect(await store.ledgerHead()).toEqual(before);
      expect(await store.ledgerPage(before.seq, 100)).toEqual([]);

      // The next batch starts from the stored head, not from the one the failed batch carried.
      const id = await store.transaction((tx) => addAgent(tx, 'after-failure'));
      expect(await store.getAgent(id)).toEqual({ id, name: 'after-failure' });
      expect(committedAgents(['after-failure'])).toEqual(['after-failure']);
      expect(walCommits(t.location)).toBe(1);
      const events = await store.ledgerPage(before.seq, 100);
      expect(events.map((e) => [e.seq, e.actor, e.prev_hash])).toEqual([
        [before.seq + 1, 'after-failure', before.hash],
      ]);
      expect((await verifyLedger(store)).problems).toEqual([]);
    });

    it('rejects every job of a batch SQLite abandoned on a full disk and stores none of their writes', async () => {
      const before = await store.ledgerHead();
      const settled = await batchOnFullDisk(store);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
      expect(committedAgents(['full-a', FULL_B])).toEqual([]);
      expect(await store.ledgerHead()).toEqual(before);
      const id = await store.transaction((tx) => addAgent(tx, 'after-full'));
      expect(await store.getAgent(id)).toEqual({ id, name: 'after-full' });
      expect((await verifyLedger(store)).problems).toEqual([]);
    });

    it('reports a full disk inside a batch as StoreUnavailable caused by SQLITE_FULL, not as a lost savepoint', async () => {
      const settled = await batchOnFullDisk(store);
      for (const s of settled) {
        expect(s.status).toBe('rejected');
        const reason = (s as PromiseRejectedResult).reason as Error;
        expect(reason).toBeInstanceOf(StoreUnavailable);
        expect((reason.cause as { code?: string }).code).toBe('SQLITE_FULL');
      }
    });
  });

  describe('SQLite group commit: durable and relaxed batches', () => {
    let store: Store;
    const job = (name: string) => async (tx: Store) => {
      await addAgent(tx, name);
      return synchronousLevel(tx);
    };

    beforeEach(async () => {
      store = await openSqliteStore(':memory:');
      // Relaxed batches lower the level only on a store opened at FULL.
      expect(store.fullSync).toBe(true);
    });
    afterEach(async () => {
      await store?.close();
    });

    it('commits a batch at synchronous=FULL when any transaction in it is durable, relaxed ones included', async () => {
      const levels = await Promise.all([
        store.transaction(job('mixed-relaxed-1'), { durable: false }),
        store.transaction(job('mixed-durable')),
        store.transaction(job('mixed-relaxed-2'), { durable: false }),
      ]);
      expect(levels).toEqual([2, 2, 2]);
    });

    it('keeps a durable transaction arriving during a relaxed batch out of it and commits it at FULL next', async () => {
      let durable: Promise<number> | undefined;
      let relaxedLater: Promise<number> | undefined;
      const first = await store.transaction(
        async (tx) => {
          const level = await job('relaxed-1')(tx);
          // Both arrive while this relaxed batch is open; only the relaxed one may join it.
          durable = store.transaction(job('durable'));
          relaxedLater = store.transaction(job('relaxed-2'), { durable: false });
          return level;
        },
        { durable: false },
      );
      // The level cannot change inside a transaction, so NORMAL and FULL mean two physical commits.
      expect(first).toBe(1);
      expect(await relaxedLater).toBe(1);
      expect(await durable).toBe(2);
      const names = await store.credentials.listAgents();
      expect(names.map((r) => r.name)).toEqual(['durable', 'relaxed-1', 'relaxed-2']);
      // The connection is back at FULL for whatever comes next.
      expect(await synchronousLevel(store)).toBe(2);
    });
  });

  describe('SQLite group commit with the WAL synced off the event loop (file store)', () => {
    let t: TestStore;
    let reader: Database.Database;
    const committed = (name: string): boolean =>
      reader.prepare('select 1 from agents where name = ?').get(name) !== undefined;

    beforeEach(async () => {
      t = await openTestStore('sqlite');
      reader = new Database(t.location, { readonly: true });
    });
    afterEach(async () => {
      reader?.close();
      await t?.cleanup();
    });

    const writeAndLevel = (name: string) => async (tx: Store) => {
      await addAgent(tx, name);
      return synchronousLevel(tx);
    };

    it('commits every batch at synchronous=NORMAL, durable ones included, and leaves the connection at FULL', async () => {
      const levels = await Promise.all([
        t.store.transaction(writeAndLevel('n-durable')),
        t.store.transaction(writeAndLevel('n-relaxed'), {
          durable: false,
        }),
      ]);
      expect(levels).toEqual([1, 1]);
      expect(await synchronousLevel(t.store)).toBe(2);
      expect(committed('n-durable') && committed('n-relaxed')).toBe(true);
    });

    /**
     * A store on the same file whose WAL sync, a real fdatasync of the -wal file, waits until the test lets it run
     * (or fails it, standing in for the disk reporting an I/O error, which cannot be caused here).
     */
    function heldSync() {
      const calls: { release: () => void; fail: (err: Error) => void }[] = [];
      const syncWal = {
        async sync() {
          await new Promise<void>((release, fail) => calls.push({ release, fail }));
          const wal = await open(`${t.location}-wal`, 'r');
          await wal.datasync().finally(() => wal.close());
        },
        close() {},
      };
      return { store: new Store(connectionOf(t.store), 'sqlite', null, true, syncWal), calls };
    }
    const turn = () => new Promise((r) => setImmediate(r));

    it('acknowledges a durable transaction only after a WAL fdatasync that began after its commit, a relaxed one at commit', async () => {
      const { store, calls } = heldSync();
      const acked: string[] = [];
      const durable = store.transaction((tx) => addAgent(tx, 'h-durable')).then(() => acked.push('durable'));
      const relaxed = store
        .transaction((tx) => addAgent(tx, 'h-relaxed'), { durable: false })
        .then(() => acked.push('relaxed'));
      await relaxed;
      for (let i = 0; i < 5; i++) await turn();
      // Both are committed; only the relaxed one is acknowledged while the sync is held.
      expect(committed('h-durable') && committed('h-relaxed')).toBe(true);
      expect(calls).toHaveLength(1);
      expect(acked).toEqual(['relaxed']);
      calls[0]!.release();
      await durable;
      expect(acked).toEqual(['relaxed', 'durable']);
    });

    it('acknowledges a transaction committed while an fdatasync runs only after the next one', async () => {
      const { store, calls } = heldSync();
      const acked: string[] = [];
      const first = store.transaction((tx) => addAgent(tx, 'first')).then(() => acked.push('first'));
      while (calls.length < 1) await turn();
      const second = store.transaction((tx) => addAgent(tx, 'second')).then(() => acked.push('second'));
      // Committed while the first sync is held (a worker-thread writer takes a few turns more to get there).
      while (!committed('second')) await turn();
      calls[0]!.release();
      await first;
      for (let i = 0; i < 5; i++) await turn();
      // The first sync began before the second commit, so it cannot vouch for it.
      expect(acked).toEqual(['first']);
      expect(calls).toHaveLength(2);
      calls[1]!.release();
      await second;
      expect(acked).toEqual(['first', 'second']);
    });

    it('refuses every write after an fdatasync fails, and rejects what waited for it with store_unavailable', async () => {
      const { store, calls } = heldSync();
      const waiting = store
        .transaction((tx) => addAgent(tx, 'waiting'))
        .catch((e: { code?: string }) => e.code);
      while (calls.length < 1) await turn();
      calls[0]!.fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      expect(await waiting).toBe('store_unavailable');
      const later = await store
        .transaction((tx) => addAgent(tx, 'later'))
        .catch((e: Error & { code?: string }) => e);
      expect((later as { code?: string }).code).toBe('store_unavailable');
      expect((later as Error).message).toMatch(/same Idempotency-Key/);
      expect(committed('later')).toBe(false);
    });
  });

  describe('SQLite WAL checkpoints in the background', () => {
    it('copies committed pages into the database file from a worker thread, the serving connection never checkpointing small WALs', async () => {
      const dir = tempDir();
      const file = join(dir, 'airlock.db');
      const store = await openSqliteStore(file, { backgroundCheckpoints: true });
      try {
        const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(
          connectionOf(store),
        );
        expect(rows[0]!.wal_autocheckpoint).toBe(10_000);
        const before = statSync(file).size;
        // About 2 MB: 500 pages, far below the serving connection's own threshold of 10,000.
        await store.transaction(async (tx) => {
          for (let i = 0; i < 40; i++) await addAgent(tx, `bulk-${i}-${'x'.repeat(50_000)}`);
        });
        expect(statSync(`${file}-wal`).size).toBeGreaterThan(2_000_000);
        // Only a checkpoint moves pages from the WAL into the database file; the worker runs one every 500 ms.
        const deadline = Date.now() + 20_000;
        while (statSync(file).size - before < 2_000_000 && Date.now() < deadline) await sleep(100);
        expect(statSync(file).size - before).toBeGreaterThan(2_000_000);
        expect((await verifyLedger(store)).problems).toEqual([]);
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
