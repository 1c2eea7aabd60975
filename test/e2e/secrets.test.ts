// Guarantee 7: keys and tokens never reach the ledger, the action store, the logs or API answers.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Sandbox } from '../../src/stripe/sandbox/index.ts';
import { credentialsFromCli, prepareServe } from '../helpers/operator.ts';
import { type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { rejection, stripeAt } from '../helpers/stack.ts';

const UPSTREAM_KEY = 'sk_test_UPSTREAMsecretValue0123456789';
let sandbox: Sandbox;
let server: ServerProcess;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  ({ sandbox, dir, env } = await prepareServe({ STRIPE_SECRET_KEY: UPSTREAM_KEY }));
});
afterAll(async () => {
  if (server) await stopProcess(server, 'SIGKILL');
  await sandbox.close();
});

it('keeps the upstream key, agent keys and reviewer tokens out of the database, the logs and every answer', async () => {
  const { agentKey, reviewerToken: token } = await credentialsFromCli(env, {
    agent: 'bot',
    reviewer: 'a@example.com',
  });
  server = await spawnAirlock({ ...env, AIRLOCK_LOG_LEVEL: 'debug' });
  const agent = stripeAt(agentKey, server.port);
  const direct = stripeAt('sk_test_direct', sandbox.port);
  const ch = await direct.charges.create({ amount: 90000, currency: 'usd', source: 'tok_visa' });

  const answers: string[] = [];
  answers.push(JSON.stringify(await agent.refunds.create({ charge: ch.id, amount: 1000 })));
  const held = await rejection(agent.refunds.create({ charge: ch.id, amount: 60000 }));
  answers.push(JSON.stringify(held.raw));
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const approve = await fetch(`${server.url}/api/actions/${held.raw.airlock_action}/approve`, {
    method: 'POST',
    headers,
    body: '{"note":"fine"}',
  });
  answers.push(await approve.text());
  answers.push(
    await (await fetch(`${server.url}/api/actions/${held.raw.airlock_action}?wait=5`, { headers })).text(),
  );
  answers.push(
    await (await fetch(`${server.url}/api/actions/${held.raw.airlock_action}/events`, { headers })).text(),
  );
  // Wrong and misplaced credentials are answered without echoing them.
  const wrong = 'ak_WRONGwrongWRONGwrongWRONGwrong0000000000';
  answers.push(
    JSON.stringify((await rejection(stripeAt(wrong, server.port).refunds.create({ charge: ch.id }))).raw),
  );
  answers.push(
    JSON.stringify((await rejection(stripeAt(token, server.port).refunds.create({ charge: ch.id }))).raw),
  );
  answers.push(
    await (
      await fetch(`${server.url}/api/actions`, { headers: { authorization: `Bearer ${agentKey}x` } })
    ).text(),
  );
  await stopProcess(server);

  // The sandbox did get the upstream key: the test would be vacuous otherwise.
  expect(sandbox.requests().length).toBeGreaterThan(0);

  const files = readdirSync(dir).map((f) => readFileSync(join(dir, f)).toString('latin1'));
  const haystacks = { database: files.join('\n'), logs: server.output(), answers: answers.join('\n') };
  for (const [where, text] of Object.entries(haystacks)) {
    for (const [what, secret] of Object.entries({ UPSTREAM_KEY, agentKey, token, wrong })) {
      expect(text.includes(secret), `${what} found in ${where}`).toBe(false);
      expect(text.includes(secret.slice(-20)), `the tail of ${what} found in ${where}`).toBe(false);
    }
  }
  expect(haystacks.logs.length).toBeGreaterThan(100);
}, 60_000);
