// A short form of `npm run load`: many agents at once, no errors, every allowed or approved refund exactly once.
import { expect, it } from 'vitest';
import { runLoad } from '../../harness/load.ts';

it('serves 40 concurrent agents of mixed traffic with no errors, losses or duplicates', async () => {
  const report = await runLoad({ agents: 40, seconds: 5 });
  expect(report.errorSamples).toEqual([]);
  expect(report.errors).toBe(0);
  expect(report.requests).toBeGreaterThan(200);
  expect(report.held).toBeGreaterThan(0);
  expect(report.approved).toBe(report.held);
  expect(report.unsettled).toBe(0);
  expect(report.duplicates).toBe(0);
  expect(report.completedRefunds).toBe(report.sandboxRefunds);
  expect(report.ledgerOk).toBe(true);
}, 120_000);
