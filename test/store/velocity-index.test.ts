// The in-memory velocity index against a brute-force model of the SQL it replaces (VelocityReads.total and
// votesOnAgent), plus its costs counted in probes (search steps and tree nodes), never timed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type IndexedAction,
  VelocityIndex,
  VoteIndex,
  type WindowQuery,
} from '../../src/store/velocity-index.ts';

const T0 = Date.parse('2031-03-01T00:00:00.000Z');

const KINDS = [
  { kind: 'refund.create', read: false },
  { kind: 'payout.create', read: false },
  { kind: 'customer.retrieve', read: true },
  { kind: 'charge.list', read: true },
] as const;
const KIND_NAMES = KINDS.map((k) => k.kind);
const AGENTS = ['agt_a', 'agt_b', null] as const;
const CUSTOMERS = ['cus_1', 'cus_2', null] as const;
const ACCOUNTS = [null, 'acct_1', 'acct_2'] as const;

function action(over: Partial<IndexedAction> & { id: string }): IndexedAction {
  return {
    at: T0,
    usdCents: 1000,
    kind: 'refund.create',
    read: false,
    agentId: 'agt_a',
    customer: 'cus_1',
    onAccount: null,
    counted: true,
    ...over,
  };
}

/** VelocityReads.total as a filter over every row, summing dollars and rounding to cents as the SQL does. */
function modelTotal(rows: Iterable<IndexedAction>, q: WindowQuery): { count: number; usd: number } {
  let count = 0;
  let usd = 0;
  for (const a of rows) {
    if (!a.counted || a.at < q.since || a.at > q.until) continue;
    if (q.excludeId && a.id === q.excludeId) continue;
    // `column = NULL` is never true in SQL; `on_account IS NULL` is used for the platform.
    if (q.scope === 'agent' && (q.subject === null || a.agentId !== q.subject)) continue;
    if (q.scope === 'customer' && (q.subject === null || a.customer !== q.subject)) continue;
    if (q.scope !== 'agent' && a.onAccount !== q.account) continue;
    if (q.kinds === 'writes' ? a.read : !q.kinds.includes(a.kind)) continue;
    count++;
    usd += (a.usdCents ?? 0) / 100;
  }
  return { count, usd: Math.round(usd * 100) / 100 };
}

const pick = fc.nat({ max: 1_000 });

const addOp = fc.record({
  t: fc.constant('add' as const),
  // Zero steps make ties in time, which must all count.
  step: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3_000 })),
  // Concurrent decisions reach the store a little out of order; rarely, much later.
  late: fc.oneof(
    { arbitrary: fc.constant(0), weight: 6 },
    { arbitrary: fc.integer({ min: 1, max: 5_000 }), weight: 3 },
    { arbitrary: fc.integer({ min: 5_001, max: 120_000 }), weight: 1 },
  ),
  agent: fc.constantFrom(...AGENTS),
  customer: fc.constantFrom(...CUSTOMERS),
  account: fc.constantFrom(...ACCOUNTS),
  kind: fc.nat({ max: KINDS.length - 1 }),
  cents: fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: null, freq: 6 }),
  counted: fc.oneof(
    { arbitrary: fc.constant(true), weight: 4 },
    { arbitrary: fc.constant(false), weight: 1 },
  ),
  // An id used before: ignored while present, indexed afresh once removed or pruned.
  reuse: fc.option(pick, { nil: null, freq: 8 }),
});

const queryOp = fc.record({
  t: fc.constant('query' as const),
  scope: fc.constantFrom('agent' as const, 'customer' as const, 'account' as const),
  subject: fc.nat({ max: 3 }),
  account: fc.constantFrom(...ACCOUNTS),
  kinds: fc.oneof(
    fc.constant('writes' as const),
    fc.array(fc.constantFrom(...KIND_NAMES, 'invoice.pay'), { minLength: 0, maxLength: 4 }),
  ),
  back: fc.integer({ min: 0, max: 700_000 }),
  span: fc.integer({ min: -2_000, max: 700_000 }),
  // Bounds on existing entries' times, where an off-by-one in inclusiveness shows.
  edges: fc.option(fc.tuple(pick, pick), { nil: null, freq: 3 }),
  exclude: fc.option(pick, { nil: null, freq: 2 }),
});

