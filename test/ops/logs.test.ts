import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLogger, type RunningAirlock, startAirlock } from '../../src/server.ts';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { rejection, stripeAt, tempDir } from '../helpers/stack.ts';

function capture(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { stream, lines };
}

describe('request ids', () => {
  let sandbox: Sandbox;
  let airlock: RunningAirlock;
  let agentKey: string;
  let reviewerToken: string;
  const log = capture();

  beforeAll(async () => {
    sandbox = await startSandbox();
    const config = loadConfig(
      {
        PORT: '0',
        AIRLOCK_DATA: join(tempDir(), 'airlock.db'),
        STRIPE_API_BASE: sandbox.url,
        AIRLOCK_LOG_LEVEL: 'debug',
        AIRLOCK_LOG_FORMAT: 'json',
      },
      undefined,
    );
    airlock = await startAirlock(config, createLogger(config, log.stream));
    agentKey = (await createAgentKey(airlock.store, 'support-bot')).key;
    reviewerToken = (await createReviewer(airlock.store, 'finance@example.com')).token;
  });
  afterAll(async () => {
    await airlock.close();
    await sandbox.close();
  });

  async function events(id: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
    const res = await fetch(`${airlock.url}/api/actions/${id}/events`, {
      headers: { authorization: `Bearer ${reviewerToken}` },
    });
    return ((await res.json()) as { data: { type: string; data: Record<string, unknown> }[] }).data;
  }

  it('returns a generated Request-Id on every answer, errors included', async () => {
    const a = await fetch(`${airlock.url}/healthz`);
    const b = await fetch(`${airlock.url}/nowhere`);
    expect(a.headers.get('request-id')).toMatch(/^req_/);
    expect(b.status).toBe(404);
    expect(b.headers.get('request-id')).toMatch(/^req_/);
    expect(a.headers.get('request-id')).not.toBe(b.headers.get('request-id'));
  });

  it("keeps the caller's Request-Id when it is a plain token, and replaces one that is not", async () => {
    const kept = await fetch(`${airlock.url}/healthz`, { headers: { 'request-id': 'trace-42.a:b' } });
    expect(kept.headers.get('request-id')).toBe('trace-42.a:b');
    const replaced = await fetch(`${airlock.url}/healthz`, {
      headers: { 'request-id': 'bad id\twith spaces' },
    });
    expect(replaced.headers.get('request-id')).toMatch(/^req_/);
  });

  it('carries the request id of the agent call and of the approval into the ledger and the log', async () => {
    const direct = stripeAt('sk_test_x', sandbox.port);
    const ch = await direct.charges.create({ amount: 90000, currency: 'usd', source: 'tok_visa' });
    const res = await fetch(`${airlock.url}/v1/refunds`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${agentKey}`,
        'content-type': 'application/x-www-form-urlencoded',
        'request-id': 'agent-call-1',
      },
      body: `charge=${ch.id}&amount=60000`,
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('request-id')).toBe('agent-call-1');
    const id = res.headers.get('airlock-action')!;
    const approve = await fetch(`${airlock.url}/api/actions/${id}/approve`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${reviewerToken}`,
        'content-type': 'application/json',
        'request-id': 'approve-call-1',
      },
      body: '{}',
    });
    expect(approve.status).toBe(200);
    const ledger = await events(id);
    expect(ledger.find((e) => e.type === 'action.received')?.data['request_id']).toBe('agent-call-1');
    expect(ledger.find((e) => e.type === 'action.approved')?.data['request_id']).toBe('approve-call-1');
    // Events not caused by a request (the policy's decision, the dispatcher's attempts) carry none.
    expect(ledger.find((e) => e.type === 'action.decided')?.data['request_id']).toBeUndefined();
    const lines = log.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'request',
        request_id: 'agent-call-1',
        status: 403,
        url: '/v1/refunds',
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'request', request_id: 'approve-call-1', status: 200 }),
    );
  });

  it('records the generated request id of an official client call that sent none', async () => {
    const direct = stripeAt('sk_test_x', sandbox.port);
    const ch = await direct.charges.create({ amount: 90000, currency: 'usd', source: 'tok_visa' });
    const err = await rejection(
      stripeAt(agentKey, airlock.port).refunds.create({ charge: ch.id, amount: 70000 }),
    );
    const id = err.raw.airlock_action as string;
    expect(id).toMatch(/^act_/);
    const received = (await events(id)).find((e) => e.type === 'action.received');
    expect(received?.data['request_id']).toMatch(/^req_/);
    expect(err.headers['request-id']).toBe(received?.data['request_id']);
  });
});

describe('log output', () => {
  it('redacts configured paths besides the built-in credentials', () => {
    const out = capture();
    const log = createLogger(
      loadConfig({ AIRLOCK_LOG_FORMAT: 'json', AIRLOCK_LOG_REDACT: '["card.number"]' }, undefined),
      out.stream,
    );
    log.info({ card: { number: '4242424242424242', brand: 'visa' }, token: 'rk_secret' }, 'hello');
    const line = JSON.parse(out.lines[0]!);
    expect(line.card).toEqual({ number: '[redacted]', brand: 'visa' });
    expect(line.token).toBe('[redacted]');
    expect(out.lines[0]).not.toContain('4242424242424242');
  });

  it('writes readable lines instead of JSON when asked for pretty logs', () => {
    const out = capture();
    const log = createLogger(loadConfig({ AIRLOCK_LOG_FORMAT: 'pretty' }, undefined), out.stream);
    log.info({ action: 'act_1' }, 'Airlock is listening');
    const text = out.lines.join('\n');
    expect(text).toContain('INFO');
    expect(text).toContain('Airlock is listening');
    expect(text).toContain('act_1');
    expect(() => JSON.parse(out.lines[0]!)).toThrow();
  });

  it('writes JSON when stdout is not a terminal and no format is chosen', () => {
    const out = capture();
    const log = createLogger(loadConfig({}, undefined), out.stream);
    log.warn('plain');
    expect(process.stdout.isTTY).not.toBe(true);
    expect(JSON.parse(out.lines[0]!)).toMatchObject({ msg: 'plain', level: 40, service: 'airlock' });
  });
});
