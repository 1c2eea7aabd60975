import { GENESIS_HASH } from '../store/migrations.ts';
import { type LedgerRow, ledgerHash, type Store } from '../store/store.ts';

/** Stable names for what verification found; docs/audit.md says what each one means. */
export type LedgerProblemCode =
  | 'event_edited'
  | 'chain_broken'
  | 'events_missing'
  | 'head_mismatch'
  | 'tail_truncated'
  | 'ledger_rewritten'
  | 'ledger_rolled_back'
  | 'digest_missing'
  | 'digests_reordered'
  | 'digest_chain_broken'
  | 'digest_conflict'
  | 'digest_altered'
  | 'digest_unknown_key'
  | 'digest_malformed'
  | 'export_incomplete';

export interface LedgerProblem {
  code: LedgerProblemCode;
  seq: number | null;
  actionId: string | null;
  type: string | null;
  /** The digest the problem is about, if any. */
  digest?: number | undefined;
  problem: string;
  /** For events_missing: the first and last missing seq. */
  missing?: [number, number] | undefined;
}

export interface LedgerReport {
  ok: boolean;
  events: number;
  headSeq: number;
  problems: LedgerProblem[];
}

/**
 * Walks a chain of events in seq order: recomputes each hash, checks each link and that seq has no gaps. It holds no
 * I/O, so events from the database and from an offline export are checked the same way. `start` is where the chain
 * picks up: the genesis for a whole ledger, the event before the first one for an export.
 */
export class ChainWalk {
  readonly problems: LedgerProblem[] = [];
  events = 0;
  #prevHash: string;
  #expectedSeq: number;
  /** The last event seen: its seq and stored hash. */
  last: { seq: number; hash: string };

  constructor(
    start: { seq: number; hash: string } = { seq: 0, hash: GENESIS_HASH },
    /** Called after each event is checked, with the hash the chain has there. */
    readonly onEvent?: (e: LedgerRow) => void,
  ) {
    this.#prevHash = start.hash;
    this.#expectedSeq = start.seq + 1;
    this.last = { ...start };
  }

  add(e: LedgerRow): void {
    this.events++;
    const where = { seq: e.seq, actionId: e.action_id, type: e.type };
    if (e.seq !== this.#expectedSeq) {
      const missing: [number, number] = [this.#expectedSeq, e.seq - 1];
      this.problems.push({
        ...where,
        code: 'events_missing',
        missing,
        problem:
          e.seq > this.#expectedSeq
            ? missing[0] === missing[1]
              ? `event ${missing[0]} is missing (deleted)`
              : `events ${missing[0]}..${missing[1]} are missing (deleted)`
            : `event ${e.seq} is out of order after event ${this.#expectedSeq - 1}`,
      });
    }
    if (e.prev_hash !== this.#prevHash) {
      this.problems.push({
        ...where,
        code: 'chain_broken',
        problem: 'link to the previous event is broken (an event before it was changed or removed)',
      });
    }
    if (ledgerHash(e.prev_hash, e) !== e.hash) {
      this.problems.push({
        ...where,
        code: 'event_edited',
        problem: 'content does not match its hash (the event was edited)',
      });
    }
    this.#prevHash = e.hash;
    this.#expectedSeq = e.seq + 1;
    this.last = { seq: e.seq, hash: e.hash };
    this.onEvent?.(e);
  }

  /** Compares where the chain ended with the head row, which pins its end. */
  checkHead(head: { seq: number; hash: string }): void {
    if (head.seq === this.last.seq && head.hash === this.last.hash) return;
    this.problems.push({
      code: 'head_mismatch',
      seq: head.seq,
      actionId: null,
      type: null,
      problem: `the chain ends at event ${this.last.seq} but the head records event ${head.seq} (events were removed or added outside Airlock)`,
    });
  }
}

/** Every event of the store in seq order, read a page at a time. */
export async function* ledgerEvents(store: Store, afterSeq = 0, pageSize = 2000): AsyncGenerator<LedgerRow> {
  for (let after = afterSeq; ; ) {
    const page = await store.ledgerPage(after, pageSize);
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1]!.seq;
  }
}

/**
 * Seals what has committed (PostgreSQL), then walks the whole chain and matches the head row. This finds edits and
 * deletions made without recomputing the chain; a rewrite by someone who can write the database needs the signed
 * digests (src/audit/verify.ts).
 */
export async function verifyLedger(store: Store): Promise<LedgerReport> {
  await store.ledger.sealPending();
  const walk = new ChainWalk();
  let head: { seq: number; hash: string };
  for (;;) {
    const before = walk.events;
    for await (const e of ledgerEvents(store, walk.last.seq)) walk.add(e);
    // A sealer may have sealed more since the walk began: the head only moves forward, so walk on to it.
    head = await store.ledgerHead();
    if (head.seq <= walk.last.seq || walk.events === before) break;
  }
  walk.checkHead(head);
  return { ok: walk.problems.length === 0, events: walk.events, headSeq: head.seq, problems: walk.problems };
}
