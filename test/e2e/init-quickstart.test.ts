// The first five minutes: `airlock init` in an empty folder, then the README quickstart against the built-in sandbox.
import { afterAll, expect, it } from 'vitest';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { rejection, stripeAt, tempDir } from '../helpers/stack.ts';

let server: ServerProcess | undefined;
afterAll(async () => {
  if (server) await stopProcess(server, 'SIGKILL');
});

it('goes from airlock init to a held and approved refund with the built-in sandbox', async () => {
  const dir = tempDir();
  const init = await cli(
    ['init', '--dir', dir, '--agent', 'support-bot', '--reviewer', 'lead@example.com', '--json'],
    {},
  );
  expect(init.code).toBe(0);
  const setup = JSON.parse(init.stdout);
  expect(setup.agent.key).toMatch(/^ak_/);
  expect(setup.reviewer.token).toMatch(/^rvw_/);

  // A second init refuses to overwrite what the first wrote.
  const again = await cli(['init', '--dir', dir], {});
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(/Refusing to overwrite/);

  const tests = await cli(['policy', 'test', setup.policy], { AIRLOCK_CONFIG: setup.config });
  expect(tests.code).toBe(0);

  server = await spawnAirlock({ AIRLOCK_CONFIG: setup.config, AIRLOCK_SANDBOX_PORT: '0' });
  const sandboxUrl = server.output().match(/"sandbox":"(http:\/\/[^"]+)"/)?.[1];
  expect(sandboxUrl).toBeDefined();
  const sandbox = stripeAt('sk_test_quickstart', Number(new URL(sandboxUrl!).port));
  const ch = await sandbox.charges.create({ amount: 60000, currency: 'usd', source: 'tok_visa' });

  const agent = stripeAt(setup.agent.key, server.port);
  const small = await agent.refunds.create({ charge: ch.id, amount: 2000 });
  expect(small.status).toBe('succeeded');
  const held = await rejection(agent.refunds.create({ charge: ch.id, amount: 55000 }));
  expect(held.code).toBe('approval_required');

  const headers = { authorization: `Bearer ${setup.reviewer.token}`, 'content-type': 'application/json' };
  const approved = await fetch(`${server.url}/api/actions/${held.raw.airlock_action}/approve`, {
    method: 'POST',
    headers,
    body: '{"note":"quickstart"}',
  });
  expect(approved.status).toBe(200);
  const done = await (
    await fetch(`${server.url}/api/actions/${held.raw.airlock_action}?wait=10`, { headers })
  ).json();
  expect(done.status).toBe('completed');
  const refunds = await sandbox.refunds.list({ charge: ch.id });
  expect(refunds.data.map((r) => r.amount).sort()).toEqual([2000, 55000]);
}, 60_000);
