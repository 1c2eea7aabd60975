// Guarantee 2 under a crash: the server is SIGKILLed after Stripe has acted but before Airlock heard the answer.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Sandbox } from '../../src/stripe/sandbox/index.ts';
import { credentialsFromCli, prepareServe } from '../helpers/operator.ts';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { rejection, stripeAt } from '../helpers/stack.ts';

let sandbox: Sandbox;
let env: Record<string, string>;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  ({ sandbox, env } = await prepareServe({
    AIRLOCK_DISPATCH_POLL_MS: '100',
    AIRLOCK_DISPATCH_BACKOFF_MS: '20',
  }));
});

afterAll(async () => {
  for (const s of servers) await stopProcess(s, 'SIGKILL');
  await sandbox.close();
});

it('executes an approved refund exactly once when the server is SIGKILLed between approval and the upstream answer', async () => {
  const { agentKey, reviewerToken: reviewer } = await credentialsFromCli(env, {
    agent: 'crash-bot',
    reviewer: 'ops@example.com',
  });
  const first = await spawnAirlock(env);
  servers.push(first);

  const direct = stripeAt('sk_test_direct', sandbox.port);
  const ch = await direct.charges.create({ amount: 75000, currency: 'usd', source: 'tok_visa' });
  const agent = stripeAt(agentKey, first.port);
  const err = await rejection(agent.refunds.create({ charge: ch.id, amount: 75000 }));
  expect(err.code).toBe('approval_required');
  const actionId: string = err.raw.airlock_action;

  // Stripe performs the refund and stores its idempotent answer, then holds the HTTP response: the crash window.
  sandbox.setFaults({ holdResponseMs: 60_000, pathPrefix: '/v1/refunds' });
  const reached = new Promise<void>((resolve) => {
    const off = sandbox.onRequest((r) => {
      if (r.idempotencyKey === `airlock-${actionId}`) {
        off();
        resolve();
      }
    });
  });
  const approve = await fetch(`${first.url}/api/actions/${actionId}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${reviewer}`, 'content-type': 'application/json' },
    body: '{}',
  });
  expect(approve.status).toBe(200);
  await reached;
  await new Promise((r) => setTimeout(r, 100)); // let the sandbox commit the refund before the kill
  await stopProcess(first, 'SIGKILL');
  expect(sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(1);

  sandbox.clearFaults();
  const second = await spawnAirlock(env);
  servers.push(second);
  let status = '';
  let action: any;
  for (let i = 0; i < 100 && status !== 'completed' && status !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${second.url}/api/actions/${actionId}`, {
      headers: { authorization: `Bearer ${reviewer}` },
    });
    action = await res.json();
    status = action.status;
  }
  expect(status).toBe('completed');
  expect(action.response_body.object).toBe('refund');
  const refunds = sandbox.list('refund').filter((r) => r['charge'] === ch.id);
  expect(refunds).toHaveLength(1);
  expect(action.response_body.id).toBe(refunds[0]!['id']);
  // Both attempts used the same key: the second got Stripe's stored answer, not a second refund.
  const attempts = sandbox.requests().filter((r) => r.idempotencyKey === `airlock-${actionId}`);
  expect(attempts.length).toBeGreaterThanOrEqual(2);
  await stopProcess(second);

  const verify = await cli(['audit', 'verify'], env);
  expect(verify.code).toBe(0);
}, 90_000);
