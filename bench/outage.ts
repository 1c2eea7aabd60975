// Repeated store outages under continuous agent traffic (docs/RELIABILITY.md, "Store outage"). Usage:
//   npm run outage [-- --store sqlite|postgres --seconds 60 --every 10 --down-min 2 --down-max 5 --agents 4 --seed 1]
// PostgreSQL: a private cluster of its own (initdb, pg_ctl), stopped with `pg_ctl stop -m immediate` and started
// again. SQLite: the database on a small tmpfs, filled with a ballast file until SQLITE_FULL, then emptied.
// Needs root (runuser, mount). Airlock keeps running throughout: recovery is without a restart.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Stripe from 'stripe';
import {
  exactlyOnce,
  mountSmallDisk,
  privatePostgresProblem,
  RefundTraffic,
  smallDiskProblem,
  startPrivatePostgres,
} from '../test/helpers/outage.ts';
import { cli } from '../test/helpers/process.ts';
import { type Stack, startStack } from '../test/helpers/stack.ts';
import { actions } from '../test/helpers/store-reads.ts';

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'sqlite' },
    seconds: { type: 'string', default: '60' },
    every: { type: 'string', default: '10' },
    'down-min': { type: 'string', default: '2' },
    'down-max': { type: 'string', default: '5' },
    agents: { type: 'string', default: '4' },
    seed: { type: 'string' },
  },
});
const storeKind = values.store === 'postgres' ? 'postgres' : 'sqlite';
const seconds = Number(values.seconds);
const every = Number(values.every);
const downMin = Number(values['down-min']);
const downMax = Number(values['down-max']);
let seed = values.seed ? Number(values.seed) : Date.now() % 1_000_000;
const firstSeed = seed;
// mulberry32: the same seed gives the same outage schedule.
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const problem = storeKind === 'postgres' ? privatePostgresProblem() : smallDiskProblem();
if (problem) {
  console.error(`outage: cannot make a real ${storeKind} outage here: ${problem}`);
  process.exit(2);
}

interface Outage {
  /** When the store was down (stop returned / disk full) and back (start returned / ballast gone), ms epoch. */
  from: number;
  to: number;
  /** How long bringing it back took (pg_ctl start, crash recovery included), ms. */
  restartMs: number;
  /** From `to` to the first write Airlock accepted again, ms. */
  recoveryMs: number;
}

console.log(
  `outage: ${seconds}s on ${storeKind}, an outage every ~${every}s lasting ${downMin}-${downMax}s, ${values.agents} agents, seed ${firstSeed}`,
);
let stack: Stack;
let env: Record<string, string>;
let down: () => Promise<void>;
let up: () => Promise<void>;
let cleanup: () => Promise<void>;
if (storeKind === 'postgres') {
  const cluster = await startPrivatePostgres();
  await cluster.createDatabase('airlock');
  env = { DATABASE_URL: cluster.url('airlock') };
  stack = await startStack(env);
  down = () => cluster.stop();
  up = () => cluster.start();
  cleanup = async () => {
    await stack.close();
    await cluster.close();
  };
} else {
  const disk = mountSmallDisk(256);
  env = { AIRLOCK_DATA: join(disk.dir, 'airlock.db') };
  stack = await startStack(env);
  down = async () => {
    disk.fill(env['AIRLOCK_DATA']!);
  };
  up = async () => disk.drain();
  cleanup = async () => {
    disk.drain();
    await stack.close();
    disk.close();
  };
}

const traffic = new RefundTraffic({
  airlockPort: stack.airlock.port,
  agentKey: stack.agentKey,
  direct: stack.direct,
  agents: Number(values.agents),
  heldShare: 0.1,
});
const probe = new Stripe(stack.agentKey, {
  host: '127.0.0.1',
  port: stack.airlock.port,
  protocol: 'http',
  maxNetworkRetries: 0,
});

// A reviewer approving what is held, through the review API, outages or not.
let reviewing = true;
const reviews = { approved: 0, refused: 0 };
const reviewer = (async () => {
  while (reviewing) {
    const list = await stack.api('/api/actions?status=awaiting_approval&limit=20').catch(() => null);
    if (list?.status === 200) {
      for (const a of list.body.data as { id: string }[]) {
        const res = await stack.api(`/api/actions/${a.id}/approve`, { method: 'POST', body: {} });
        if (res.status === 200) reviews.approved++;
        else if (res.status === 503) reviews.refused++;
      }
    } else if (list?.status === 503) reviews.refused++;
    await sleep(200);
  }
})();

/** Tries one refund under one key until Airlock takes it: the moment the store is writable again. */
async function firstWrite(charge: string): Promise<number> {
  const key = `recovery-${charge}`;
  for (;;) {
    try {
      await probe.refunds.create({ charge, amount: 100 }, { idempotencyKey: key });
      return Date.now();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 503) throw err;
      await sleep(20);
    }
  }
}

