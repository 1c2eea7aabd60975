// Issue 18, history backfill: `airlock stripe backfill` pages through 10,000 Stripe Events with the official client,
// is SIGKILLed part way (when the server is asked for its 30th page, not after a time), and a second run resumes
// from the stored cursor. Every event ends up stored once, each outside one is one ledger event, the ledger
// verifies, and the velocity windows include the backfilled outside refunds, each once.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT } from '../../harness/serve-process.ts';
import { verifyLedger } from '../../src/engine/ledger.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import { cli } from '../helpers/process.ts';
import { tempDir } from '../helpers/stack.ts';
import { ledger } from '../helpers/store-reads.ts';

const TOTAL = 10_000;
const NOW = Math.floor(Date.now() / 1000);

/** Newest first, as Stripe lists them: every 10th a refund made outside Airlock, every 25th an automatic payout. */
const EVENTS = Array.from({ length: TOTAL }, (_, i) => {
  const created = NOW - i * 100;
  const id = `evt_bf${String(i).padStart(6, '0')}`;
  if (i % 10 === 0)
    return {
      id,
      object: 'event',
      created,
      type: 'refund.created',
      data: {
        object: { id: `re_bf${i}`, object: 'refund', amount: 100, currency: 'usd', charge: `ch_bf${i}` },
      },
      request: { id: `req_bf${i}`, idempotency_key: null },
    };
  if (i % 25 === 1)
    return {
      id,
      object: 'event',
      created,
      type: 'payout.created',
      data: { object: { id: `po_bf${i}`, object: 'payout', amount: 5000, currency: 'usd' } },
      request: { id: null, idempotency_key: null },
    };
  return {
    id,
    object: 'event',
    created,
    type: 'charge.succeeded',
    data: { object: { id: `ch_bf${i}`, object: 'charge', amount: 700, currency: 'usd' } },
    request: { id: `req_c${i}`, idempotency_key: null },
  };
});
const OUTSIDE = EVENTS.filter((e) => e.type !== 'charge.succeeded').length;

let server: Server;
let baseUrl: string;
const requests: URL[] = [];
let onRequest: (n: number) => void = () => {};

beforeAll(async () => {
  // GET /v1/events in Stripe's list shape: limit, starting_after, created[gte].
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url);
    onRequest(requests.length);
    if (url.pathname !== '/v1/events') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { type: 'invalid_request_error', message: 'no such path' } }));
      return;
    }
    const limit = Number(url.searchParams.get('limit') ?? 10);
    const gte = Number(url.searchParams.get('created[gte]') ?? 0);
    const after = url.searchParams.get('starting_after');
    const from = after ? EVENTS.findIndex((e) => e.id === after) + 1 : 0;
    const inWindow = EVENTS.slice(from).filter((e) => e.created >= gte);
    const data = inWindow.slice(0, limit);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', url: '/v1/events', has_more: inWindow.length > limit, data }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('airlock stripe backfill', () => {
  it('resumes after SIGKILL and stores every event once', async () => {
    const dir = tempDir();
    const env = {
      AIRLOCK_DATA: join(dir, 'airlock.db'),
      STRIPE_API_BASE: baseUrl,
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
    onRequest = (n) => {
      if (n === 30) child.kill('SIGKILL');
    };
    expect(await exited).toBe('SIGKILL');
    onRequest = () => {};
    // Not a terminal: one log line per page.
    expect(log).toMatch(/backfill: 100 event\(s\) read, 100 new, back to /);
    const firstRun = requests.length;

    let store = await openSqliteStore(env.AIRLOCK_DATA);
    const partial = await store.stripeEvents.count();
    await store.close();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(TOTAL);

    const second = await cli(['stripe', 'backfill'], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('Backfill complete');
    // It resumed from the stored cursor instead of reading from the newest event again.
    expect(requests[firstRun]?.searchParams.get('starting_after')).toMatch(/^evt_bf/);
    expect(requests.length - firstRun).toBeLessThan(TOTAL / 100 - 20);

    store = await openSqliteStore(env.AIRLOCK_DATA);
    try {
      expect(await store.stripeEvents.count()).toBe(TOTAL);
      const outside = await ledger(store, (e) => e.type === 'stripe.outside');
      expect(outside).toHaveLength(OUTSIDE);
      expect(new Set(outside.map((e) => JSON.parse(e.data).event)).size).toBe(OUTSIDE);
      expect((await verifyLedger(store)).problems).toEqual([]);

      // Backfilled refunds count in the account's windows, once each: the last 24 hours hold i·100 s ≤ 86,400.
      const day = await store.velocity.total({
        scope: 'account',
        subject: null,
        account: null,
        kinds: ['refund.create'],
        statuses: ['completed'],
        since: new Date((NOW - 86_400) * 1000).toISOString(),
        until: new Date((NOW + 1) * 1000).toISOString(),
      });
      const expected = EVENTS.filter((e) => e.type === 'refund.created' && e.created >= NOW - 86_400).length;
      expect(day).toEqual({ count: expected, usd: expected });

      // A third run starts a new pass and adds nothing.
      const third = await cli(['stripe', 'backfill'], env);
      expect(third.code, third.stderr).toBe(0);
      expect(third.stdout).toContain(`${TOTAL} event(s) read, 0 new`);
      expect(await store.stripeEvents.count()).toBe(TOTAL);
    } finally {
      await store.close();
    }
  }, 240_000);
});
