// Exact sliding-window velocity totals held in memory, so a decision costs O(log n) however long an agent's history
// is, where the SQL in velocity.ts scans every row in the window. Pure: no I/O and no clock; every time is passed in.

/** One action as the index sees it. Times are epoch milliseconds. */
export interface IndexedAction {
  id: string;
  /** created_at in ms. */
  at: number;
  /** amount_usd * 100 rounded to an integer; null when unknown (counts in count, adds 0 to usd). */
  usdCents: number | null;
  kind: string;
  read: boolean;
  agentId: string | null;
  customer: string | null;
  /** null: the platform account. */
  onAccount: string | null;
  /** The status is one that counts; an action goes counted -> uncounted, never back (except to undo). */
  counted: boolean;
}

/** The same window as VelocityQuery (velocity.ts), with the counted statuses already applied through `counted`. */
export interface WindowQuery {
  scope: 'agent' | 'customer' | 'account';
  /** Agent id or customer id; ignored for 'account'. null matches nothing, as `= NULL` does in SQL. */
  subject: string | null;
  /** For 'customer' and 'account': the account (null: the platform). Ignored for 'agent'. */
  account: string | null;
  /** Kinds to count, or 'writes' for every action with read = false. */
  kinds: readonly string[] | 'writes';
  /** Inclusive bounds, ms. */
  since: number;
  until: number;
  excludeId?: string | null;
}

/** Counts search steps and tree nodes visited, so tests can check costs without timing anything. */
interface Work {
  probes: number;
}

interface Owner {
  readonly id: string;
}

/** One entry's place in one series. `pos` is kept current as entries shift. */
class Slot {
  dead = false;
  constructor(
    readonly owner: Owner,
    readonly series: Series,
    public pos: number,
  ) {}
}

/**
 * Entries of one key sorted by time, with two Fenwick trees over positions: `a` (a count) and `b` (cents, or
 * rejections). Values are integers, so sums stay exact below 2^53. Positions before `head` are pruned; their
 * values stay in the trees but cancel out, since every range starts at or after `head`.
 */
class Series {
  private readonly times: number[] = [];
  private readonly slots: Slot[] = [];
  private readonly a: number[] = [];
  private readonly b: number[] = [];
  // 1-based trees; index 0 unused.
  private readonly fa: number[] = [0];
  private readonly fb: number[] = [0];
  private head = 0;
  /** Removed (not pruned) slots at or after head: zero-valued until the next compaction. */
  private tombstones = 0;

  constructor(private readonly work: Work) {}

  get live(): number {
    return this.times.length - this.head - this.tombstones;
  }

  /**
   * Places an entry after every entry at the same or an earlier time. An append is O(log n); an entry arriving
   * out of order costs O(log n + entries after it), cheap when it lands near the end, as late arrivals do.
   */
  insert(owner: Owner, at: number, a: number, b: number): Slot {
    const n = this.times.length;
    const p = this.upperBound(at);
    const slot = new Slot(owner, this, p);
    if (p === n) {
      this.times.push(at);
      this.slots.push(slot);
      this.a.push(a);
      this.b.push(b);
    } else {
      this.times.splice(p, 0, at);
      this.slots.splice(p, 0, slot);
      this.a.splice(p, 0, a);
      this.b.splice(p, 0, b);
      for (let i = p + 1; i <= n; i++) this.slots[i]!.pos = i;
      this.work.probes += n - p;
    }
    this.fa.push(0);
    this.fb.push(0);
    this.rebuildFrom(p);
    return slot;
  }

  /** Adds to one position's values: O(log n). */
  update(pos: number, da: number, db: number): void {
    this.a[pos] = this.a[pos]! + da;
    this.b[pos] = this.b[pos]! + db;
    const n = this.times.length;
    for (let i = pos + 1; i <= n; i += i & -i) {
      this.work.probes++;
      this.fa[i] = this.fa[i]! + da;
      this.fb[i] = this.fb[i]! + db;
    }
  }

