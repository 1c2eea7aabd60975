import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AttributeContext, Engine, type Submission } from '../../src/engine/engine.ts';
import { policyResolvers, VelocityResolver } from '../../src/engine/resolvers/index.ts';
import { COUNTED_STATUSES } from '../../src/engine/status.ts';
import { parsePolicy } from '../../src/policy/index.ts';
import { parseVelocityName } from '../../src/policy/velocity.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { ActionRow, Store } from '../../src/store/store.ts';
import { velocityTotal } from '../../src/store/velocity.ts';
import { classify } from '../../src/stripe/classify.ts';
import { actionRow } from '../helpers/action-row.ts';
import { withDirectSql } from '../helpers/direct-sql.ts';
import { tempDir } from '../helpers/stack.ts';

const NOW = new Date('2024-03-12T15:00:00Z');
let store: Store;
let n = 0;

beforeEach(async () => {
  store = await openSqliteStore(':memory:');
});
afterEach(async () => {
  await store.close();
});

async function action(p: Partial<ActionRow> & { minutesAgo: number }): Promise<string> {
  const at = new Date(NOW.getTime() - p.minutesAgo * 60_000).toISOString();
  const id = `act_${++n}`;
  const { minutesAgo: _, ...rest } = p;
  await store.insertAction(
    actionRow({
      id,
      status: 'completed',
      amount: 45_000,
      amount_usd: 450,
      agent_id: 'agt_a',
      customer: 'cus_1',
      created_at: at,
      ...rest,
    }),
  );
  return id;
}

const hourAgo = new Date(NOW.getTime() - 3_600_000).toISOString();

describe('velocity totals from the store', () => {
  it('counts pending, completed and held actions in the window, and not rejected, blocked, failed, expired or cancelled ones', async () => {
    for (const status of ['pending', 'completed', 'awaiting_approval'] as const)
      await action({ minutesAgo: 10, status });
    for (const status of ['rejected', 'blocked', 'failed', 'expired', 'cancelled'] as const)
      await action({ minutesAgo: 10, status });
    expect(COUNTED_STATUSES).not.toContain('rejected');
    const t = await velocityTotal(store, {
      scope: 'agent',
      subject: 'agt_a',
      kinds: ['refund.create'],
      statuses: COUNTED_STATUSES,
      since: hourAgo,
      until: NOW.toISOString(),
    });
    expect(t).toEqual({ count: 3, usd: 1350 });
  });

  it('keeps to the window, the scope, the kind, and leaves out an excluded action', async () => {
    await action({ minutesAgo: 59 });
    await action({ minutesAgo: 61 }); // outside 1h
    await action({ minutesAgo: 5, agent_id: 'agt_b', customer: 'cus_2' }); // another agent
    await action({ minutesAgo: 5, kind: 'payout.create', amount_usd: 9000 }); // another kind
    const self = await action({ minutesAgo: 1 });
    const q = {
      scope: 'agent' as const,
      subject: 'agt_a',
      kinds: ['refund.create'],
      statuses: COUNTED_STATUSES,
      since: hourAgo,
      until: NOW.toISOString(),
    };
    expect(await velocityTotal(store, q)).toEqual({ count: 2, usd: 900 });
    expect(await velocityTotal(store, { ...q, excludeId: self })).toEqual({ count: 1, usd: 450 });
    expect(await velocityTotal(store, { ...q, scope: 'customer', subject: 'cus_1' })).toEqual({
      count: 2,
      usd: 900,
    });
    expect(await velocityTotal(store, { ...q, scope: 'account', subject: null })).toEqual({
      count: 3,
      usd: 1350,
    });
    expect(await velocityTotal(store, { ...q, kinds: 'writes' })).toEqual({ count: 3, usd: 9900 });
  });

  it('answers each velocity query from a covering index, never a table scan', async () => {
    // The plan of the store's schema, read over a connection of the test's own to a file store.
    const file = join(tempDir(), 'airlock.db');
    await (await openSqliteStore(file)).close();
    const plans: string[] = [];
    await withDirectSql(file, async (db) => {
      for (const [column, value] of [
        ['agent_id', 'agt_a'],
        ['customer', 'cus_1'],
      ] as const) {
        const rows = await db.all<{ detail: string }>(
          `EXPLAIN QUERY PLAN SELECT count(*), sum(amount_usd) FROM actions
          WHERE created_at >= ? AND created_at <= ? AND status IN ('pending','completed')
          AND ${column} = ? AND kind IN ('refund.create')`,
          [hourAgo, NOW.toISOString(), value],
        );
        plans.push(rows.map((x) => x.detail).join(' '));
      }
    });
    expect(plans[0]).toMatch(/USING COVERING INDEX actions_velocity_agent_idx/);
    expect(plans[1]).toMatch(/USING COVERING INDEX actions_velocity_customer_idx/);
  });
});

