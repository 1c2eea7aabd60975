import { type Selectable, sql } from 'kysely';
import { sha256Hex } from '../ids.ts';
import { canonicalJson } from '../stripe/params.ts';
import { type Connection, shaped } from './connection.ts';
import { GENESIS_HASH } from './migrations.ts';
import type { LedgerTable } from './schema.ts';

/** A sealed event: what the chain, its verifiers and exports read. */
export type LedgerRow = Omit<Selectable<LedgerTable>, 'pos' | 'xid' | 'seq' | 'prev_hash' | 'hash'> & {
  seq: number;
  prev_hash: string;
  hash: string;
};

/** An event as an action's timeline shows it: on PostgreSQL seq, prev_hash and hash are null until sealed. */
export type LedgerEntry = Omit<Selectable<LedgerTable>, 'xid'>;

export interface LedgerEventInput {
  actionId: string | null;
  type: string;
  from: string | null;
  to: string | null;
  actor: string;
  data: Record<string, unknown>;
  at: string;
}

/** The hash covers every field of the event and the previous hash, so editing, reordering or deleting one breaks the chain. */
export function ledgerHash(prevHash: string, e: Omit<LedgerRow, 'hash' | 'prev_hash'>): string {
  return sha256Hex(
    `${prevHash}\n${canonicalJson({
      seq: e.seq,
      action_id: e.action_id,
      type: e.type,
      from: e.from_status,
      to: e.to_status,
      actor: e.actor,
      data: e.data,
      at: e.at,
    })}`,
  );
}

// What every event carries, sealed or not; pos and xid of an unsealed one come from the column defaults.
const UNSEALED_COLUMNS = [
  'action_id',
  'type',
  'from_status',
  'to_status',
  'actor',
  'data',
  'at',
] as const satisfies readonly (keyof LedgerEntry)[];

const LEDGER_COLUMNS = [
  'seq',
  ...UNSEALED_COLUMNS,
  'pos',
  'prev_hash',
  'hash',
] as const satisfies readonly (keyof LedgerEntry)[];

const SEALED_SELECTION = ['seq', ...UNSEALED_COLUMNS, 'prev_hash', 'hash'] as const;

/** Events sealed in one transaction: bounds the time the sealer holds its lock. */
const SEAL_BATCH = 2000;

interface Head {
  seq: number;
  hash: string;
}

/**
 * The hash-chained ledger and its head.
 *
 * On SQLite an event is chained as it is appended: one connection writes, so reading the head costs no lock. Within
 * one transaction the head is read once and written back once, at commit: the repository of a transaction's Store
 * carries it from event to event.
 *
 * On PostgreSQL an event is appended unsealed (seq, prev_hash and hash null) with its insertion id (pos) and its
 * transaction's id (xid), and a sealer chains it after commit (`seal`). Appending thus locks nothing that another
 * transaction waits for; the head row is written by the sealer alone. docs/architecture.md ("The ledger") says why
 * no committed event is lost between commit and seal.
 */
export class LedgerRepository {
  #head: Head | null = null;
  #dirty = false;
  /** Whether this transaction appended unsealed events: after its commit the sealer has work. */
  appendedUnsealed = false;

  constructor(readonly c: Connection) {}

  /** Appends events in order with one statement. Must run inside a transaction, with the change they record. */
  async append(events: LedgerEventInput[]): Promise<void> {
    if (this.c.dialect === 'postgres') return this.#appendUnsealed(events);
    let head = this.#head;
    head ??= await this.c.db
      .selectFrom('ledger_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const rows: (LedgerRow & { pos: number })[] = [];
    for (const e of events) {
      const row: Omit<LedgerRow, 'hash' | 'prev_hash'> = {
        seq: head.seq + 1,
        action_id: e.actionId,
        type: e.type,
        from_status: e.from,
        to_status: e.to,
        actor: e.actor,
        data: JSON.stringify(e.data),
        at: e.at,
      };
      const hash = ledgerHash(head.hash, row);
      rows.push({ ...row, pos: row.seq, prev_hash: head.hash, hash });
      head = { seq: row.seq, hash };
    }
    await shaped(
      this.c,
      `insert ledger x${rows.length}`,
      () => this.c.db.insertInto('ledger').values(rows),
      rows.flatMap((r) => LEDGER_COLUMNS.map((c) => r[c])),
    );
    const { seq, hash } = head;
    if (this.c.db.isTransaction) {
      this.#head = { seq, hash };
      this.#dirty = true;
    } else {
      await this.c.db.updateTable('ledger_head').set({ seq, hash }).where('id', '=', 1).execute();
    }
  }

  async #appendUnsealed(events: LedgerEventInput[]): Promise<void> {
    const rows = events.map((e) => ({
      action_id: e.actionId,
      type: e.type,
      from_status: e.from,
      to_status: e.to,
      actor: e.actor,
      data: JSON.stringify(e.data),
      at: e.at,
    }));
    await shaped(
      this.c,
      `insert unsealed ledger x${rows.length}`,
      () => this.c.db.insertInto('ledger').values(rows),
      rows.flatMap((r) => UNSEALED_COLUMNS.map((c) => r[c])),
    );
    this.appendedUnsealed = true;
  }