  /** Undoes an insert. A rollback usually removes the newest entry, which is popped; any other is zeroed. */
  remove(slot: Slot): void {
    if (slot.dead) return;
    slot.dead = true;
    if (slot.pos === this.times.length - 1) {
      this.pop();
      // Tombstones left at the end by earlier removals go too.
      while (this.times.length > this.head && this.slots[this.times.length - 1]!.dead) {
        this.pop();
        this.tombstones--;
      }
      return;
    }
    this.update(slot.pos, -this.a[slot.pos]!, -this.b[slot.pos]!);
    this.tombstones++;
    this.compactIfHalfDead();
  }

  /** Adds the sums of the entries with since <= at <= until to `out`: two binary searches, four prefix sums. */
  addRange(since: number, until: number, out: { a: number; b: number }): void {
    const lo = this.lowerBound(since);
    const hi = this.upperBound(until);
    if (hi <= lo) return;
    out.a += this.prefix(this.fa, hi) - this.prefix(this.fa, lo);
    out.b += this.prefix(this.fb, hi) - this.prefix(this.fb, lo);
  }

  /** Drops entries with at < olderThan, calling `forget` for each live one. Amortised O(1) per entry. */
  prune(olderThan: number, forget: (owner: Owner) => void): void {
    const cut = this.lowerBound(olderThan);
    for (let i = this.head; i < cut; i++) {
      const slot = this.slots[i]!;
      if (slot.dead) this.tombstones--;
      else {
        slot.dead = true;
        forget(slot.owner);
      }
    }
    this.work.probes += cut - this.head;
    this.head = cut;
    this.compactIfHalfDead();
  }

  private pop(): void {
    this.times.pop();
    this.slots.pop();
    this.a.pop();
    this.b.pop();
    // Tree node i covers positions (i - lowbit(i), i], so the last position's only node is the last one.
    this.fa.pop();
    this.fb.pop();
  }

  /** Rewrites without dead positions once they are half the arrays: O(n), paid for by the n/2 dead ones. */
  private compactIfHalfDead(): void {
    const n = this.times.length;
    const dead = this.head + this.tombstones;
    if (dead === 0 || dead * 2 <= n) return;
    let w = 0;
    for (let r = this.head; r < n; r++) {
      const slot = this.slots[r]!;
      if (slot.dead) continue;
      this.times[w] = this.times[r]!;
      this.slots[w] = slot;
      this.a[w] = this.a[r]!;
      this.b[w] = this.b[r]!;
      slot.pos = w;
      w++;
    }
    this.work.probes += n - this.head;
    this.times.length = w;
    this.slots.length = w;
    this.a.length = w;
    this.b.length = w;
    this.fa.length = w + 1;
    this.fb.length = w + 1;
    this.head = 0;
    this.tombstones = 0;
    this.rebuildFrom(0);
  }

  /**
   * Recomputes tree nodes p+1..n from the values, reusing the nodes below. The nodes below p+1 whose parent is
   * p+1 or above are exactly those on p's prefix path, so the cost is O(log n + n - p).
   */
  private rebuildFrom(p: number): void {
    const n = this.times.length;
    const { fa, fb } = this;
    for (let i = p + 1; i <= n; i++) {
      fa[i] = this.a[i - 1]!;
      fb[i] = this.b[i - 1]!;
    }
    for (let i = p; i > 0; i -= i & -i) this.pushUp(i, n);
    for (let i = p + 1; i <= n; i++) this.pushUp(i, n);
  }

  private pushUp(i: number, n: number): void {
    this.work.probes++;
    const parent = i + (i & -i);
    if (parent > n) return;
    this.fa[parent] = this.fa[parent]! + this.fa[i]!;
    this.fb[parent] = this.fb[parent]! + this.fb[i]!;
  }

  /** Sum of the first k positions. */
  private prefix(tree: number[], k: number): number {
    let sum = 0;
    for (let i = k; i > 0; i -= i & -i) {
      this.work.probes++;
      sum += tree[i]!;
    }
    return sum;
  }