const velocityOp = fc.oneof(
  { arbitrary: addOp, weight: 45 },
  { arbitrary: queryOp, weight: 30 },
  { arbitrary: fc.record({ t: fc.constant('uncount' as const), pick }), weight: 8 },
  { arbitrary: fc.record({ t: fc.constant('remove' as const), pick }), weight: 6 },
  { arbitrary: fc.record({ t: fc.constant('recount' as const), pick }), weight: 4 },
  {
    arbitrary: fc.record({ t: fc.constant('prune' as const), age: fc.integer({ min: 0, max: 600_000 }) }),
    weight: 2,
  },
);

describe('VelocityIndex', () => {
  it('answers every window exactly as the SQL over the same rows would', () => {
    fc.assert(
      fc.property(fc.array(velocityOp, { minLength: 300, maxLength: 400 }), (ops) => {
        const index = new VelocityIndex();
        const model = new Map<string, IndexedAction>();
        const known: string[] = [];
        const knownAt = new Map<string, number>();
        let clock = T0;
        const idOf = (n: number) => (known.length === 0 ? 'act_none' : known[n % known.length]!);
        for (const op of ops) {
          switch (op.t) {
            case 'add': {
              clock += op.step;
              const id = op.reuse === null || known.length === 0 ? `act_${known.length}` : idOf(op.reuse);
              const { kind, read } = KINDS[op.kind]!;
              const a = action({
                id,
                at: clock - op.late,
                usdCents: op.cents,
                kind,
                read,
                agentId: op.agent,
                customer: op.customer,
                onAccount: op.account,
                counted: op.counted,
              });
              index.add(a);
              if (!model.has(id)) model.set(id, a);
              if (!knownAt.has(id)) known.push(id);
              knownAt.set(id, model.get(id)!.at);
              break;
            }
            case 'uncount': {
              const id = idOf(op.pick);
              const row = model.get(id);
              const changes = row?.counted === true;
              if (row) model.set(id, { ...row, counted: false });
              expect(index.uncount(id)).toBe(changes);
              break;
            }
            case 'recount': {
              const id = idOf(op.pick);
              const row = model.get(id);
              if (row) model.set(id, { ...row, counted: true });
              index.recount(id);
              break;
            }
            case 'remove': {
              const id = idOf(op.pick);
              model.delete(id);
              index.remove(id);
              break;
            }
            case 'prune': {
              const olderThan = clock - op.age;
              for (const [id, row] of model) if (row.at < olderThan) model.delete(id);
              index.prune(olderThan);
              break;
            }
            case 'query': {
              const subjects = op.scope === 'customer' ? CUSTOMERS : AGENTS;
              let since = clock - op.back;
              let until = since + op.span;
              if (op.edges) {
                since = knownAt.get(idOf(op.edges[0])) ?? since;
                until = knownAt.get(idOf(op.edges[1])) ?? until;
              }
              const q: WindowQuery = {
                scope: op.scope,
                subject: subjects[op.subject] ?? 'nobody',
                account: op.account,
                kinds: op.kinds,
                since,
                until,
                excludeId: op.exclude === null ? null : idOf(op.exclude),
              };
              expect(index.total(q), JSON.stringify(q)).toEqual(modelTotal(model.values(), q));
              break;
            }
          }
          expect(index.size).toBe(model.size);
        }
        for (const id of known) expect(index.has(id)).toBe(model.has(id));
      }),
      { numRuns: 250 },
    );
  });

  it("keeps a customer's actions on a connected account apart from the same customer id on the platform", () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', onAccount: null, usdCents: 1_000 }));
    index.add(action({ id: 'act_2', onAccount: 'acct_1', usdCents: 25_050 }));
    index.add(action({ id: 'act_3', onAccount: 'acct_1', usdCents: 100, agentId: 'agt_b' }));
    const q = {
      scope: 'customer',
      subject: 'cus_1',
      kinds: ['refund.create'],
      since: T0,
      until: T0,
    } as const;
    expect(index.total({ ...q, account: null })).toEqual({ count: 1, usd: 10 });
    expect(index.total({ ...q, account: 'acct_1' })).toEqual({ count: 2, usd: 251.5 });
    // Agent scope ignores the account: agt_a's actions on both.
    expect(index.total({ ...q, scope: 'agent', subject: 'agt_a', account: 'acct_2' })).toEqual({
      count: 2,
      usd: 260.5,
    });
  });

  it('counts writes of every kind and leaves reads out of a writes window', () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', kind: 'refund.create' }));
    index.add(action({ id: 'act_2', kind: 'payout.create', at: T0 + 1 }));
    index.add(action({ id: 'act_3', kind: 'customer.retrieve', read: true, usdCents: null, at: T0 + 2 }));
    const q = { scope: 'account', subject: null, account: null, since: T0, until: T0 + 2 } as const;
    expect(index.total({ ...q, kinds: 'writes' })).toEqual({ count: 2, usd: 20 });
    expect(index.total({ ...q, kinds: ['customer.retrieve', 'customer.retrieve'] })).toEqual({
      count: 1,
      usd: 0,
    });
  });

  it('includes both window bounds and an action that arrives after later ones', () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', at: T0 }));
    index.add(action({ id: 'act_3', at: T0 + 2_000 }));
    index.add(action({ id: 'act_2', at: T0 + 1_000 }));
    const q = { scope: 'agent', subject: 'agt_a', account: null, kinds: ['refund.create'] } as const;
    expect(index.total({ ...q, since: T0, until: T0 + 2_000 }).count).toBe(3);
    expect(index.total({ ...q, since: T0 + 1, until: T0 + 1_999 }).count).toBe(1);
    expect(index.total({ ...q, since: T0 + 1_000, until: T0 + 1_000 }).count).toBe(1);
  });

  it('leaves out the excluded action only when it would have counted in that window', () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', at: T0 }));
    index.add(action({ id: 'act_2', at: T0 + 10, usdCents: 500 }));
    index.add(action({ id: 'act_other', at: T0 + 5, agentId: 'agt_b' }));
    const q = {
      scope: 'agent',
      subject: 'agt_a',
      account: null,
      kinds: ['refund.create'],
      since: T0,
    } as const;
    expect(index.total({ ...q, until: T0 + 10, excludeId: 'act_2' })).toEqual({ count: 1, usd: 10 });
    expect(index.total({ ...q, until: T0 + 9, excludeId: 'act_2' })).toEqual({ count: 1, usd: 10 });
    expect(index.total({ ...q, until: T0 + 10, excludeId: 'act_other' })).toEqual({ count: 2, usd: 15 });
    index.uncount('act_2');
    expect(index.total({ ...q, until: T0 + 10, excludeId: 'act_2' })).toEqual({ count: 1, usd: 10 });
  });

  it('matches no action for an agent or customer window with a null subject, as `= NULL` in SQL', () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', agentId: null, customer: null }));
    const q = { account: null, kinds: 'writes', since: T0, until: T0, subject: null } as const;
    expect(index.total({ ...q, scope: 'agent' })).toEqual({ count: 0, usd: 0 });
    expect(index.total({ ...q, scope: 'customer' })).toEqual({ count: 0, usd: 0 });
    expect(index.total({ ...q, scope: 'account' })).toEqual({ count: 1, usd: 10 });
  });

  it('sums cents exactly where adding dollars in floating point would drift', () => {
    const index = new VelocityIndex();
    for (let i = 0; i < 10; i++) index.add(action({ id: `act_${i}`, at: T0 + i, usdCents: 10 }));
    const total = index.total({
      scope: 'agent',
      subject: 'agt_a',
      account: null,
      kinds: ['refund.create'],
      since: T0,
      until: T0 + 9,
    });
    expect(total).toEqual({ count: 10, usd: 1 });
  });

  it('stops counting an uncounted action, counts it again on recount, and forgets a removed one', () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', at: T0 }));
    index.add(action({ id: 'act_2', at: T0 + 1, usdCents: 250 }));
    const q = {
      scope: 'agent',
      subject: 'agt_a',
      account: null,
      kinds: 'writes',
      since: T0,
      until: T0 + 1,
    } as const;
    expect(index.uncount('act_2')).toBe(true);
    expect(index.uncount('act_2')).toBe(false);
    expect(index.uncount('act_missing')).toBe(false);
    expect(index.total(q)).toEqual({ count: 1, usd: 10 });
    index.recount('act_2');
    expect(index.total(q)).toEqual({ count: 2, usd: 12.5 });
    index.remove('act_1');
    expect(index.has('act_1')).toBe(false);
    expect(index.total(q)).toEqual({ count: 1, usd: 2.5 });
    index.add(action({ id: 'act_1', at: T0 + 1, usdCents: 1 }));
    expect(index.total(q)).toEqual({ count: 2, usd: 2.51 });
  });

  it('ignores a second add of an id already indexed', () => {
    const index = new VelocityIndex();
    index.add(action({ id: 'act_1', usdCents: 100 }));
    index.add(action({ id: 'act_1', usdCents: 999_999 }));
    const q = {
      scope: 'account',
      subject: null,
      account: null,
      kinds: 'writes',
      since: T0,
      until: T0,
    } as const;
    expect(index.size).toBe(1);
    expect(index.total(q)).toEqual({ count: 1, usd: 1 });
  });

  it('forgets entries older than the prune cutoff and keeps the rest', () => {
    const index = new VelocityIndex();
    for (let i = 0; i < 10; i++) index.add(action({ id: `act_${i}`, at: T0 + i * 1_000 }));
    index.prune(T0 + 4_000);
    expect(index.size).toBe(6);
    expect(index.has('act_3')).toBe(false);
    expect(index.has('act_4')).toBe(true);
    const q = {
      scope: 'agent',
      subject: 'agt_a',
      account: null,
      kinds: 'writes',
      since: 0,
      until: T0 * 2,
    } as const;
    expect(index.total(q)).toEqual({ count: 6, usd: 60 });
  });

  it('rejects fractional cents, which would make the sums inexact', () => {
    expect(() => new VelocityIndex().add(action({ id: 'act_1', usdCents: 10.5 }))).toThrow(RangeError);
  });
});

