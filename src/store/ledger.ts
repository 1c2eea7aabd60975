import type { Selectable } from 'kysely';
import { sha256Hex } from '../ids.ts';
import { canonicalJson } from '../stripe/params.ts';
import { type Connection, shaped } from './connection.ts';
import { GENESIS_HASH } from './migrations.ts';
import type { LedgerTable } from './schema.ts';

export type LedgerRow = Selectable<LedgerTable>;

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

const LEDGER_COLUMNS = [
  'seq',
  'action_id',
  'type',
  'from_status',
  'to_status',
  'actor',
  'data',
  'at',
  'prev_hash',
  'hash',
] as const satisfies readonly (keyof LedgerRow)[];

interface Head {
  seq: number;
  hash: string;
}

/**
 * The hash-chained ledger and its head. Within one transaction the head is read (and on PostgreSQL locked) once
 * and written back once, at commit: the repository of a transaction's Store carries it from event to event.
 */
export class LedgerRepository {
  #head: Head | null = null;
  #dirty = false;

  constructor(readonly c: Connection) {}

  /** Appends events in order with one statement. Must run inside a transaction, with the change they record. */
  async append(events: LedgerEventInput[]): Promise<void> {
    let head = this.#head;
    if (!head) {
      let headQuery = this.c.db.selectFrom('ledger_head').select(['seq', 'hash']).where('id', '=', 1);
      if (this.c.dialect === 'postgres') headQuery = headQuery.forUpdate();
      head = await headQuery.executeTakeFirstOrThrow();
    }
    const rows: LedgerRow[] = [];
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
      rows.push({ ...row, prev_hash: head.hash, hash });
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

  async forAction(actionId: string): Promise<LedgerRow[]> {
    return this.c.db
      .selectFrom('ledger')
      .selectAll()
      .where('action_id', '=', actionId)
      .orderBy('seq')
      .execute();
  }

  /** Events after `afterSeq`, oldest first. */
  async page(afterSeq: number, limit: number): Promise<LedgerRow[]> {
    return this.c.db
      .selectFrom('ledger')
      .selectAll()
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute();
  }

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
    return row?.hash;
  }
}