  /** First live position with time >= t. */
  private lowerBound(t: number): number {
    let lo = this.head;
    let hi = this.times.length;
    while (lo < hi) {
      this.work.probes++;
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First live position with time > t. */
  private upperBound(t: number): number {
    let lo = this.head;
    let hi = this.times.length;
    while (lo < hi) {
      this.work.probes++;
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** One (scope, subject, account): a series per kind, and one for all writes so 'writes' is a single lookup. */
class Group {
  readonly kinds = new Map<string, Series>();
  writes: Series | null = null;

  /** Prunes every series and drops the empty ones; returns whether the group is empty. */
  prune(olderThan: number, forget: (owner: Owner) => void): boolean {
    for (const [kind, series] of this.kinds) {
      series.prune(olderThan, forget);
      if (series.live === 0) this.kinds.delete(kind);
    }
    if (this.writes) {
      this.writes.prune(olderThan, forget);
      if (this.writes.live === 0) this.writes = null;
    }
    return this.kinds.size === 0 && this.writes === null;
  }
}

class Entry implements Owner {
  readonly slots: Slot[] = [];
  constructor(
    readonly id: string,
    readonly at: number,
    public cents: number,
    public counted: boolean,
  ) {}
}

export class VelocityIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly agents = new Map<string, Group>();
  /** By account (null: the platform), then customer: a customer id is only unique within its account. */
  private readonly customers = new Map<string | null, Map<string, Group>>();
  private readonly accounts = new Map<string | null, Group>();
  private readonly work: Work = { probes: 0 };
  // A live slot's owner is always the entry its id maps to: a removed or pruned entry's slots are all dead.
  private readonly forget = (owner: Owner): void => {
    this.entries.delete(owner.id);
  };

  /** Search steps and tree nodes visited so far: a measure of work for tests. */
  get probes(): number {
    return this.work.probes;
  }

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** Indexes an action; an id already present is ignored. */
  add(action: IndexedAction): void {
    if (this.entries.has(action.id)) return;
    if (!Number.isFinite(action.at)) throw new RangeError(`velocity index: at of ${action.id} is not a time`);
    const cents = action.usdCents ?? 0;
    // Fractional cents would make the sums inexact.
    if (!Number.isSafeInteger(cents))
      throw new RangeError(`velocity index: usdCents of ${action.id} not integer`);
    const entry = new Entry(action.id, action.at, cents, action.counted);
    const a = action.counted ? 1 : 0;
    const b = action.counted ? cents : 0;
    const place = (group: Group) => {
      let series = group.kinds.get(action.kind);
      if (!series) {
        series = new Series(this.work);
        group.kinds.set(action.kind, series);
      }
      entry.slots.push(series.insert(entry, action.at, a, b));
      if (!action.read) {
        group.writes ??= new Series(this.work);
        entry.slots.push(group.writes.insert(entry, action.at, a, b));
      }
    };
    if (action.agentId !== null) place(getOrAdd(this.agents, action.agentId));
    if (action.customer !== null) {
      let byCustomer = this.customers.get(action.onAccount);
      if (!byCustomer) {
        byCustomer = new Map();
        this.customers.set(action.onAccount, byCustomer);
      }
      place(getOrAdd(byCustomer, action.customer));
    }
    place(getOrAdd(this.accounts, action.onAccount));
    this.entries.set(action.id, entry);
  }

  /** Undoes an add (a rolled-back transaction); no-op when absent. */
  remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    for (const slot of entry.slots) slot.series.remove(slot);
    this.entries.delete(id);
  }

  /** Counted -> uncounted; returns whether it changed anything. */
  uncount(id: string): boolean {
    const entry = this.entries.get(id);
    if (!entry?.counted) return false;
    entry.counted = false;
    for (const slot of entry.slots) slot.series.update(slot.pos, -1, -entry.cents);
    return true;
  }

  /** Undoes an uncount (a rolled-back transaction). */
  recount(id: string): void {
    const entry = this.entries.get(id);
    if (!entry || entry.counted) return;
    entry.counted = true;
    for (const slot of entry.slots) slot.series.update(slot.pos, 1, entry.cents);
  }

  /** The cents an action is indexed with (0 for an unknown amount); undefined when it is not indexed. */
  centsOf(id: string): number | undefined {
    return this.entries.get(id)?.cents;
  }

  /** A changed amount (a reviewer's modification, a re-valuation): O(log n) per series it is in. */
  setCents(id: string, usdCents: number | null): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    const cents = usdCents ?? 0;
    if (!Number.isSafeInteger(cents)) throw new RangeError(`velocity index: usdCents of ${id} not integer`);
    if (entry.counted) for (const slot of entry.slots) slot.series.update(slot.pos, 0, cents - entry.cents);
    entry.cents = cents;
  }

  /** Count and USD of the counted actions in a window: O(k log n) for k kinds. usd is cents / 100, exact. */
  total(q: WindowQuery): { count: number; usd: number } {
    const group = this.group(q);
    if (!group) return { count: 0, usd: 0 };
    const series: Series[] = [];
    if (q.kinds === 'writes') {
      if (group.writes) series.push(group.writes);
    } else {
      for (let i = 0; i < q.kinds.length; i++) {
        const kind = q.kinds[i]!;
        // `kind IN (...)` counts a row once however often its kind is listed.
        if (q.kinds.indexOf(kind) !== i) continue;
        const s = group.kinds.get(kind);
        if (s) series.push(s);
      }
    }
    const out = { a: 0, b: 0 };
    for (const s of series) s.addRange(q.since, q.until, out);
    if (q.excludeId) {
      const e = this.entries.get(q.excludeId);
      if (
        e?.counted &&
        e.at >= q.since &&
        e.at <= q.until &&
        e.slots.some((s) => series.includes(s.series))
      ) {
        out.a -= 1;
        out.b -= e.cents;
      }
    }
    return { count: out.a, usd: out.b / 100 };
  }

  /** Forgets entries with at < olderThan (the caller passes now - 90 days). */
  prune(olderThan: number): void {
    pruneGroups(this.agents, olderThan, this.forget);
    for (const [account, byCustomer] of this.customers) {
      pruneGroups(byCustomer, olderThan, this.forget);
      if (byCustomer.size === 0) this.customers.delete(account);
    }
    pruneGroups(this.accounts, olderThan, this.forget);
  }

  private group(q: WindowQuery): Group | undefined {
    const account = q.account ?? null;
    switch (q.scope) {
      case 'agent':
        return q.subject === null ? undefined : this.agents.get(q.subject);
      case 'customer':
        return q.subject === null ? undefined : this.customers.get(account)?.get(q.subject);
      case 'account':
        return this.accounts.get(account);
      default: {
        const never: never = q.scope;
        throw new Error(`velocity index: unknown scope ${String(never)}`);
      }
    }
  }
}

/** Reviewer votes on one agent's actions: decided and rejected counts over a window. */
export class VoteIndex {
  private readonly votes = new Map<string, Slot>();
  private readonly agents = new Map<string, Series>();
  private readonly work: Work = { probes: 0 };
  private readonly forget = (owner: Owner): void => {
    this.votes.delete(owner.id);
  };

  /** Indexes a vote; an id already present is ignored. */
  add(v: { id: string; agentId: string; at: number; rejected: boolean }): void {
    if (this.votes.has(v.id)) return;
    if (!Number.isFinite(v.at)) throw new RangeError(`vote index: at of ${v.id} is not a time`);
    let series = this.agents.get(v.agentId);
    if (!series) {
      series = new Series(this.work);
      this.agents.set(v.agentId, series);
    }
    this.votes.set(v.id, series.insert({ id: v.id }, v.at, 1, v.rejected ? 1 : 0));
  }

  /** Undoes an add; no-op when absent. */
  remove(id: string): void {
    const slot = this.votes.get(id);
    if (!slot) return;
    slot.series.remove(slot);
    this.votes.delete(id);
  }

  /** Votes on the agent's actions cast at or after `since`. */
  total(agentId: string, since: number): { rejected: number; decided: number } {
    const out = { a: 0, b: 0 };
    this.agents.get(agentId)?.addRange(since, Number.POSITIVE_INFINITY, out);
    return { rejected: out.b, decided: out.a };
  }

  /** Forgets votes with at < olderThan. */
  prune(olderThan: number): void {
    for (const [agentId, series] of this.agents) {
      series.prune(olderThan, this.forget);
      if (series.live === 0) this.agents.delete(agentId);
    }
  }
}

function getOrAdd<K>(map: Map<K, Group>, key: K): Group {
  let group = map.get(key);
  if (!group) {
    group = new Group();
    map.set(key, group);
  }
  return group;
}

function pruneGroups<K>(map: Map<K, Group>, olderThan: number, forget: (owner: Owner) => void): void {
  for (const [key, group] of map) if (group.prune(olderThan, forget)) map.delete(key);
}
