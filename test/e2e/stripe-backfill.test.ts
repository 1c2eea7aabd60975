// Issue 18, history backfill against the sandbox: the sandbox's bulk route makes 10,000 real events (a charge,
// 2,500 refunds made outside Airlock, each a refund.created and a charge.refunded, and 4,999 customers), and
// `airlock stripe backfill`, pointed at the sandbox, reads them with the official client's events.list. It is
// SIGKILLed part way (when the sandbox is asked for its 30th page, not after a time), and a second run resumes
// from the stored cursor. Every event ends up stored once, each outside refund is one ledger event, the ledger
// verifies, and the velocity windows include the backfilled outside refunds, each once (a refund's
// charge.refunded does not count it again).
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT } from '../../harness/serve-process.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli } from '../helpers/process.ts';
import { stripeAt, tempDir } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';

const TOTAL = 10_000;
const REFUNDS = 2_500;
const CUSTOMERS = TOTAL - 1 - 2 * REFUNDS;

let sandbox: Sandbox;
let dir: string;
const pages: string[] = [];
let onPage: (n: number) => void = () => {};

beforeAll(async () => {
  dir = tempDir();
  sandbox = await startSandbox({ dbPath: join(dir, 'sandbox.db') });
  const ch = await stripeAt('sk_test_direct', sandbox.port).charges.create({
    amount: REFUNDS * 100,
    currency: 'usd',
    source: 'tok_visa',
  });
  const bulk = async (body: object) =>
    fetch(`${sandbox.url}/__sandbox/bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  expect(
    (await bulk({ path: '/v1/refunds', params: { charge: ch.id, amount: '100' }, count: REFUNDS })).status,
  ).toBe(200);
  expect(
    (await bulk({ path: '/v1/customers', params: { description: 'backfill' }, count: CUSTOMERS })).status,
  ).toBe(200);
  expect(sandbox.events()).toHaveLength(TOTAL);
  sandbox.onRequest((r) => {
    if (r.method === 'GET' && r.path === '/v1/events') {
      pages.push(r.rawQuery);
      onPage(pages.length);
    }
  });
});
afterAll(async () => {
  await sandbox?.close();
});

describe('airlock stripe backfill of the sandbox', () => {
  it('resumes after SIGKILL and stores every one of 10,000 sandbox events once', async () => {
    const env = {
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      STRIPE_API_BASE: sandbox.url,
      AIRLOCK_LOG_LEVEL: 'silent',
    };
    // First run: killed when it asks for its 30th page.
    const child: ChildProcess = spawn(process.execPath, [BIN, 'stripe', 'backfill'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stderr?.on('data', (d) => {
      log += d;
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    onPage = (n) => {
      if (n === 30) child.kill('SIGKILL');
    };
    expect(await exited).toBe('SIGKILL');
    onPage = () => {};
    // Not a terminal: one log line per page.
    expect(log).toMatch(/backfill: 100 event\(s\) read, 100 new, back to /);
    const firstRun = pages.length;

    let store = await openSqliteStore(env.AIRLOCK_DATA);
    const partial = await store.stripeEvents.count();
    await store.close();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(TOTAL);

    const second = await cli(['stripe', 'backfill'], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('Backfill complete');
    // It resumed from the stored cursor instead of reading from the newest event again.
    expect(new URLSearchParams(pages[firstRun]).get('starting_after')).toMatch(/^evt_/);
    expect(pages.length - firstRun).toBeLessThan(TOTAL / 100 - 20);

    store = await openSqliteStore(env.AIRLOCK_DATA);
    try {
      expect(await store.stripeEvents.count()).toBe(TOTAL);
      const outside = await ledger(store, (e) => e.type === 'stripe.outside');
      expect(outside).toHaveLength(REFUNDS);
      expect(new Set(outside.map((e) => JSON.parse(e.data).object)).size).toBe(REFUNDS);
      expect(outside.every((e) => JSON.parse(e.data).via === 'backfill')).toBe(true);
      expect((await verifyLedger(store)).problems).toEqual([]);

      // The backfilled refunds count in the account's day, once each: 2,500 refunds of $1.
      const now = Date.now();
      const day = await store.velocity.total({
        scope: 'account',
        subject: null,
        account: null,
        kinds: ['refund.create'],
        statuses: ['completed'],
        since: new Date(now - 86_400_000).toISOString(),
        until: new Date(now + 60_000).toISOString(),
      });
      expect(day).toEqual({ count: REFUNDS, usd: REFUNDS });

      // A third run starts a new pass and adds nothing.
      const third = await cli(['stripe', 'backfill'], env);
      expect(third.code, third.stderr).toBe(0);
      expect(third.stdout).toContain(`${TOTAL} event(s) read, 0 new`);
      expect(await store.stripeEvents.count()).toBe(TOTAL);
      expect(await ledger(store, (e) => e.type === 'stripe.outside')).toHaveLength(REFUNDS);
    } finally {
      await store.close();
    }
  }, 240_000);
});
