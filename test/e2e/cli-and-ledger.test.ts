import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/process.ts';
import { charge, rejection, type Stack, startStack, tempDir } from '../helpers/stack.ts';

describe('airlock audit verify', () => {
  let stack: Stack;
  let env: Record<string, string>;

  beforeAll(async () => {
    stack = await startStack();
    env = { AIRLOCK_DATA: join(stack.dir, 'airlock.db') };
    const ch = await charge(stack, 100000);
    await stack.agent.refunds.create({ charge: ch.id, amount: 1000 });
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60000 }));
    await stack.api(`/api/actions/${err.raw.airlock_action}/reject`, {
      method: 'POST',
      body: { note: 'no' },
    });
    await stack.airlock.close();
  });
  afterAll(async () => {
    await stack.close();
  });

  it('passes on an untouched ledger', async () => {
    const res = await cli(['audit', 'verify', '--json'], env);
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.ok).toBe(true);
    expect(report.events).toBeGreaterThanOrEqual(7);
  });

  it('fails and names the event when one event is edited in the database', async () => {
    const db = new Database(env['AIRLOCK_DATA']!);
    const target = db
      .prepare("select seq, data from ledger where type = 'action.received' order by seq desc limit 1")
      .get() as {
      seq: number;
      data: string;
    };
    db.prepare('update ledger set data = ? where seq = ?').run(
      target.data.replace('60000', '6000'),
      target.seq,
    );
    db.close();
    const res = await cli(['audit', 'verify'], env);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`event ${target.seq} (action.received`);
    expect(res.stdout).toMatch(/edited/);
    const db2 = new Database(env['AIRLOCK_DATA']!);
    db2.prepare('update ledger set data = ? where seq = ?').run(target.data, target.seq);
    db2.close();
    expect((await cli(['audit', 'verify'], env)).code).toBe(0);
  });

  it('fails when the newest event is deleted', async () => {
    const db = new Database(env['AIRLOCK_DATA']!);
    const last = db.prepare('select * from ledger order by seq desc limit 1').get() as Record<
      string,
      unknown
    >;
    db.prepare('delete from ledger where seq = ?').run(last['seq']);
    db.close();
    const res = await cli(['audit', 'verify'], env);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/removed/);
  });
});

describe('start-up with a broken policy', () => {
  it('stops with the file, line, column and what was expected', async () => {
    const dir = tempDir();
    const file = join(dir, 'policy.yaml');
    writeFileSync(
      file,
      [
        'default: review',
        'rules:',
        '  - Allow if :read:',
        "  - Review if :kind: = 'refund.create' and :amount_in_usd: >",
      ].join('\n'),
    );
    const res = await cli(['serve'], { AIRLOCK_POLICY: file, AIRLOCK_DATA: join(dir, 'a.db'), PORT: '0' });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`${file}:4:`);
    expect(res.stderr).toMatch(/expected/);
  });
});

describe('airlock keys and actions', () => {
  it('creates an agent key as JSON and lists actions as JSON', async () => {
    const dir = tempDir();
    const env = { AIRLOCK_DATA: join(dir, 'a.db') };
    const key = await cli(['keys', 'create', '--agent', 'bot-1', '--json'], env);
    expect(key.code).toBe(0);
    const parsed = JSON.parse(key.stdout);
    expect(parsed.key).toMatch(/^ak_[A-Za-z0-9]{40}$/);
    expect(parsed.id).toMatch(/^key_/);
    const db = new Database(env.AIRLOCK_DATA);
    const stored = db.prepare('select key_hash from agent_keys').all() as { key_hash: string }[];
    db.close();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.key_hash).not.toContain(parsed.key.slice(3)); // only the hash is stored
    const list = await cli(['actions', 'list', '--json'], env);
    expect(JSON.parse(list.stdout)).toEqual({ object: 'list', data: [], has_more: false });
  });
});
