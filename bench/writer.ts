// The SQLite writer on the event loop (the default) against the writer in a worker thread
// (AIRLOCK_SQLITE_WRITER=worker): (d)'s allow-path load through two `airlock serve` processes on fresh stores,
// alternated within each round, with the CPU per request of the whole process and of its main thread (the event
// loop) from /proc, before and after each run. The main thread's CPU over the run's wall time is how busy the
// event loop was.
//
// Usage: node --import tsx bench/writer.ts [--rounds 5 --seconds 8 --connections 32 --agents 8]
// AIRLOCK_PROFILE_DIR=dir writes a V8 CPU profile of each Airlock process there.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type AirlockOptions,
  createAgentKey,
  ROOT,
  type Running,
  runLoad,
  startAirlock,
  startInstantUpstream,
} from './servers.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    agents: { type: 'string', default: '8' },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const AGENTS = Number(values.agents);
const CLK_TCK = 100;

/** user + system ticks of a process (all its threads) or of one of its threads. */
function ticks(path: string): number {
  const text = readFileSync(path, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

interface Variant {
  name: string;
  env: Record<string, string>;
  server?: Running;
  key?: string;
  runs: {
    rps: number;
    p50: number;
    p99: number;
    errors: number;
    cpuUs: number;
    mainUs: number;
    busy: number;
  }[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const dir = mkdtempSync(join(tmpdir(), 'airlock-writer-'));
const upstream = await startInstantUpstream();
const variants: Variant[] = [
  { name: 'event loop', env: {}, runs: [] },
  { name: 'worker thread', env: { AIRLOCK_SQLITE_WRITER: 'worker' }, runs: [] },
];
try {
  for (const v of variants) {
    const o: AirlockOptions = {
      data: join(dir, `${v.name.replace(' ', '-')}.db`),
      upstream: upstream.url,
      policy: join(ROOT, 'bench/policy.yaml'),
      profileDir: process.env['AIRLOCK_PROFILE_DIR'],
      env: v.env,
    };
    const keys: string[] = [];
    for (let i = 0; i < AGENTS; i++) keys.push(await createAgentKey(o, `bench-${i}`));
    v.key = keys.join(',');
    v.server = await startAirlock(o);
  }
  console.log(
    `${cpus().length} × ${cpus()[0]?.model}, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  for (let round = 0; round <= ROUNDS; round++) {
    for (const v of round % 2 ? variants : [...variants].reverse()) {
      const pid = v.server!.child.pid!;
      const before = { all: ticks(`/proc/${pid}/stat`), main: ticks(`/proc/${pid}/task/${pid}/stat`) };
      const r = await runLoad({
        url: v.server!.url,
        scenario: 'refund',
        key: v.key!,
        connections: CONNECTIONS,
        seconds: round === 0 ? 2 : SECONDS,
        tag: `writer-${v.name.replace(' ', '-')}`,
      });
      const all = ticks(`/proc/${pid}/stat`) - before.all;
      const main = ticks(`/proc/${pid}/task/${pid}/stat`) - before.main;
      // Round 0 warms both up (JIT, first pages of the store) and is not counted.
      if (round === 0) continue;
      const served = r.rps * SECONDS;
      const run = {
        rps: r.rps,
        p50: r.p50,
        p99: r.p99,
        errors: r.errors,
        cpuUs: ((all / CLK_TCK) * 1e6) / served,
        mainUs: ((main / CLK_TCK) * 1e6) / served,
        busy: main / CLK_TCK / SECONDS,
      };
      v.runs.push(run);
      console.log(
        `round ${round} ${v.name.padEnd(13)} ${r.rps.toFixed(0).padStart(5)} req/s  p50 ${r.p50.toFixed(1)} ms  ` +
          `p99 ${r.p99.toFixed(1)} ms  CPU ${run.cpuUs.toFixed(0)} µs/req (main thread ${run.mainUs.toFixed(0)}, ` +
          `busy ${(run.busy * 100).toFixed(0)}%)  errors ${r.errors}`,
      );
    }
  }
  console.log(`\nmedians of ${ROUNDS} rounds of ${SECONDS} s, ${CONNECTIONS} connections, ${AGENTS} agents:`);
  console.log(
    '| SQLite writer | req/s | p50 ms | p99 ms | CPU µs/req | main thread µs/req | main thread busy |',
  );
  console.log('|---|--:|--:|--:|--:|--:|--:|');
  for (const v of variants) {
    const m = (k: keyof Variant['runs'][number]) => median(v.runs.map((r) => r[k]));
    console.log(
      `| ${v.name} | ${m('rps').toFixed(0)} | ${m('p50').toFixed(1)} | ${m('p99').toFixed(1)} | ` +
        `${m('cpuUs').toFixed(0)} | ${m('mainUs').toFixed(0)} | ${(m('busy') * 100).toFixed(0)}% |`,
    );
  }
  const ratio = variants[1]!.runs.map((r, i) => r.rps / variants[0]!.runs[i]!.rps);
  console.log(`worker ÷ event loop req/s, per round: ${ratio.map((x) => x.toFixed(2)).join(', ')}`);
} finally {
  for (const v of variants) await v.server?.stop();
  await upstream.stop();
  rmSync(dir, { recursive: true, force: true });
}
