// npm run load [-- --agents 200 --seconds 60]: mixed traffic from many agents; prints a JSON report.
import { parseArgs } from 'node:util';
import { runLoad } from '../harness/load.ts';

const { values } = parseArgs({
  options: { agents: { type: 'string', default: '200' }, seconds: { type: 'string', default: '60' } },
});
const report = await runLoad({ agents: Number(values.agents), seconds: Number(values.seconds) });
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const ok =
  report.errors === 0 &&
  report.duplicates === 0 &&
  report.unsettled === 0 &&
  report.ledgerOk &&
  report.completedRefunds === report.sandboxRefunds;
process.stdout.write(ok ? 'load: no errors, nothing lost or doubled\n' : 'load: FAILED\n');
if (!ok) process.exitCode = 1;