describe('VelocityIndex cost', () => {
  const n = 100_000;
  const log = Math.ceil(Math.log2(n + 1));
  /** One key only: reads on the platform with no agent or customer sit in one series. */
  const entry = (i: number, at = T0 + i * 10) =>
    action({ id: `act_${i}`, at, kind: 'charge.list', read: true, agentId: null, customer: null });
  const window = (since: number, until: number): WindowQuery => ({
    scope: 'account',
    subject: null,
    account: null,
    kinds: ['charge.list'],
    since,
    until,
  });

  it('appends 100,000 actions in time order at O(log n) work each', () => {
    const index = new VelocityIndex();
    for (let i = 0; i < n; i++) index.add(entry(i));
    // A binary search and one prefix path per append.
    expect(index.probes / n).toBeLessThanOrEqual(2 * log + 2);
  });

  it('takes actions arriving a few places out of order at O(log n) work each', () => {
    const index = new VelocityIndex();
    for (let i = 0; i < n; i++) index.add(entry(i, T0 + i * 10 - (i % 10 === 9 ? 35 : 0)));
    expect(index.probes / n).toBeLessThanOrEqual(2 * log + 3);
    expect(index.total(window(T0, T0 + (n - 1) * 10)).count).toBe(n);
  });

  it('totals a window of 50,000 of 100,000 entries on one key touching O(log n) nodes', () => {
    const index = new VelocityIndex();
    for (let i = 0; i < n; i++) index.add(entry(i));
    const before = index.probes;
    const total = index.total({ ...window(T0 + 250_000, T0 + 749_990), excludeId: 'act_30000' });
    // Two binary searches and four prefix sums.
    expect(index.probes - before).toBeLessThanOrEqual(6 * log);
    expect(total).toEqual({ count: 49_999, usd: 499_990 });
    const beforeUncount = index.probes;
    index.uncount('act_60000');
    expect(index.probes - beforeUncount).toBeLessThanOrEqual(log);
  });

  it('prunes a 100,000-entry history in 1,000 steps at amortised O(1) work per entry', () => {
    const index = new VelocityIndex();
    for (let i = 0; i < n; i++) index.add(entry(i));
    const before = index.probes;
    for (let step = 1; step <= 1_000; step++) index.prune(T0 + step * 1_000);
    expect(index.size).toBe(0);
    // Each step: a binary search; each entry: dropped once and moved by O(1) compactions on average.
    expect(index.probes - before).toBeLessThanOrEqual(1_000 * log + 6 * n);
  });
});

