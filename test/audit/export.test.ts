// `airlock audit export` for a SIEM, then `airlock audit verify --export` offline: no database, only the export, the
// digests it carries (or the digest file beside a CSV) and the public key.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parseCsvLine } from '../../src/audit/export.ts';
import { loadSigningKey } from '../../src/audit/keys.ts';
import { LedgerSigner } from '../../src/audit/signer.ts';
import { openSqliteStore } from '../../src/store/sqlite/open.ts';
import { ledgerHash } from '../../src/store/store.ts';
import { cli } from '../helpers/process.ts';
import type { Stack } from '../helpers/stack.ts';
import { tempDir } from '../helpers/stack.ts';
import { copyOf, events, recordHistory, type SigningFiles, signingKeyIn, sqliteSql } from './helpers.ts';

// Each test runs the real CLI several times; a process start takes seconds on a loaded 2-core machine.
vi.setConfig({ testTimeout: 120_000 });

let stack: Stack;
let keys: SigningFiles;
let store: ReturnType<typeof copyOf>;
let env: Record<string, string>;
/** When the $20 refund arrived: the export starts there. */
let since: string;
let sinceSeq: number;

beforeAll(async () => {
  const dir = tempDir();
  keys = signingKeyIn(dir);
  const digestFile = join(dir, 'ledger-digests.jsonl');
  stack = await recordHistory({}, keys, digestFile);
  store = copyOf(join(stack.dir, 'airlock.db'), digestFile);
  env = { AIRLOCK_DATA: store.db };
  const sql = sqliteSql(store.db);
  const received = (await events(sql)).find(
    (e) => e.type === 'action.received' && e.data.includes('"amount":2000'),
  )!;
  await sql.close();
  since = received.at;
  sinceSeq = received.seq;
}, 60_000);
afterAll(async () => {
  await stack?.close();
});

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);

it('exports JSON lines from the digest before --since, with digests after the events they cover, and verifies offline', async () => {
  const out = join(store.dir, 'export.jsonl');
  const exported = await cli(['audit', 'export', '--since', since, '--out', out, '--json'], env);
  expect(exported.code, exported.stderr).toBe(0);
  const summary = JSON.parse(exported.stdout);
  const records = lines(out);

  const header = records[0]!;
  expect(header).toMatchObject({ record: 'export', version: 1, since });
  // Anchored at the newest digest before the first event since then: the export reaches back to just after it.
  const firstDigest = records.find((r) => r['record'] === 'digest')!;
  expect(firstDigest['ledger_seq']).toBe(header['anchor'].seq);
  expect(header['anchor'].seq).toBeLessThan(sinceSeq);
  const evs = records.filter((r) => r['record'] === 'event');
  expect(evs[0]!['seq']).toBe(header['anchor'].seq + 1);
  expect(evs[0]!['prev_hash']).toBe(header['anchor'].hash);
  expect(evs.map((e) => e['seq'])).toEqual(evs.map((_, i) => header['anchor'].seq + 1 + i));
  // Each digest comes right after the event it covers.
  records.forEach((r, i) => {
    if (r['record'] === 'digest' && r['ledger_seq'] > header['anchor'].seq) {
      expect(records[i - 1]).toMatchObject({ seq: r['ledger_seq'] });
    }
  });
  // Events carry their data as JSON for the SIEM; actions follow; a closing record counts everything.
  expect(typeof evs[0]!['data']).toBe('object');
  expect(records.filter((r) => r['record'] === 'action').length).toBeGreaterThanOrEqual(3);
  const end = records[records.length - 1]!;
  expect(end).toMatchObject({ record: 'end', events: evs.length, digests: summary.digests });
  expect(summary.events).toBe(evs.length);

  const verified = await cli(['audit', 'verify', '--export', out, '--public-key', keys.publicKey], {});
  expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  expect(verified.stdout).toMatch(/^Ledger OK: \d+ events, chain intact and matching \d+ signed digest/);
  expect(verified.stdout).toContain(`covered by signed digests through event ${end['to_seq']}`);
});

