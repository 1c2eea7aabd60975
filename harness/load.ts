// Many concurrent agents of mixed traffic against a real `airlock serve` process: errors, latency per kind of call,
// memory at start and end, and afterwards the same end-state checks as the chaos loop (nothing lost, nothing twice).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createAgentKey, createReviewer } from '../src/auth/credentials.ts';
import { openSqliteStore } from '../src/store/sqlite/open.ts';
import { startSandbox } from '../src/stripe/sandbox/index.ts';
import { spawnServe } from './serve-process.ts';

export interface LoadOptions {
  agents: number;
  seconds: number;
  /** Share of calls that are reads, small (allowed) refunds and large (held) refunds. */
  mix?: { reads: number; small: number; large: number };
}

export interface LoadReport {
  agents: number;
  seconds: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  latencyMs: Record<string, { n: number; p50: number; p99: number }>;
  held: number;
  approved: number;
  completedRefunds: number;
  sandboxRefunds: number;
  duplicates: number;
  unsettled: number;
  rssStartMb: number;
  rssEndMb: number;
  ledgerOk: boolean;
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;
}

async function rssMb(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(/^process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m);
  return m ? Math.round(Number(m[1]) / 1e6) : -1;
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const mix = opts.mix ?? { reads: 0.6, small: 0.35, large: 0.05 };
  const dir = mkdtempSync(join(tmpdir(), 'airlock-load-'));
  const sandbox = await startSandbox();
  const data = join(dir, 'airlock.db');
  const store = await openSqliteStore(data);
  const keys: string[] = [];
  for (let i = 0; i < opts.agents; i++) keys.push((await createAgentKey(store, `agent-${i}`)).key);
  const reviewerToken = (await createReviewer(store, 'load-reviewer@example.com')).token;
  await store.close();

  // Logs stay at warn (reads are logged at info); readiness is asked instead of read from the log.
  const server = await spawnServe({
    ready: 'readyz',
    env: { AIRLOCK_DATA: data, STRIPE_API_BASE: sandbox.url, AIRLOCK_LOG_LEVEL: 'warn' },
  });
  const url = server.url;

  const dispatcher = new Agent({ connections: Math.max(16, opts.agents) });
  const direct = {
    authorization: 'Bearer sk_test_load',
    'content-type': 'application/x-www-form-urlencoded',
  };
  const charges: string[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await request(`${sandbox.url}/v1/charges`, {
      method: 'POST',
      headers: direct,
      body: 'amount=99999999&currency=usd&source=tok_visa',
    });
    charges.push(((await res.body.json()) as { id: string }).id);
  }

  const latency: Record<string, number[]> = { read: [], small: [], large: [] };
  const errors: string[] = [];
  const held: string[] = [];
  let requests = 0;
  const rssStartMb = await rssMb(url);
  const end = Date.now() + opts.seconds * 1000;

  async function agentLoop(i: number) {
    let n = 0;
    while (Date.now() < end) {
      const roll = Math.random();
      const ch = charges[(i + n) % charges.length]!;
      const kind = roll < mix.reads ? 'read' : roll < mix.reads + mix.small ? 'small' : 'large';
      const headers = {
        authorization: `Bearer ${keys[i]}`,
        'content-type': 'application/x-www-form-urlencoded',
      };
      const t0 = performance.now();
      try {
        const res =
          kind === 'read'
            ? await request(`${url}/v1/charges/${ch}`, { headers, dispatcher })
            : await request(`${url}/v1/refunds`, {
                method: 'POST',
                headers: { ...headers, 'idempotency-key': `load-${i}-${n}` },
                body: `charge=${ch}&amount=${kind === 'small' ? 100 : 60000}`,
                dispatcher,
              });
        const text = await res.body.text();
        latency[kind]!.push(performance.now() - t0);
        requests++;
        const expected = kind === 'large' ? res.statusCode === 403 : res.statusCode === 200;
        if (!expected) errors.push(`${kind} ${res.statusCode} ${text.slice(0, 160)}`);
        else if (kind === 'large')
          held.push((JSON.parse(text) as { error: { airlock_action: string } }).error.airlock_action);
      } catch (err) {
        errors.push(`${kind} ${(err as Error).message}`);
      }
      n++;
    }
  }

  let approved = 0;
  const reviewer = (async () => {
    // Approve every hold, also those made in the last moments of the run (within a minute).
    while (Date.now() < end + 1000 || (approved < held.length && Date.now() < end + 60_000)) {
      const id = held[approved];
      if (!id) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const res = await request(`${url}/api/actions/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reviewerToken}`, 'content-type': 'application/json' },
        body: '{"note":"load"}',
        dispatcher,
      });
      await res.body.text();
      if (res.statusCode !== 200) errors.push(`approve ${res.statusCode}`);
      approved++;
    }
  })();

  await Promise.all(Array.from({ length: opts.agents }, (_, i) => agentLoop(i)));
  await reviewer;
  // Let approved holds execute.
  const settleBy = Date.now() + 30_000;
  let unsettled = 0;
  for (;;) {
    const res = await request(`${url}/api/actions?status=pending&limit=100`, {
      headers: { authorization: `Bearer ${reviewerToken}` },
      dispatcher,
    });
    const list = (await res.body.json()) as { data: unknown[] };
    unsettled = list.data.length;
    if (unsettled === 0 || Date.now() > settleBy) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const rssEndMb = await rssMb(url);
  await server.stop();
  await dispatcher.close();

  // End state: every completed refund action has exactly one tagged refund upstream, and nothing else was made.
  const check = await openSqliteStore(data);
  const completed = [];
  for (let after: string | undefined; ; ) {
    const page = await check.actions.list({ status: 'completed', limit: 500, startingAfter: after });
    completed.push(...page.rows.filter((a) => a.kind === 'refund.create'));
    if (!page.hasMore) break;
    after = page.rows[page.rows.length - 1]!.id;
  }
  const { verifyLedger } = await import('../src/engine/ledger.ts');
  const ledger = await verifyLedger(check);
  await check.close();
  const refunds = sandbox.list('refund');
  const byAction = new Map<string, number>();
  for (const r of refunds) {
    const tag = (r['metadata'] as Record<string, string> | undefined)?.['airlock_action'];
    if (tag) byAction.set(tag, (byAction.get(tag) ?? 0) + 1);
  }
  const duplicates = [...byAction.values()].filter((c) => c > 1).length;
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });

  const latencyMs: LoadReport['latencyMs'] = {};
  for (const [k, v] of Object.entries(latency)) {
    const sorted = [...v].sort((a, b) => a - b);
    latencyMs[k] = {
      n: v.length,
      p50: +quantile(sorted, 0.5).toFixed(2),
      p99: +quantile(sorted, 0.99).toFixed(2),
    };
  }
  return {
    agents: opts.agents,
    seconds: opts.seconds,
    requests,
    errors: errors.length,
    errorSamples: errors.slice(0, 5),
    latencyMs,
    held: held.length,
    approved,
    completedRefunds: completed.length,
    sandboxRefunds: refunds.length,
    duplicates,
    unsettled,
    rssStartMb,
    rssEndMb,
    ledgerOk: ledger.ok,
  };
}
