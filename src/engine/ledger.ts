import { GENESIS_HASH } from '../store/migrations.ts';
import { ledgerHash, type Store } from '../store/store.ts';

export interface LedgerProblem {
  seq: number;
  actionId: string | null;
  type: string | null;
  problem: string;
}

export interface LedgerReport {
  ok: boolean;
  events: number;
  headSeq: number;
  problems: LedgerProblem[];
}

/** Walks the whole chain: recomputes each hash, checks links and that seq has no gaps, and matches the head row. */
export async function verifyLedger(store: Store): Promise<LedgerReport> {
  const problems: LedgerProblem[] = [];
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let events = 0;
  for (let after = 0; ; ) {
    const page = await store.ledgerPage(after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      events++;
      const where = { seq: e.seq, actionId: e.action_id, type: e.type };
      if (e.seq !== expectedSeq) {
        problems.push({ ...where, problem: `events ${expectedSeq}..${e.seq - 1} are missing (deleted)` });
      }
      if (e.prev_hash !== prevHash) {
        problems.push({
          ...where,
          problem: 'link to the previous event is broken (an event before it was changed or removed)',
        });
      }
      const recomputed = ledgerHash(e.prev_hash, e);
      if (recomputed !== e.hash) {
        problems.push({ ...where, problem: 'content does not match its hash (the event was edited)' });
      }
      prevHash = e.hash;
      expectedSeq = e.seq + 1;
      after = e.seq;
    }
  }
  const head = await store.ledgerHead();
  if (head.seq !== expectedSeq - 1 || head.hash !== prevHash) {
    problems.push({
      seq: head.seq,
      actionId: null,
      type: null,
      problem: `the chain ends at event ${expectedSeq - 1} but the head records event ${head.seq} (events were removed or added outside Airlock)`,
    });
  }
  return { ok: problems.length === 0, events, headSeq: head.seq, problems };
}
