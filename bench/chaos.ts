// The crash loop (docs/RELIABILITY.md). Usage:
//   npm run chaos [-- --seconds 120 --kills 40 --agents 6 --reviewers 2 --store sqlite|postgres --seed 1 --faults --reconcile-ms 1000]
import { parseArgs } from 'node:util';
import { runChaos } from '../harness/chaos.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    kills: { type: 'string', default: '20' },
    agents: { type: 'string', default: '6' },
    reviewers: { type: 'string', default: '2' },
    store: { type: 'string', default: 'sqlite' },
    'postgres-url': {
      type: 'string',
      default: process.env['AIRLOCK_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
    seed: { type: 'string' },
    faults: { type: 'boolean', default: false },
    'reconcile-ms': { type: 'string', default: '1000' },
  },
});
const store = values.store === 'postgres' ? 'postgres' : 'sqlite';
const seed = values.seed ? Number(values.seed) : Date.now() % 1_000_000;
console.log(
  `chaos: ${values.seconds}s, ${values.kills} kills, ${values.agents} agents, store ${store}, seed ${seed}`,
);
const report = await runChaos({
  seconds: Number(values.seconds),
  kills: Number(values.kills),
  agents: Number(values.agents),
  reviewers: Number(values.reviewers),
  store,
  postgresUrl: values['postgres-url']!,
  seed,
  faults: values.faults,
  reconcileMs: Number(values['reconcile-ms']),
  log: (line) => console.log(`  ${line}`),
});
console.log(JSON.stringify(report, null, 2));
const ok =
  report.problems.length === 0 &&
  report.ledgerVerified &&
  report.duplicates === 0 &&
  report.lostActions === 0 &&
  report.unledgeredWrites === 0 &&
  report.failedButExecuted === 0 &&
  report.unsettled === 0;
console.log(ok ? 'chaos: all guarantees held' : 'chaos: GUARANTEES BROKEN');
process.exit(ok ? 0 : 1);
