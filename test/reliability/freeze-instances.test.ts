// The kill switch across instances: a freeze set from the CLI reaches every instance on the shared PostgreSQL store.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAgentKey } from '../../src/auth/credentials.ts';
import { openPostgresStore } from '../../src/store/postgres/open.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { rejection, stripeAt } from '../helpers/stack.ts';
import { createPostgresDatabase, type TestDatabase, unavailable } from '../store/databases.ts';

let db: TestDatabase;
let sandbox: Sandbox;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  if (unavailable('postgres')) return;
  db = await createPostgresDatabase();
  sandbox = await startSandbox();
});
afterAll(async () => {
  for (const s of servers) await stopProcess(s, 'SIGKILL');
  await sandbox?.close();
  await db?.drop();
});

it.skipIf(unavailable('postgres'))(
  'blocks writes on every instance within seconds of `airlock freeze`, and resumes on unfreeze',
  async () => {
    const env = { DATABASE_URL: db.url, STRIPE_API_BASE: sandbox.url };
    const store = await openPostgresStore(db.url);
    const { key } = await createAgentKey(store, 'fleet-bot');
    await store.close();
    servers.push(await spawnAirlock(env), await spawnAirlock(env));
    const direct = stripeAt('sk_test_direct', sandbox.port);
    const refundOn = async (s: ServerProcess) => {
      const ch = await direct.charges.create({ amount: 5000, currency: 'usd', source: 'tok_visa' });
      return stripeAt(key, s.port).refunds.create({ charge: ch.id, amount: 1000 });
    };
    for (const s of servers) expect((await refundOn(s)).status).toBe('succeeded');

    expect((await cli(['freeze', '--reason', 'drill'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    for (const s of servers) {
      const err = await rejection(refundOn(s));
      expect(err.code).toBe('action_blocked');
      expect(err.message).toContain('drill');
    }
    expect(sandbox.list('refund')).toHaveLength(2);

    expect((await cli(['unfreeze'], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    for (const s of servers) expect((await refundOn(s)).status).toBe('succeeded');
    expect(sandbox.list('refund')).toHaveLength(4);
  },
  60_000,
);
