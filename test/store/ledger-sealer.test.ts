// PostgreSQL's ledger sealer (src/store/ledger.ts, src/audit/sealer.ts): appends from two instances lock nothing the
// other waits for, and every committed event is sealed exactly once, in a chain that verifies against the digests
// signed while it was being sealed. Real PostgreSQL, two Stores on one database as two instances.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyStore } from '../../src/audit/audit.ts';
import { generateSigningKeyPair, loadSigningKey } from '../../src/audit/keys.ts';
import { LedgerSealer } from '../../src/audit/sealer.ts';
import { LedgerSigner } from '../../src/audit/signer.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import type { LedgerEventInput, Store } from '../../src/store/store.ts';
import { directSql, type Sql } from '../helpers/direct-sql.ts';
import { rng } from '../helpers/random.ts';
import { tempDir } from '../helpers/stack.ts';
import { openTestStore, type TestStore, unavailable } from './databases.ts';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function event(tag: string, k: number, actor: string): LedgerEventInput {
  return {
    actionId: null,
    type: 'test.sealed',
    from: null,
    to: null,
    actor,
    data: { tag, k },
    at: new Date().toISOString(),
  };
}

interface StoredEvent {
  pos: number;
  seq: number | null;
  actor: string;
  data: string;
}

describe.skipIf(unavailable('postgres'))('ledger sealer on postgres', () => {
  let t: TestStore;
  let a: Store;
  let b: Store;
  let db: Sql;
  const dir = tempDir();

  beforeAll(async () => {
    t = await openTestStore('postgres');
    a = t.store;
    b = await t.openAnother();
    db = await directSql(t.location);
  });
  afterAll(async () => {
    await db?.close();
    await t?.cleanup();
  });

  const unsealed = async () =>
    Number((await db.all<{ n: string }>('select count(*) as n from ledger where seq is null'))[0]!.n);

  it('lets another instance append and commit while a transaction that appended stays open', async () => {
    await a.ledger.sealPending();
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let appended!: () => void;
    const aAppended = new Promise<void>((r) => {
      appended = r;
    });
    const aDone = a.transaction(async (tx) => {
      await tx.appendLedger(event('open', 0, 'held'));
      appended();
      await held;
    });
    await aAppended;
    const bDone = b.transaction((tx) => tx.appendLedger(event('quick', 0, 'quick'))).then(() => 'committed');
    // Under the head row's lock B waited for A's commit, which waits for B here: it would time out.
    const outcome = await Promise.race([bDone, sleep(3_000).then(() => 'blocked')]);
    // B's committed event is sealed while A is still open: sealing waits for no running transaction.
    const sealedWhileOpen = outcome === 'committed' ? await b.ledger.sealPending() : null;
    const forB = await db.all<StoredEvent>(
      "select pos, seq, actor, data from ledger where actor in ('held', 'quick')",
    );
    // The floor the next sealer reads from stays at or below the open transaction's id, or its event would be lost.
    const [floor] = await db.all<{ f: string }>('select unsealed_from::text as f from ledger_head');
    release();
    await aDone;
    await bDone;
    expect(outcome).toBe('committed');
    expect(sealedWhileOpen).toBe(1);
    expect(floor?.f).toMatch(/^\d+$/);
    const [heldEvent] = await db.all<{ x: string }>("select xid::text as x from ledger where actor = 'held'");
    expect(BigInt(floor!.f) <= BigInt(heldEvent!.x)).toBe(true);
    expect(forB.map((e) => [e.actor, e.seq === null])).toEqual([['quick', false]]);

    // A inserted first (lower pos) and committed last: the chain takes it after B's. Chain order is seal order.
    await a.ledger.sealPending();
    const rows = await db.all<StoredEvent>(
      "select pos, seq, actor, data from ledger where actor in ('held', 'quick') order by seq",
    );
    expect(rows.map((e) => e.actor)).toEqual(['quick', 'held']);
    expect(Number(rows[1]!.pos)).toBeLessThan(Number(rows[0]!.pos));
    expect((await verifyLedger(a)).problems).toEqual([]);
    // With nothing running, a complete round raises the floor past every event written so far.
    const [raised] = await db.all<{ above: boolean }>(
      'select (select unsealed_from from ledger_head) > (select max(xid) from ledger) as above',
    );
    expect(raised?.above).toBe(true);
  });

  it('seals every committed event exactly once and no rolled-back one, under concurrent instances and sealers', async () => {
    const pair = generateSigningKeyPair();
    const publicKey = join(dir, 'sealer.pub.pem');
    writeFileSync(publicKey, pair.publicPem);
    const key = loadSigningKey({ signing_key: pair.privatePem })!;
    const files = [join(dir, 'a.jsonl'), join(dir, 'b.jsonl')];

    for (const seed of [1, 2, 3]) {
      const random = rng(seed);
      // Both instances run a sealer, with intervals short enough to race each other and the writers, and a
      // digest signer that seals before each digest: every digest must sign a sealed head.
      const sealers = [a, b].map((s) =>
        new LedgerSealer(s, silent, { intervalMs: 5, debounceMs: 1 }).start(),
      );
      const signers = [a, b].map((s, i) =>
        new LedgerSigner({
          store: s,
          key,
          digestFile: files[i]!,
          webhookUrl: null,
          intervalMs: 15,
          idleIntervalMs: 3_600_000,
          log: silent,
        }).start(),
      );

      const committed = new Map<string, number>();
      const rolledBack = new Set<string>();
      const writes = Array.from({ length: 80 }, async (_, i) => {
        const store = random() < 0.5 ? a : b;
        const r = random();
        const rollback = r < 0.2;
        const long = r >= 0.1 && r < 0.4;
        const n = 1 + Math.floor(random() * 3);
        const startIn = Math.floor(random() * 150);
        const holdFor = long ? 100 + Math.floor(random() * 250) : 0;
        const tag = `s${seed}-t${i}`;
        await sleep(startIn);
        try {
          await store.transaction(async (tx) => {
            for (let k = 0; k < n; k++) {
              await tx.appendLedger(event(tag, k, tag));
              // A long transaction inserts early (low pos, low xid) and commits after later ones.
              if (k === 0 && holdFor) await sleep(holdFor);
            }
            if (rollback) throw new Error('rolled back');
          });
          committed.set(tag, n);
        } catch (err) {
          if ((err as Error).message !== 'rolled back') throw err;
          rolledBack.add(tag);
        }
      });
      await Promise.all(writes);
      expect(rolledBack.size).toBeGreaterThan(0);

      // The running sealers alone seal everything committed, within a few of their intervals.
      const deadline = Date.now() + 5_000;
      while ((await unsealed()) > 0 && Date.now() < deadline) await sleep(10);
      expect(await unsealed()).toBe(0);
      for (const s of sealers) await s.close();
      for (const s of signers) await s.close();

      const rows = await db.all<StoredEvent>(
        "select pos, seq, actor, data from ledger where type = 'test.sealed' and actor like ? order by seq",
        [`s${seed}-%`],
      );
      // Every committed event once, with all its events; no rolled-back one.
      const seen = new Map<string, number[]>();
      for (const e of rows) {
        const { tag, k } = JSON.parse(e.data) as { tag: string; k: number };
        seen.set(tag, [...(seen.get(tag) ?? []), k]);
      }
      expect(new Map([...seen].map(([tag, ks]) => [tag, ks.length]))).toEqual(committed);
      for (const [, ks] of seen) expect(ks).toEqual([...ks].sort((x, y) => x - y));
      for (const tag of rolledBack) expect(seen.has(tag)).toBe(false);
      // A transaction's events are adjacent in the chain.
      const runs = rows.map((e) => e.actor).filter((actor, i, all) => i === 0 || all[i - 1] !== actor);
      expect(new Set(runs).size).toBe(runs.length);
    }

    // seq is dense from 1 to the head over the whole ledger, the chain verifies, and so do the digests signed
    // while it was being sealed, from the database and from both instances' files.
    const all = await db.all<{ seq: number }>('select seq from ledger order by seq');
    const head = await a.ledgerHead();
    expect(all.map((e) => Number(e.seq))).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    expect((await verifyLedger(a)).problems).toEqual([]);
    const report = await verifyStore(b, { digestFiles: files, publicKeys: [publicKey] });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.digests?.covered_through).toBe(head.seq);
  });
});
