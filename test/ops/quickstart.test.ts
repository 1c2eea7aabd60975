// docs/quickstart.md, step by step, in a fresh temporary folder: init, policy test, serve, the example agent,
// approval, then the look-around commands.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { cli, ROOT, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { stripeAt, tempDir } from '../helpers/stack.ts';

let server: ServerProcess | undefined;
afterAll(async () => {
  if (server) await stopProcess(server, 'SIGKILL');
});

it('follows docs/quickstart.md from airlock init to a held, approved and executed refund', async () => {
  const dir = join(tempDir(), 'my-airlock');
  // Step 2: init prints the key and token once, in the words the quickstart quotes.
  const init = await cli(
    ['init', '--dir', dir, '--agent', 'support-bot', '--reviewer', 'finance@example.com'],
    {},
  );
  expect(init.code).toBe(0);
  const agentKey = init.stdout.match(/new Stripe\('(ak_\w+)'/)?.[1];
  const reviewerToken = init.stdout.match(/API token \(shown only now\) (rvw_\w+)/)?.[1];
  expect(agentKey, init.stdout).toBeDefined();
  expect(reviewerToken, init.stdout).toBeDefined();
  const config = join(dir, 'airlock.yaml');
  const tests = await cli(['--config', config, 'policy', 'test', join(dir, 'policy.yaml')], {});
  expect(tests.code, tests.stderr).toBe(0);
  server = await spawnAirlock({ AIRLOCK_CONFIG: config, AIRLOCK_SANDBOX_PORT: '0' });
  const sandboxUrl = server.output().match(/"sandbox":"(http:\/\/[^"]+)"/)?.[1];
  expect(sandboxUrl).toBeDefined();

  // Step 3: a charge on the sandbox.
  const sandbox = stripeAt('sk_test_x', Number(new URL(sandboxUrl!).port));
  const ch = await sandbox.charges.create({ amount: 100000, currency: 'usd', source: 'tok_visa' });

  // Step 4: the example agent; step 5: the reviewer approves by API while it waits.
  const agent = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', 'stripe-agent.ts')], {
    cwd: ROOT,
    env: { ...process.env, AIRLOCK_URL: server.url, AIRLOCK_AGENT_KEY: agentKey!, CHARGE: ch.id },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  agent.stdout!.on('data', (d) => {
    out += d;
  });
  agent.stderr!.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<number | null>((resolve) => agent.once('exit', resolve));
  const deadline = Date.now() + 20_000;
  while (!/held act_\w+/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const held = out.match(/held (act_\w+)/)?.[1];
  expect(held, `${out}\n${err}`).toBeDefined();
  expect(out).toMatch(/^allowed re_\w+ succeeded$/m);
  const approve = await fetch(`${server.url}/api/actions/${held}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${reviewerToken}`, 'content-type': 'application/json' },
    body: '{"note":"verified"}',
  });
  expect(approve.status).toBe(200);
  expect(await exited).toBe(0);
  expect(out).toMatch(/^decided completed$/m);
  expect(out).toMatch(/^executed re_\w+ 60000$/m);
  expect((await sandbox.refunds.list({ charge: ch.id })).data.map((r) => r.amount).sort()).toEqual([
    2000, 60000,
  ]);

  // Step 6: look at what was recorded.
  const list = await cli(['--config', config, 'actions', 'list', '--json'], {});
  expect(list.code).toBe(0);
  expect(JSON.parse(list.stdout).data.map((a: { id: string }) => a.id)).toContain(held);
  const audit = await cli(['--config', config, 'audit', 'verify'], {});
  expect(audit.code, audit.stdout + audit.stderr).toBe(0);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  expect(metrics).toContain('airlock_decisions_total{outcome="review",kind="refund.create"} 1');
  expect(metrics).toContain('airlock_decisions_total{outcome="allow",kind="refund.create"} 1');
  const ready = await fetch(`${server.url}/readyz`);
  expect(ready.status).toBe(200);
}, 90_000);