it('names an export whose event was edited and rehashed, and one cut off', async () => {
  const out = join(store.dir, 'tampered.jsonl');
  expect((await cli(['audit', 'export', '--since', since, '--out', out], env)).code).toBe(0);
  const records = lines(out);
  // The amount of the $20 refund, made $2, with every later hash and link in the export recomputed.
  let prev: string | null = null;
  for (const r of records) {
    if (r['record'] !== 'event') continue;
    if (r['seq'] === sinceSeq) r['data'] = JSON.parse(JSON.stringify(r['data']).replaceAll('2000', '200'));
    if (r['seq'] >= sinceSeq) {
      r['prev_hash'] = prev ?? r['prev_hash'];
      r['hash'] = ledgerHash(r['prev_hash'], { ...r, data: JSON.stringify(r['data']) } as any);
    }
    prev = r['hash'];
  }
  const end = records[records.length - 1]!;
  end['to_hash'] = prev;
  writeFileSync(out, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const rewritten = await cli(['audit', 'verify', '--export', out, '--public-key', keys.publicKey], {});
  expect(rewritten.code, rewritten.stdout).toBe(1);
  expect(rewritten.stdout).toContain('[ledger_rewritten]');

  const cut = join(store.dir, 'cut.jsonl');
  expect((await cli(['audit', 'export', '--since', since, '--out', cut], env)).code).toBe(0);
  const whole = readFileSync(cut, 'utf8').split('\n').filter(Boolean);
  writeFileSync(
    cut,
    whole
      .slice(0, -4)
      .map((l) => `${l}\n`)
      .join(''),
  );
  const res = await cli(['audit', 'verify', '--export', cut, '--public-key', keys.publicKey], {});
  expect(res.code, res.stdout).toBe(1);
  expect(res.stdout).toContain('[export_incomplete] the export has no closing record: it was cut off');
});

it('exports CSV to standard output with the digests beside it, and verifies it offline', async () => {
  const digestsOut = join(store.dir, 'export-digests.jsonl');
  const exported = await cli(
    ['audit', 'export', '--since', since, '--format', 'csv', '--digests-out', digestsOut],
    env,
  );
  expect(exported.code, exported.stderr).toBe(0);
  expect(exported.stderr).toMatch(/^Exported \d+ events/);
  const rows = exported.stdout.split('\n').filter(Boolean);
  expect(rows[0]).toBe('record,seq,at,action_id,type,from_status,to_status,actor,data,prev_hash,hash');
  const parsed = rows.slice(1).map(parseCsvLine);
  expect(parsed.every((r) => r.length === 11)).toBe(true);
  expect(new Set(parsed.map((r) => r[0]))).toEqual(new Set(['export', 'event', 'action', 'end']));
  // The data column holds the stored JSON byte for byte, so the hashes recompute.
  const event = parsed.find((r) => r[0] === 'event')!;
  expect(JSON.parse(event[8]!)).toBeTypeOf('object');

  const file = join(store.dir, 'export.csv');
  writeFileSync(file, exported.stdout);
  const verified = await cli(
    ['audit', 'verify', '--export', file, '--digests', digestsOut, '--public-key', keys.publicKey],
    {},
  );
  expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  // Without the digests a CSV export is only chain-checked, and verification says so.
  const alone = await cli(['audit', 'verify', '--export', file, '--public-key', keys.publicKey], {});
  expect(alone.stdout).toContain('no signed digest was found');
});

it("verifies an older export against the operator's digest file after the ledger has moved on", async () => {
  const out = join(store.dir, 'older.jsonl');
  expect((await cli(['audit', 'export', '--since', since, '--out', out], env)).code).toBe(0);
  // The server carries on: more events, and a digest over them in the same digest file.
  const live = await openSqliteStore(store.db);
  try {
    await live.transaction((tx) =>
      tx.appendLedgerEvents([
        {
          actionId: null,
          type: 'test.later',
          from: null,
          to: null,
          actor: 'test',
          data: {},
          at: new Date().toISOString(),
        },
      ]),
    );
    const signer = new LedgerSigner({
      store: live,
      key: loadSigningKey({ signing_key_file: keys.privateKey })!,
      digestFile: store.digests,
      webhookUrl: null,
      intervalMs: 3_600_000,
      idleIntervalMs: 3_600_000,
      log: pino({ level: 'silent' }),
    });
    expect(await signer.sign()).not.toBeNull();
  } finally {
    await live.close();
  }
  const res = await cli(
    ['audit', 'verify', '--export', out, '--digests', store.digests, '--public-key', keys.publicKey],
    {},
  );
  expect(res.code, res.stdout + res.stderr).toBe(0);
});
