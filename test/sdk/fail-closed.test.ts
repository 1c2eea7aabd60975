// Fail closed: when Airlock cannot be reached, nothing moves money, and the error says so.
import { createServer, type Server, type Socket } from 'node:net';
import { AirlockClient, AirlockUnavailableError } from 'airlock/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection, startStack } from '../helpers/stack.ts';

let closedUrl: string;
let silent: Server;
let silentUrl: string;
const sockets: Socket[] = [];

/** A real fetch that records what each attempt sent. */
function recording(): { fetch: typeof fetch; bodies: string[] } {
  const bodies: string[] = [];
  return {
    bodies,
    fetch: (input, init) => {
      bodies.push(String(init?.body ?? ''));
      return fetch(input, init);
    },
  };
}

beforeAll(async () => {
  // A port that was just free: nothing listens there.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  closedUrl = `http://127.0.0.1:${port}`;
  // A server that accepts connections and never answers.
  silent = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
});

describe('server down (connection refused)', () => {
  it('throws AirlockUnavailableError saying the action was NOT executed, retrying only under one idempotency key', async () => {
    const rec = recording();
    const client = new AirlockClient({
      baseUrl: closedUrl,
      apiKey: 'ak_test',
      fetch: rec.fetch,
      maxRetries: 2,
    });
    const err = await rejection(
      client.actions.create({ url: 'https://api.example.com/refunds', amount: 60000, currency: 'usd' }),
    );
    expect(err).toBeInstanceOf(AirlockUnavailableError);
    expect(err.code).toBe('airlock_unavailable');
    expect(err.certain).toBe(true);
    expect(err.message).toMatch(/NOT executed/);
    expect(err.idempotencyKey).toMatch(/^sdk_/);
    expect(rec.bodies).toHaveLength(3);
    const keys = rec.bodies.map((b) => JSON.parse(b).idempotency_key);
    expect(new Set(keys)).toEqual(new Set([err.idempotencyKey]));
  });

  it('fails closed for money-moving calls even when fail-open is on for reads and advisory decisions', async () => {
    const client = new AirlockClient({
      baseUrl: closedUrl,
      apiKey: 'ak_test',
      maxRetries: 0,
      failOpen: { reads: true, advisoryDecisions: true },
    });
    const create = await rejection(client.actions.create({ url: 'https://api.example.com/payouts' }));
    expect(create).toBeInstanceOf(AirlockUnavailableError);
    expect(create.message).toMatch(/NOT executed/);
    const enforcing = await rejection(
      client.decisions.create({ intent: { kind: 'payout.create', amount: 100, currency: 'usd' } }),
    );
    expect(enforcing).toBeInstanceOf(AirlockUnavailableError);
  });

  it('answers reads and advisory decisions with a marked synthetic value only when opted in', async () => {
    const closed = new AirlockClient({ baseUrl: closedUrl, apiKey: 'ak_test', maxRetries: 0 });
    expect(await rejection(closed.actions.get('act_1'))).toBeInstanceOf(AirlockUnavailableError);
    expect(await rejection(closed.actions.list())).toBeInstanceOf(AirlockUnavailableError);
    expect(
      await rejection(closed.decisions.create({ intent: { kind: 'refund.create' } }, { advisory: true })),
    ).toBeInstanceOf(AirlockUnavailableError);

    const open = new AirlockClient({
      baseUrl: closedUrl,
      apiKey: 'ak_test',
      maxRetries: 0,
      failOpen: { reads: true, advisoryDecisions: true },
    });
    const action = await open.actions.get('act_1');
    expect(action).toMatchObject({
      id: 'act_1',
      status: 'unknown',
      synthetic: true,
      airlock_unavailable: true,
    });
    const list = await open.actions.list();
    expect(list).toMatchObject({ data: [], synthetic: true });
    const advisory = await open.decisions.create(
      { intent: { kind: 'refund.create', amount: 500, currency: 'usd' } },
      { advisory: true },
    );
    expect(advisory).toMatchObject({
      id: null,
      outcome: 'allow',
      reason_code: 'airlock_unavailable',
      synthetic: true,
      shadow: true,
    });
  });
});

describe('server slow or broken', () => {
  it('times out as unavailable (outcome unknown) and tells the caller to retry with the same key', async () => {
    const client = new AirlockClient({
      baseUrl: silentUrl,
      apiKey: 'ak_test',
      timeoutMs: 150,
      maxRetries: 1,
    });
    const before = sockets.length;
    const err = await rejection(
      client.actions.create({ url: 'https://api.example.com/refunds', idempotency_key: 'slow-1' }),
    );
    expect(err).toBeInstanceOf(AirlockUnavailableError);
    expect(err.certain).toBe(false);
    expect(err.message).toMatch(/NOT executed/);
    expect(err.message).toContain("'slow-1'");
    expect(sockets.length - before).toBe(2);
  });

  it('treats a store outage (503 store_unavailable) as unavailable, and so a server stopped after a hold', async () => {
    const stack = await startStack();
    try {
      const client = new AirlockClient({ baseUrl: stack.airlock.url, apiKey: stack.agentKey, maxRetries: 0 });
      const held = await client.decisions.create({
        intent: { kind: 'refund.create', amount: 60000, currency: 'usd' },
      });
      expect(held.status).toBe('awaiting_approval');
      await stack.airlock.store.close();
      const err = await rejection(
        client.decisions.create({ intent: { kind: 'refund.create', amount: 70000, currency: 'usd' } }),
      );
      expect(err).toBeInstanceOf(AirlockUnavailableError);
      expect(err.message).toMatch(/store_unavailable/);
      expect(err.message).toMatch(/NOT executed/);
      await stack.airlock.close().catch(() => {});
      const gone = await rejection(client.decisions.wait(held.id, { timeoutSeconds: 2 }));
      expect(gone).toBeInstanceOf(AirlockUnavailableError);
    } finally {
      await stack.close().catch(() => {});
    }
  });
});
