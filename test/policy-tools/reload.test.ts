import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPolicyFile, type Policy } from '../../src/policy/index.ts';
import { PolicyReloader } from '../../src/policy-tools/reload.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import type { Store } from '../../src/store/store.ts';
import { tempDir } from '../helpers/stack.ts';

let store: Store;
let file: string;
let logs: Record<string, unknown>[];
let holder: { policy: Policy; setPolicy(p: Policy): void };
let reloader: PolicyReloader;

beforeEach(async () => {
  store = await openSqliteStore(':memory:');
  file = join(tempDir(), 'policy.yaml');
  writeFileSync(file, 'default: review\nrules:\n  - "Allow if :read:"\n');
  logs = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  holder = {
    policy: loadPolicyFile(file),
    setPolicy(p) {
      this.policy = p;
    },
  };
  // A long debounce keeps file events out of the way: these tests reload by hand and by SIGHUP.
  reloader = new PolicyReloader({ file, holder, store, log, debounceMs: 60_000 });
  await reloader.start();
});
afterEach(async () => {
  await reloader.close();
  await store.close();
});

describe('reloading the policy', () => {
  it('keeps the running version when the new file is broken, and logs the file, line, column and problem', async () => {
    const running = holder.policy.version;
    writeFileSync(
      file,
      'default: review\nrules:\n  - "Allow if :read:"\n  - "Review if :amount: > \'abc\'"\n',
    );
    const result = await reloader.reload('test');
    expect(result.ok).toBe(false);
    expect(holder.policy.version).toBe(running);
    const entry = logs.find((l) => l['problem'])!;
    expect(entry).toMatchObject({ file, line: 4, column: 27, keeping: running, level: 50 });
    expect(String(entry['msg'])).toContain(`${file}:4:27:`);
    expect(String(entry['problem'])).toContain("'abc'");
  });

  it('swaps in a valid edit on SIGHUP and records both versions with their text', async () => {
    const first = holder.policy.version;
    writeFileSync(file, 'default: block\nrules:\n  - "Allow if :read:"\n');
    process.emit('SIGHUP');
    const deadline = Date.now() + 3000;
    while (holder.policy.version === first && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(holder.policy.default).toBe('block');
    const rows = await store.policyVersions.list();
    expect(rows.map((r) => r.version).sort()).toEqual([first, holder.policy.version].sort());
    expect(rows.find((r) => r.version === holder.policy.version)!.text).toContain('default: block');
    expect(logs.some((l) => l['msg'] === 'policy reloaded' && l['reason'] === 'SIGHUP')).toBe(true);
  });

  it('does nothing when the text has not changed', async () => {
    const before = holder.policy;
    expect(await reloader.reload()).toEqual({ ok: true, changed: false, version: before.version });
    expect(holder.policy).toBe(before);
  });
});