const outages: Outage[] = [];
const started = Date.now();
traffic.start();
for (;;) {
  const next = Date.now() + every * 1000 * (0.75 + random() * 0.5);
  const downFor = (downMin + random() * (downMax - downMin)) * 1000;
  if (next + downFor > started + seconds * 1000) break;
  await sleep(next - Date.now());
  await down();
  const from = Date.now();
  await sleep(downFor);
  const charge = await stack.direct.charges.create({ amount: 1000, currency: 'usd', source: 'tok_visa' });
  const restarting = Date.now();
  await up();
  const to = Date.now();
  const recovered = await firstWrite(charge.id);
  outages.push({ from, to, restartMs: to - restarting, recoveryMs: recovered - to });
  console.log(
    `  outage ${outages.length}: down ${((to - from) / 1000).toFixed(1)}s, store back in ${to - restarting} ms, first write accepted ${recovered - to} ms later`,
  );
}
await sleep(Math.max(0, started + seconds * 1000 - Date.now()));
await traffic.stop();
reviewing = false;
await reviewer;

// Everything left in flight finishes on the same running server.
let rows: { id: string; status: string; kind: string; created_at: string; response_body: string | null }[] =
  [];
for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(200)) {
  rows = await actions(stack.airlock.store);
  if (rows.every((a) => a.status !== 'pending')) break;
}
const byId = new Map(rows.map((a) => [a.id, a]));
const inWindow = (t: number) => outages.some((o) => t > o.from && t < o.to);
const windowOf = (t: number) => outages.find((o) => t > o.from && t < o.to);
const tries = traffic.refunds.flatMap((r) => r.attempts);
const refundPosts = stack.sandbox.requests().filter((q) => q.method === 'POST' && q.path === '/v1/refunds');
const duringPosts = refundPosts.filter((q) => inWindow(q.at));
// A write the sandbox got while the store was down is legitimate only for an action recorded before the outage.
const forwardedWhileDown = duringPosts.filter((q) => {
  const row = byId.get(q.idempotencyKey?.replace(/^airlock-/, '') ?? '');
  return !row || Date.parse(row.created_at) >= windowOf(q.at)!.from;
}).length;
const toldAbout = new Set(traffic.refunds.map((r) => r.action).filter((a): a is string => a !== null));
const report = exactlyOnce(traffic.refunds, rows, stack.sandbox.list('refund'), stack.sandbox.requests());
const verify = await cli(['audit', 'verify', '--json'], env);
const ledger = verify.code === 0 ? (JSON.parse(verify.stdout) as { ok: boolean; events: number }) : null;

const figures = {
  store: storeKind,
  seed: firstSeed,
  seconds,
  outages: outages.length,
  down_seconds: Number((outages.reduce((s, o) => s + o.to - o.from, 0) / 1000).toFixed(1)),
  tries: tries.length,
  refused_503_while_down: tries.filter((t) => inWindow(t.start) && t.status === 503).length,
  refused_503_total: tries.filter((t) => t.status === 503).length,
  served: tries.filter((t) => t.status === 200 || t.code === 'approval_required').length,
  in_progress_409: tries.filter((t) => t.status === 409).length,
  refunds_made: traffic.refunds.filter((r) => r.outcome === 'refunded').length,
  refunds_held: traffic.refunds.filter((r) => r.outcome === 'held').length,
  unfinished: traffic.refunds.filter((r) => r.outcome === 'unfinished').length,
  reviews_approved: reviews.approved,
  reviews_refused_503: reviews.refused,
  actions_created_while_down: rows.filter((a) => inWindow(Date.parse(a.created_at))).length,
  upstream_writes_while_down: duringPosts.length,
  forwarded_while_down: forwardedWhileDown,
  recovery_ms: outages.map((o) => o.recoveryMs),
  store_restart_ms: outages.map((o) => o.restartMs),
  actions: rows.length,
  completed: rows.filter((a) => a.status === 'completed').length,
  unsettled: rows.filter((a) => a.status === 'pending').length,
  lost: report.lost + [...toldAbout].filter((id) => !byId.has(id)).length,
  duplicates: report.duplicates,
  unledgered_writes: report.unledgered,
  missing_upstream: report.missingUpstream,
  upstream_refunds: report.upstreamRefunds,
  ledger: ledger?.ok ? `OK, ${ledger.events} events` : `FAILED: ${verify.stdout}${verify.stderr}`,
};
console.log(JSON.stringify(figures, null, 2));
const problems = [
  figures.outages === 0 && 'no outage happened (make --seconds longer than --every)',
  figures.refused_503_while_down === 0 && 'no write was refused during an outage',
  figures.forwarded_while_down > 0 && 'writes were forwarded while the store was down',
  figures.actions_created_while_down > 0 && 'actions were recorded while the store was down',
  figures.lost > 0 && 'actions were lost',
  figures.duplicates > 0 && 'refunds were duplicated upstream',
  figures.unledgered_writes > 0 && 'upstream writes without an action',
  figures.missing_upstream > 0 && 'completed actions without their refund upstream',
  figures.unsettled > 0 && 'actions left pending',
  figures.unfinished > 0 && 'agent refunds never got a definitive answer',
  !ledger?.ok && 'the ledger does not verify',
].filter(Boolean);
await cleanup();
if (problems.length) {
  console.error(`outage: FAILED: ${problems.join('; ')}`);
  process.exit(1);
}
console.log('outage: every check held');