  /** Where the chain ends in this transaction, so a batch can undo a failed job's events from it. */
  mark(): unknown {
    return { head: this.#head, dirty: this.#dirty };
  }

  restore(mark: unknown): void {
    const m = mark as { head: Head | null; dirty: boolean };
    this.#head = m.head;
    this.#dirty = m.dirty;
  }

  /** Writes the chain's new end; the store's transaction() calls it before it commits. */
  async flushHead(): Promise<void> {
    if (!this.#dirty || !this.#head) return;
    const { seq, hash } = this.#head;
    await this.c.db.updateTable('ledger_head').set({ seq, hash }).where('id', '=', 1).execute();
    this.#dirty = false;
  }

  /**
   * PostgreSQL: chains the committed events that wait for it, in batches, and returns how many it sealed; null when
   * `wait` is false and another sealer (this instance's or another's) holds the sealer's lock. With `wait` it queues
   * for that lock: what a reader calls to see every event committed before it asked. A no-op on SQLite.
   */
  async seal(opts: { wait: boolean }): Promise<number | null> {
    if (this.c.dialect !== 'postgres') return 0;
    if (this.c.db.isTransaction) throw new Error('the ledger is sealed outside any other transaction');
    let sealed = 0;
    for (;;) {
      const batch = await this.#sealBatch(opts.wait);
      if (batch === null) return sealed > 0 ? sealed : null;
      sealed += batch.sealed;
      if (!batch.more) return sealed;
    }
  }

  /** Seals every event committed so far (see `seal`); resolves with how many it sealed. */
  async sealPending(): Promise<number> {
    return (await this.seal({ wait: true })) ?? 0;
  }

  async #sealBatch(wait: boolean): Promise<{ sealed: number; more: boolean } | null> {
    // READ COMMITTED whatever the server's default: each statement below must see what the sealers before this
    // one committed while it waited for the lock.
    return this.c.db
      .transaction()
      .setIsolationLevel('read committed')
      .execute(async (trx) => {
        // One sealer at a time across instances. A sealer that finds the lock taken leaves the work to its holder,
        // whose next round (at the latest its next interval) takes what committed after its snapshot. The head
        // row's lock serialises sealers with any writer that chains inline (an instance not yet upgraded).
        const key = sql`hashtextextended('airlock.ledger_sealer', 0)`;
        if (wait) {
          await sql`select pg_advisory_xact_lock(${key})`.execute(trx);
        } else {
          const { rows } = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${key}) as ok`.execute(
            trx,
          );
          if (!rows[0]?.ok) return null;
        }
        const row = await trx
          .selectFrom('ledger_head')
          .select(['seq', 'hash', sql<string | null>`unsealed_from::text`.as('unsealed_from')])
          .where('id', '=', 1)
          .forUpdate()
          .executeTakeFirstOrThrow();
        let head = { seq: row.seq, hash: row.hash };
        // The oldest transaction still running now. Any event this round cannot see is from a transaction running at
        // its snapshot or begun later, so its id is at least this (the snapshot below is later, and xmin only grows).
        const { rows: now } = await sql<{
          xmin: string;
        }>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`.execute(trx);
        const xmin = now[0]!.xmin;
        // Every committed event still unsealed: committed rows are visible to this statement's snapshot, and one
        // that commits after it stays unsealed for the next round (docs/architecture.md, "The ledger"). Whole
        // transactions in xid order, each one's events in the order written, so a transaction's events stay adjacent.
        // Ordered by the column, not the text alias: in the partial index's order, so a sealer reads the queue's head
        // instead of every row left in the index by earlier seals (32 ms after 20,000 refunds, against 1 ms).
        // From the floor the last complete round left: every event still unsealed has an id at least that.
        const from = row.unsealed_from === null ? sql`` : sql`and xid >= ${row.unsealed_from}::xid8`;
        const { rows } = await sql<LedgerEntry & { xid: string }>`
        select pos, xid::text as xid, action_id, type, from_status, to_status, actor, data, at from ledger
        where seq is null ${from} order by ledger.xid, pos limit ${SEAL_BATCH}`.execute(trx);
        const pending = wholeTransactions(rows);
        const more = rows.length === SEAL_BATCH;
        if (pending.length === 0) {
          // Nothing visible was left, so nothing unsealed is older than xmin: raise the floor.
          if (!more)
            await trx.updateTable('ledger_head').set({ unsealed_from: xmin }).where('id', '=', 1).execute();
          return { sealed: 0, more: false };
        }
        const pos: number[] = [];
        const seqs: number[] = [];
        const prevs: string[] = [];
        const hashes: string[] = [];
        for (const e of pending) {
          const seq = head.seq + 1;
          const hash = ledgerHash(head.hash, { ...e, seq });
          pos.push(e.pos);
          seqs.push(seq);
          prevs.push(head.hash);
          hashes.push(hash);
          head = { seq, hash };
        }
        const result = await sql`
        update ledger as l set seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
        from (select unnest(${pos}::bigint[]) as pos, unnest(${seqs}::bigint[]) as seq,
                     unnest(${prevs}::text[]) as prev_hash, unnest(${hashes}::text[]) as hash) as v
        where l.pos = v.pos and l.seq is null`.execute(trx);
        // Sealers are serialised, so a row read unsealed above is still unsealed; anything else is a bug, and the
        // chain must not be written around it.
        if (Number(result.numAffectedRows ?? 0n) !== pending.length) {
          throw new Error(`sealed ${result.numAffectedRows} of ${pending.length} ledger events; rolled back`);
        }
        // A round that sealed every event it could see leaves xmin as the floor; one cut short by the batch limit
        // leaves the floor as it was.
        await trx
          .updateTable('ledger_head')
          .set(more ? head : { ...head, unsealed_from: xmin })
          .where('id', '=', 1)
          .execute();
        return { sealed: pending.length, more };
      });
  }

  /** The action's events, sealed or not, in the order they were written. */
  async forAction(actionId: string): Promise<LedgerEntry[]> {
    return this.c.db
      .selectFrom('ledger')
      .select(['pos', ...SEALED_SELECTION])
      .where('action_id', '=', actionId)
      .orderBy('pos')
      .execute();
  }

  /** Sealed events after `afterSeq`, oldest first. */
  async page(afterSeq: number, limit: number): Promise<LedgerRow[]> {
    return (await this.c.db
      .selectFrom('ledger')
      .select(SEALED_SELECTION)
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute()) as LedgerRow[];
  }

  /** The end of the sealed chain. */
  async head(): Promise<Head> {
    const head = await this.c.db
      .selectFrom('ledger_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirst();
    return head ?? { seq: 0, hash: GENESIS_HASH };
  }

  /** The first event recorded at or after `at` (ISO 8601 UTC); null when there is none. A scan: exports are rare. */
  async firstSince(at: string): Promise<number | null> {
    const row = await this.c.db
      .selectFrom('ledger')
      .select((eb) => eb.fn.min('seq').as('seq'))
      .where('at', '>=', at)
      .executeTakeFirst();
    return row?.seq === null || row?.seq === undefined ? null : Number(row.seq);
  }

  /** The hash of event `seq`, or undefined when it is not stored. */
  async hashOf(seq: number): Promise<string | undefined> {
    const row = await this.c.db.selectFrom('ledger').select('hash').where('seq', '=', seq).executeTakeFirst();
    return row?.hash ?? undefined;
  }
}

/**
 * A full batch may end inside a transaction: leave that one's events for the next batch, where they come first
 * unless a transaction with a lower xid commits in between. A transaction larger than a batch is sealed in parts.
 */
function wholeTransactions<E extends { xid: string }>(rows: E[]): E[] {
  if (rows.length < SEAL_BATCH) return rows;
  const last = rows[rows.length - 1]!.xid;
  const whole = rows.filter((e) => e.xid !== last);
  return whole.length > 0 ? whole : rows;
}
