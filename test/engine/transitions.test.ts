// The lifecycle's table: which status may follow which, refused by the one transition primitive on a real SQLite
// store, and every set of statuses consistent with it.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type Submission } from '../../src/engine/engine.ts';
import { createResources, type EngineResources } from '../../src/engine/resources.ts';
import {
  COUNTED_STATUSES,
  canTransition,
  IN_FLIGHT_STATUSES,
  isSettledAction,
  isTerminal,
  LIVE_STATUSES,
  REVIEW_OUTCOMES,
  STATUSES,
  type Status,
  TERMINAL_STATUSES,
  TRANSITIONS,
} from '../../src/engine/status.ts';
import { IllegalTransition, insertDecided, transition } from '../../src/engine/transition.ts';
import { newId } from '../../src/ids.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { ActionRow, Store } from '../../src/store/store.ts';
import { classify } from '../../src/stripe/classify.ts';
import { tempDir } from '../helpers/stack.ts';

const PAIRS: [Status, Status][] = STATUSES.flatMap((from) =>
  STATUSES.map((to): [Status, Status] => [from, to]),
);

/** Every status reachable from `start` through the table, `start` included. */
function reachable(start: Status): Set<Status> {
  const seen = new Set<Status>([start]);
  const queue = [start];
  for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
    for (const next of TRANSITIONS[s]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return seen;
}

describe('the status sets', () => {
  it('are the sets the store, the metrics and the gateway used before they were derived', () => {
    expect(new Set(COUNTED_STATUSES)).toEqual(
      new Set(['received', 'pending', 'completed', 'awaiting_approval', 'approved']),
    );
    expect(new Set(LIVE_STATUSES)).toEqual(new Set(['received', 'awaiting_approval', 'pending']));
    expect(new Set(IN_FLIGHT_STATUSES)).toEqual(new Set(['received', 'pending']));
    expect(new Set(TERMINAL_STATUSES)).toEqual(
      new Set(['blocked', 'rejected', 'expired', 'cancelled', 'completed', 'failed']),
    );
    expect(REVIEW_OUTCOMES).toEqual({
      pending: 'approved',
      approved: 'approved',
      rejected: 'rejected',
      expired: 'expired',
      cancelled: 'cancelled',
    });
  });

  it('give a terminal status no way out but completed → failed (Stripe reports it failed later), and every status without one ends an action', () => {
    for (const s of STATUSES) {
      if (isTerminal(s)) expect(TRANSITIONS[s], s).toEqual(s === 'completed' ? ['failed'] : []);
      if (TRANSITIONS[s].length === 0) {
        // approved ends only a decide-only action; a Stripe or HTTP action never rests there.
        expect(isTerminal(s) || isSettledAction({ status: s, mode: 'decide' }), s).toBe(true);
      }
    }
  });

  it('leave every live status a way out, and every status reachable from received', () => {
    for (const s of LIVE_STATUSES) expect(TRANSITIONS[s].length, s).toBeGreaterThan(0);
    expect(reachable('received')).toEqual(new Set(STATUSES));
    for (const s of STATUSES) expect(TRANSITIONS[s], `${s} → ${s}`).not.toContain(s);
    expect(STATUSES.filter((s) => TRANSITIONS[s].includes('received'))).toEqual([]);
  });

  it('settle an action exactly where it can go no further', () => {
    for (const s of STATUSES) {
      for (const mode of ['stripe', 'http', 'decide']) {
        const settled = isSettledAction({ status: s, mode });
        expect(settled, `${s} (${mode})`).toBe(isTerminal(s) || (s === 'approved' && mode === 'decide'));
        if (settled) expect(TRANSITIONS[s], s).toEqual(s === 'completed' ? ['failed'] : []);
        if (LIVE_STATUSES.includes(s)) expect(settled, s).toBe(false);
      }
    }
    for (const s of IN_FLIGHT_STATUSES) expect(LIVE_STATUSES).toContain(s);
  });

  it('count towards velocity exactly the statuses that moved money or still may', () => {
    for (const s of STATUSES) {
      // A decide-only approval is the caller's licence to move the money itself.
      const mayMoveMoney = s === 'completed' || s === 'approved' || reachable(s).has('completed');
      expect(COUNTED_STATUSES.includes(s), s).toBe(mayMoveMoney);
    }
  });

  it('name a review outcome only for a status a hold can move to', () => {
    for (const [s, outcome] of Object.entries(REVIEW_OUTCOMES) as [Status, string][]) {
      expect(canTransition('awaiting_approval', s), s).toBe(true);
      expect(outcome).toBe(s === 'pending' ? 'approved' : s);
    }
  });
});

describe('the transition primitive on SQLite', () => {
  let dir: string;
  let store: Store;
  let r: EngineResources;
  let template: ActionRow;

  beforeAll(async () => {
    dir = tempDir();
    store = await openSqliteStore(join(dir, 'airlock.db'));
    const policy = parsePolicy('default: review\n', 'test.yaml');
    r = createResources({ store, policy });
    // One real decided action, cloned into every status below.
    const engine = new Engine({ store, policy });
    const params = { amount: '1000', currency: 'usd', destination: 'acct_1' };
    const sub: Submission = {
      agent: null,
      method: 'POST',
      path: '/v1/transfers',
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: null,
      classification: classify({ method: 'POST', path: '/v1/transfers', params }),
    };
    template = (await engine.submit(sub)).action;
  });
  afterAll(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function rowIn(status: Status): Promise<string> {
    const id = newId('act');
    await store.insertAction({ ...template, id, status, idempotency_scope: null });
    return id;
  }

  function move(id: string, from: Status, to: Status): Promise<ActionRow> {
    const at = new Date().toISOString();
    return store.transaction((tx) =>
      transition(r, tx, id, from, to, { type: 'test.moved', actor: 'test', data: {}, at, patch: {} }),
    );
  }

  it('refuses every pair the table leaves out, naming both statuses and changing nothing', async () => {
    const illegal = PAIRS.filter(([from, to]) => !canTransition(from, to));
    expect(illegal.length).toBeGreaterThan(0);
    for (const [from, to] of illegal) {
      // The row is in `from`, so only the table stands between it and `to`.
      const id = await rowIn(from);
      const err = await move(id, from, to).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `${from} → ${to}`).toBeInstanceOf(IllegalTransition);
      expect((err as IllegalTransition).code).toBe('invalid_transition');
      expect((err as Error).message).toContain(`from ${from} to ${to}`);
      expect((await store.getAction(id))?.status).toBe(from);
      expect(await store.ledgerForAction(id)).toEqual([]);
    }
  });

  it('makes every pair the table allows, with one ledger event that says so', async () => {
    const legal = PAIRS.filter(([from, to]) => canTransition(from, to));
    expect(legal.length).toBe(STATUSES.reduce((n, s) => n + TRANSITIONS[s].length, 0));
    for (const [from, to] of legal) {
      const id = await rowIn(from);
      const moved = await move(id, from, to);
      expect(moved.status, `${from} → ${to}`).toBe(to);
      expect((await store.getAction(id))?.status).toBe(to);
      const events = await store.ledgerForAction(id);
      expect(events.map((e) => [e.type, e.from_status, e.to_status])).toEqual([['test.moved', from, to]]);
    }
  });

  it('writes a new action only in a status a decision can give it', async () => {
    for (const status of STATUSES) {
      const row: ActionRow = { ...template, id: newId('act'), status, idempotency_scope: null };
      const at = row.updated_at;
      const event = {
        actionId: row.id,
        type: 'action.received',
        from: null,
        to: 'received',
        actor: 'test',
        data: {},
        at,
      };
      const write = store.transaction((tx) => insertDecided(r, tx, row, [event]));
      if (canTransition('received', status)) {
        await write;
        expect((await store.getAction(row.id))?.status).toBe(status);
      } else {
        await expect(write, status).rejects.toBeInstanceOf(IllegalTransition);
        expect(await store.getAction(row.id)).toBeUndefined();
        expect(await store.ledgerForAction(row.id)).toEqual([]);
      }
    }
  });
});
