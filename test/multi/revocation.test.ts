// A revoked agent key stops working at once everywhere: on the instance that revoked it, on another instance of the
// same PostgreSQL within a second (NOTIFY), and on SQLite when another process (the CLI) revoked it. Every server
// here is a real `airlock serve` process, so only the database can carry the news between them.
import { join } from 'node:path';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { rejection, stripeAt, tempDir } from '../helpers/stack.ts';
import { createPostgresDatabase, type TestDatabase, unavailable } from '../store/databases.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether the key is refused as a wrong key on this instance: a read through the proxy, forwarded if accepted. */
async function refused(agent: Stripe, chargeId: string): Promise<boolean> {
  try {
    await agent.charges.retrieve(chargeId);
    return false;
  } catch (err) {
    const e = err as { statusCode?: number; raw?: { code?: string } };
    if (e.statusCode === 401 && e.raw?.code === 'invalid_api_key') return true;
    throw err;
  }
}

/** An MCP initialize with the key: 200 while it is accepted, 401 once refused. */
async function mcpStatus(port: number, key: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
    }),
  });
  await res.text();
  return res.status;
}

let sandbox: Sandbox;
let chargeId: string;
beforeAll(async () => {
  sandbox = await startSandbox();
  const direct = stripeAt('sk_test_direct', sandbox.port);
  chargeId = (await direct.charges.create({ amount: 5000, currency: 'usd', source: 'tok_visa' })).id;
});
afterAll(async () => {
  await sandbox?.close();
});

describe.skipIf(unavailable('postgres'))('revocation across instances on one PostgreSQL', () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  const processes: ServerProcess[] = [];

  beforeAll(async () => {
    db = await createPostgresDatabase();
    env = { DATABASE_URL: db.url, STRIPE_API_BASE: sandbox.url };
    expect((await cli(['migrate'], env)).code).toBe(0);
  }, 60_000);
  afterAll(async () => {
    for (const p of processes) await stopProcess(p);
    await db?.drop();
  });

  it('refuses a key revoked on instance A at once on A, and on instance B within a second, proxy and MCP alike', async () => {
    const created = JSON.parse(
      (await cli(['keys', 'create', '--agent', 'refund-bot', '--json'], env)).stdout,
    );
    const admin = JSON.parse((await cli(['admins', 'create', 'ops', '--json'], env)).stdout).token as string;
    const [a, b] = await Promise.all([spawnAirlock(env), spawnAirlock(env)]);
    processes.push(a!, b!);
    const onA = stripeAt(created.key, a!.port);
    const onB = stripeAt(created.key, b!.port);
    // Both instances have the key in their caches (proxy and MCP), which used to keep it for 10 s.
    for (let i = 0; i < 3; i++) {
      expect(await refused(onA, chargeId)).toBe(false);
      expect(await refused(onB, chargeId)).toBe(false);
      expect(await mcpStatus(b!.port, created.key)).toBe(200);
    }

    const revoke = await fetch(`${a!.url}/api/admin/keys/${created.id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(revoke.status).toBe(200);
    const revokedAt = Date.now();
    expect(await refused(onA, chargeId)).toBe(true);

    let elapsed = -1;
    while (Date.now() - revokedAt < 10_000) {
      if (await refused(onB, chargeId)) {
        elapsed = Date.now() - revokedAt;
        break;
      }
      await sleep(20);
    }
    expect(elapsed, 'B refused the key only after').toBeGreaterThanOrEqual(0);
    expect(elapsed).toBeLessThan(1000);
    expect(await mcpStatus(b!.port, created.key)).toBe(401);
    // A key that was not revoked still works on both.
    const other = JSON.parse((await cli(['keys', 'create', '--agent', 'other-bot', '--json'], env)).stdout);
    expect(await refused(stripeAt(other.key, b!.port), chargeId)).toBe(false);
  }, 120_000);
});

describe('revocation by another process on SQLite', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    if (server) await stopProcess(server);
  });

  it('refuses a key the CLI revoked on the running server’s next request', async () => {
    const env = { AIRLOCK_DATA: join(tempDir(), 'airlock.db'), STRIPE_API_BASE: sandbox.url };
    const created = JSON.parse(
      (await cli(['keys', 'create', '--agent', 'refund-bot', '--json'], env)).stdout,
    );
    server = await spawnAirlock(env);
    const agent = stripeAt(created.key, server.port);
    for (let i = 0; i < 3; i++) expect(await refused(agent, chargeId)).toBe(false);
    expect(await mcpStatus(server.port, created.key)).toBe(200);

    expect((await cli(['keys', 'revoke', created.id], env)).code).toBe(0);
    expect(await refused(agent, chargeId)).toBe(true);
    expect(await mcpStatus(server.port, created.key)).toBe(401);
    const err = await rejection(agent.charges.retrieve(chargeId));
    expect(err.message).toMatch(/Invalid API Key provided/);
  }, 120_000);
});
