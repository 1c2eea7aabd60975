// A generic call's claims (kind, amount, currency) can only make its decision stricter, and that holds at approval
// too: a held call is decided again, under the policy loaded now, with the claims its caller made. A policy
// reloaded while the call waits that blocks on a claim must block it at approval, and nothing may reach upstream.

import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/process.ts';
import { type Stack, startStackWithPolicy } from '../helpers/stack.ts';

const BASE = ['default: review', 'rules:', `  - "Allow if :read:"`];

let stack: Stack;
let upstream: Server;
let received: string[];
let host: string;

beforeAll(async () => {
  received = [];
  upstream = createServer((req, res) => {
    received.push(String(req.headers['idempotency-key'] ?? ''));
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  host = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  stack = await startStackWithPolicy(BASE, {
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([{ host: '127.0.0.1', allow_private: true }]),
  });
});

afterAll(async () => {
  await stack?.close();
  await new Promise((resolve) => upstream?.close(resolve));
});

async function loadPolicy(lines: string[]): Promise<void> {
  writeFileSync(join(stack.dir, 'policy.yaml'), lines.join('\n'));
  const reloaded = await stack.airlock.reloadPolicy();
  expect(reloaded.ok).toBe(true);
}

const claim = fc.record({
  kind: fc.constantFrom('refund.create', 'payout.create', 'transfer.create', 'order.cancel'),
  amount: fc.integer({ min: 1, max: 5_000_000 }),
  currency: fc.constantFrom('usd', 'eur', 'gbp'),
});

/** A rule that blocks on one of the claims, and whether it names the kind, the amount or the currency. */
const blockingRule = (c: { kind: string; amount: number; currency: string }) =>
  fc.constantFrom(
    `  - "Block if :declared_kind: = '${c.kind}'"`,
    `  - "Block if :declared_amount: >= ${c.amount}"`,
    `  - "Block if :declared_currency: = '${c.currency}'"`,
  );

describe('a held generic call approved after a policy that blocks on its claims loads', () => {
  it('is blocked at approval whatever the claim the new rule names, and never sent', async () => {
    await fc.assert(
      fc.asyncProperty(
        claim.chain((c) => fc.tuple(fc.constant(c), blockingRule(c))),
        async ([c, rule]) => {
          await loadPolicy(BASE);
          const held = await stack.api('/api/actions', {
            method: 'POST',
            token: stack.agentKey,
            body: { url: `${host}/v1/orders/ord_1/refund`, body: { note: 'x' }, ...c },
          });
          expect(held.status).toBe(200);
          expect(held.body.status).toBe('awaiting_approval');
          const id: string = held.body.id;

          await loadPolicy([...BASE, rule]);
          const answer = await stack.api(`/api/actions/${id}/approve`, {
            method: 'POST',
            body: { note: 'ok' },
          });
          expect(answer.body.status).toBe('blocked');
          expect(answer.body.decision.at_approval.outcome).toBe('block');
          await new Promise((r) => setTimeout(r, 100));
          expect(received).not.toContain(`airlock-${id}`);
        },
      ),
      { numRuns: 8 },
    );
  });

  it('is sent when the new rule names a claim the caller did not make', async () => {
    await loadPolicy(BASE);
    const held = await stack.api('/api/actions', {
      method: 'POST',
      token: stack.agentKey,
      body: { url: `${host}/v1/orders/ord_2/refund`, body: { note: 'y' }, kind: 'refund.create' },
    });
    expect(held.body.status).toBe('awaiting_approval');
    await loadPolicy([...BASE, `  - "Block if :declared_kind: = 'payout.create'"`]);
    const answer = await stack.api(`/api/actions/${held.body.id}/approve`, { method: 'POST', body: {} });
    expect(['pending', 'completed']).toContain(answer.body.status);
    const final = (await stack.api(`/api/actions/${held.body.id}?wait=10`)).body;
    expect(final.status).toBe('completed');
    expect(received).toContain(`airlock-${held.body.id}`);
  });
});

describe('airlock policy simulate', () => {
  it("re-decides stored generic calls with their callers' claims", async () => {
    await loadPolicy(BASE);
    const payout = await stack.api('/api/actions', {
      method: 'POST',
      token: stack.agentKey,
      body: { url: `${host}/v1/anything`, body: { n: 1 }, kind: 'payout.create', amount: 5, currency: 'usd' },
    });
    expect(payout.body.status).toBe('awaiting_approval');
    const stored = (await stack.airlock.store.listActions({ limit: 500 })).rows.filter((a) => a.read === 0);
    const claimingPayout = stored.filter(
      (a) => a.details !== null && JSON.parse(a.details).declared?.kind === 'payout.create',
    );
    const file = join(stack.dir, 'block-payout-claims.yaml');
    writeFileSync(file, [...BASE, `  - "Block if :declared_kind: = 'payout.create'"`].join('\n'));
    const r = await cli(['policy', 'simulate', '--policy', file, '--since', '1d', '--json'], {
      AIRLOCK_DATA: join(stack.dir, 'airlock.db'),
    });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const toBlock = (report.moves as { to: string; count: number }[])
      .filter((m) => m.to === 'block')
      .reduce((n, m) => n + m.count, 0);
    expect(claimingPayout.length).toBeGreaterThan(0);
    expect(toBlock).toBe(claimingPayout.filter((a) => JSON.parse(a.decision).outcome !== 'block').length);
  });
});