describe('the velocity resolver', () => {
  const policy = parsePolicy(
    [
      'rules:',
      '  - "Review if :agent_refunds_usd_1h: + :amount_in_usd: > 2000"',
      '  - "Review if :customer_refunds_count_24h: >= 3"',
      '  - "Review if :agent_kind_count_30m: > 100"',
      '',
    ].join('\n'),
    'p.yaml',
  );

  function ctx(customer: string | null, agentId: string | null): AttributeContext {
    const params = { charge: 'ch_1', amount: '45000', ...(customer ? { customer } : {}) };
    const c = { ...classify({ method: 'POST', path: '/v1/refunds', params }), currency: 'usd', customer };
    const submission: Submission = {
      agent: agentId ? { id: agentId, name: 'support-bot' } : null,
      method: 'POST',
      path: '/v1/refunds',
      params,
      stripeAccount: null,
      stripeVersion: null,
      idempotencyKey: null,
      classification: c,
    };
    return { submission, classification: c, base: {}, policy, now: NOW, store };
  }

  it('computes only the referenced attributes, per agent, customer and window', async () => {
    await action({ minutesAgo: 20 });
    await action({ minutesAgo: 50 });
    await action({ minutesAgo: 23 * 60 });
    const { attributes } = await new VelocityResolver().resolve(ctx('cus_1', 'agt_a'));
    expect(attributes).toEqual({
      agent_refunds_usd_1h: 900,
      customer_refunds_count_24h: 3,
      agent_kind_count_30m: 1,
    });
  });

  it('leaves agent and customer attributes missing when the action has neither', async () => {
    await action({ minutesAgo: 20 });
    const { attributes } = await new VelocityResolver().resolve(ctx(null, null));
    expect(attributes).toEqual({});
  });

  it('parses windows from minutes to 90 days and refuses longer ones', () => {
    expect(parseVelocityName('customer_refunds_count_24h')).toMatchObject({
      scope: 'customer',
      measure: 'count',
      windowMs: 86_400_000,
    });
    expect(parseVelocityName('account_money_out_usd_90d')?.windowMs).toBe(90 * 86_400_000);
    expect(parseVelocityName('account_money_out_usd_91d')).toBeNull();
  });

  it('feeds the engine: a decision stores the risk score and its factors', async () => {
    for (let i = 0; i < 4; i++) await action({ minutesAgo: 10 + i });
    const engine = new Engine({ store, policy, clock: { now: () => NOW }, resolvers: policyResolvers(null) });
    const e = await engine.evaluate(ctx('cus_9', 'agt_a').submission);
    expect(e.decision.outcome).toBe('review');
    expect(e.stored.rules).toEqual(['Review if :agent_refunds_usd_1h: + :amount_in_usd: > 2000']);
    expect(e.stored.risk_score).toBe(30);
    expect(e.stored.risk_factors).toEqual([
      { name: 'kind:refund.create', points: 10 },
      { name: 'amount_usd>=100', points: 5 },
      { name: 'velocity:agent_usd_1h>=2000', points: 15 },
    ]);
  });
});

describe('policy versions', () => {
  it('stores each version once with its text, and moves last_loaded_at when it is loaded again', async () => {
    await store.policyVersions.record(
      { version: 'pol_a', file: 'p.yaml', text: 'rules: []' },
      '2024-01-01T00:00:00Z',
    );
    await store.policyVersions.record(
      { version: 'pol_a', file: 'p.yaml', text: 'rules: []' },
      '2024-02-01T00:00:00Z',
    );
    expect(await store.policyVersions.get('pol_a')).toEqual({
      version: 'pol_a',
      file: 'p.yaml',
      text: 'rules: []',
      first_loaded_at: '2024-01-01T00:00:00Z',
      last_loaded_at: '2024-02-01T00:00:00Z',
    });
  });
});
