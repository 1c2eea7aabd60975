import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/process.ts';
import { charge, type Stack, startStack } from './helpers/stack.ts';

const SECRET = 'whsec_examples_test_secret_0123456789';
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    AIRLOCK_CALLBACK_SECRET: SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_POLL_MS: '20',
    AIRLOCK_CALLBACK_BACKOFF_MS: '20',
  });
});
afterAll(async () => {
  await stack.close();
});

interface Run {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first stdout line matching. */
  line(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

/** Runs an example as a user would, with `tsx`, in its own process. */
function run(file: string, env: Record<string, string>): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', file)], {
    cwd: ROOT,
    env: { ...process.env, AIRLOCK_URL: stack.airlock.url, AIRLOCK_AGENT_KEY: stack.agentKey, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  let partial = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (d) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of waiters) w();
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stderr })),
  );
  const line = (re: RegExp, ms = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no line matching ${re} from ${file}:\n${lines.join('\n')}\n${stderr}`)),
        ms,
      );
      const check = () => {
        for (const l of lines) {
          const m = l.match(re);
          if (m) {
            clearTimeout(timer);
            resolve(m);
            return;
          }
        }
      };
      waiters.push(check);
      check();
      void exit.then(() => setTimeout(check, 10));
    });
  return { child, lines, line, exit };
}

async function approve(id: string): Promise<void> {
  const res = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: { note: 'checked' } });
  expect(res.status).toBe(200);
}

describe('examples/ run against a real Airlock and the sandbox', () => {
  it('stripe-agent.ts: the official client gets a small refund at once and a held one after approval', async () => {
    const ch = await charge(stack, 100000);
    const r = run('stripe-agent.ts', { CHARGE: ch.id });
    const [, small] = await r.line(/^allowed (re_\w+) succeeded$/);
    const [, held] = await r.line(/^held (act_\w+)$/);
    await approve(held!);
    await r.line(/^decided completed$/);
    const [, executed] = await r.line(/^executed (re_\w+) 60000$/);
    expect((await r.exit).code).toBe(0);
    const refunds = await stack.direct.refunds.list({ charge: ch.id });
    expect(refunds.data.map((x) => x.id).sort()).toEqual([small, executed].sort());
  });

  it('decisions-backend.ts: asks Airlock, waits for a person, then refunds with its own Stripe key', async () => {
    const ch = await charge(stack, 100000);
    const r = run('decisions-backend.ts', {
      CHARGE: ch.id,
      AMOUNT: '60000',
      STRIPE_SECRET_KEY: 'sk_test_backend',
      STRIPE_API_BASE: stack.sandbox.url,
    });
    const [, id] = await r.line(/^decision (act_\w+) review awaiting_approval$/);
    // Nothing reached Stripe while the decision was pending.
    expect((await stack.direct.refunds.list({ charge: ch.id })).data).toEqual([]);
    const res = await stack.api(`/api/actions/${id}/approve`, {
      method: 'POST',
      body: { note: 'half now', changes: { amount: 30000 } },
    });
    expect(res.status).toBe(200);
    await r.line(/^decided approved$/);
    const [, refund] = await r.line(/^refunded (re_\w+) 30000$/);
    expect((await r.exit).code).toBe(0);
    const stored = await stack.direct.refunds.retrieve(refund!);
    expect(stored.metadata).toEqual({ airlock_decision: id });
  });

  it('decisions-backend.ts: a small refund is allowed without waiting', async () => {
    const ch = await charge(stack, 5000);
    const r = run('decisions-backend.ts', {
      CHARGE: ch.id,
      AMOUNT: '1000',
      STRIPE_SECRET_KEY: 'sk_test_backend',
      STRIPE_API_BASE: stack.sandbox.url,
    });
    await r.line(/^decision act_\w+ allow approved$/);
    await r.line(/^refunded re_\w+ 1000$/);
    expect((await r.exit).code).toBe(0);
  });

  it('mcp-client.ts: lists the tools, refunds a small amount, and waits on a held refund until approved', async () => {
    const ch = await charge(stack, 100000);
    const r = run('mcp-client.ts', { CHARGE: ch.id });
    const [, tools] = await r.line(/^tools (.+)$/);
    expect(tools!.split(',')).toEqual(expect.arrayContaining(['create_refund', 'wait_for_action']));
    const [, small] = await r.line(/^small (.+)$/);
    expect(JSON.parse(small!)).toMatchObject({ status: 'completed' });
    const [, held] = await r.line(/^big awaiting_approval (act_\w+)$/);
    await approve(held!);
    const [, waited] = await r.line(/^waited (.+)$/);
    expect(JSON.parse(waited!)).toMatchObject({ status: 'completed' });
    expect((await r.exit).code).toBe(0);
  });

  it('webhook-receiver.ts: accepts a signed callback from Airlock once and refuses a forged one', async () => {
    const r = run('webhook-receiver.ts', { AIRLOCK_CALLBACK_SECRET: SECRET, PORT: '0' });
    try {
      const [, url] = await r.line(/^listening (http:\/\/\S+)$/);
      const asked = await stack.api('/api/decisions', {
        method: 'POST',
        token: stack.agentKey,
        body: {
          intent: { kind: 'refund.create', amount: 70000, currency: 'usd' },
          callback_url: `${url}/airlock`,
        },
      });
      expect(asked.body.status).toBe('awaiting_approval');
      await approve(asked.body.id);
      await r.line(new RegExp(`^event decision\\.approved ${asked.body.id} approved$`));
      const forged = await fetch(`${url}/airlock`, {
        method: 'POST',
        headers: { 'airlock-signature': `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}` },
        body: JSON.stringify({ id: 'evt_forged', type: 'decision.approved', data: { object: {} } }),
      });
      expect(forged.status).toBe(400);
      await r.line(/^refused signature_mismatch$/);
      expect(r.lines.filter((l) => l.startsWith('event '))).toHaveLength(1);
    } finally {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  });
});
