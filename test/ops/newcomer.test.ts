// What a newcomer hits first: the server's root, and a second Airlock on the same machine.
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../harness/serve-process.ts';
import { loadConfig } from '../../src/config/config.ts';
import { type RunningAirlock, startAirlock } from '../../src/server.ts';
import { type Stack, startStack, stripeAt, tempDir } from '../helpers/stack.ts';

let stack: Stack | null = null;
const running: RunningAirlock[] = [];
const blockers: Server[] = [];
afterEach(async () => {
  await stack?.close();
  stack = null;
  for (const a of running.splice(0)) await a.close();
  for (const b of blockers.splice(0)) await new Promise((r) => b.close(r));
});

describe('the root URL', () => {
  it('sends a browser on to the dashboard', async () => {
    stack = await startStack();
    const res = await fetch(`${stack.airlock.url}/`, {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
      redirect: 'manual',
    });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/review');
  });

  it('tells a script where each surface is, instead of 404', async () => {
    stack = await startStack();
    const res = await fetch(`${stack.airlock.url}/`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    expect(body).toMatchObject({
      object: 'airlock',
      dashboard: '/review',
      openapi: '/api/openapi.json',
      mcp: '/mcp',
    });
    // Each path it names answers (the dashboard with its login redirect), so the map is not stale.
    for (const path of [body['dashboard'], body['openapi'], body['health']]) {
      const r = await fetch(`${stack.airlock.url}${path}`, { redirect: 'manual' });
      expect([200, 302, 303], path).toContain(r.status);
    }
  });
});

/** Two consecutive free ports, so a test can name the one after Airlock's. */
async function freePair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    if (p < 65535 && (await canListen(p + 1))) return p;
  }
  throw new Error('no two consecutive free ports');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** An Airlock with no Stripe key, so it starts its own sandbox; its log lines are kept. */
async function startWithSandbox(port: number, env: Record<string, string> = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const dir = tempDir();
  const config = loadConfig({ PORT: String(port), AIRLOCK_DATA: join(dir, 'airlock.db'), ...env }, undefined);
  const airlock = await startAirlock(config, log);
  running.push(airlock);
  return { airlock, lines };
}

describe('the built-in sandbox port', () => {
  it('follows PORT: Airlock on P puts its sandbox on P+1', async () => {
    const port = await freePair();
    const { airlock } = await startWithSandbox(port);
    expect(airlock.port).toBe(port);
    expect(airlock.sandbox?.port).toBe(port + 1);
  });

  it('takes a free port when the one after PORT is taken, says so, and still works', async () => {
    const port = await freePair();
    blockers.push(await listenOn(port + 1));
    const { airlock, lines } = await startWithSandbox(port);
    const sandboxPort = airlock.sandbox!.port;
    expect(sandboxPort).not.toBe(port + 1);
    const said = lines.find((l) => l['wanted'] === port + 1);
    expect(said?.['msg']).toBe(
      `port ${port + 1} is taken (another Airlock?): the Stripe sandbox took free port ${sandboxPort}`,
    );
    // The sandbox it took is the one Airlock dispatches to.
    const charge = await stripeAt('sk_test_x', sandboxPort).charges.create({
      amount: 1000,
      currency: 'usd',
      source: 'tok_visa',
    });
    expect(charge.id).toMatch(/^ch_/);
  });

  it('refuses to start when an explicit AIRLOCK_SANDBOX_PORT is taken', async () => {
    const port = await freePair();
    blockers.push(await listenOn(port + 1));
    await expect(startWithSandbox(port, { AIRLOCK_SANDBOX_PORT: String(port + 1) })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});