const voteOp = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('add' as const),
      step: fc.integer({ min: 0, max: 3_000 }),
      late: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5_000 })),
      agent: fc.constantFrom('agt_a', 'agt_b', 'agt_c'),
      rejected: fc.boolean(),
      reuse: fc.option(pick, { nil: null, freq: 8 }),
    }),
    weight: 50,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('query' as const),
      agent: fc.constantFrom('agt_a', 'agt_b', 'agt_c', 'agt_none'),
      back: fc.integer({ min: -1_000, max: 700_000 }),
    }),
    weight: 35,
  },
  { arbitrary: fc.record({ t: fc.constant('remove' as const), pick }), weight: 10 },
  {
    arbitrary: fc.record({ t: fc.constant('prune' as const), age: fc.integer({ min: 0, max: 600_000 }) }),
    weight: 2,
  },
);

describe('VoteIndex', () => {
  it("answers an agent's decided and rejected votes exactly as the SQL over the same rows would", () => {
    type Vote = { id: string; agentId: string; at: number; rejected: boolean };
    fc.assert(
      fc.property(fc.array(voteOp, { minLength: 300, maxLength: 400 }), (ops) => {
        const index = new VoteIndex();
        const model = new Map<string, Vote>();
        const known: string[] = [];
        let clock = T0;
        const idOf = (n: number) => (known.length === 0 ? 'vote_none' : known[n % known.length]!);
        for (const op of ops) {
          switch (op.t) {
            case 'add': {
              clock += op.step;
              const id = op.reuse === null || known.length === 0 ? `vote_${known.length}` : idOf(op.reuse);
              const v = { id, agentId: op.agent, at: clock - op.late, rejected: op.rejected };
              index.add(v);
              if (!model.has(id)) model.set(id, v);
              if (!known.includes(id)) known.push(id);
              break;
            }
            case 'remove': {
              const id = idOf(op.pick);
              model.delete(id);
              index.remove(id);
              break;
            }
            case 'prune': {
              const olderThan = clock - op.age;
              for (const [id, v] of model) if (v.at < olderThan) model.delete(id);
              index.prune(olderThan);
              break;
            }
            case 'query': {
              const since = clock - op.back;
              const votes = [...model.values()].filter((v) => v.agentId === op.agent && v.at >= since);
              expect(index.total(op.agent, since)).toEqual({
                rejected: votes.filter((v) => v.rejected).length,
                decided: votes.length,
              });
              break;
            }
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('counts the votes cast at or after the window start', () => {
    const index = new VoteIndex();
    index.add({ id: 'v1', agentId: 'agt_a', at: T0, rejected: true });
    index.add({ id: 'v2', agentId: 'agt_a', at: T0 + 1, rejected: false });
    index.add({ id: 'v3', agentId: 'agt_b', at: T0 + 1, rejected: true });
    expect(index.total('agt_a', T0)).toEqual({ rejected: 1, decided: 2 });
    expect(index.total('agt_a', T0 + 1)).toEqual({ rejected: 0, decided: 1 });
    index.remove('v2');
    expect(index.total('agt_a', T0)).toEqual({ rejected: 1, decided: 1 });
  });
});
