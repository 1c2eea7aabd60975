// A ledger with signed digests made by a real server, and what an attacker with write access to its database does
// to it. The attacks use plain SQL on the real file (or PostgreSQL), as an insider would; they recompute hashes with
// SHA-256 exactly as Airlock does, since the chain's hash function is no secret.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSigningKeyPair } from '../../src/audit/keys.ts';
import { GENESIS_HASH } from '../../src/store/migrations.ts';
import { type LedgerRow, ledgerHash } from '../../src/store/store.ts';
import type { Sql } from '../helpers/direct-sql.ts';
import { cli } from '../helpers/process.ts';
import { charge, rejection, type Stack, startStack, tempDir } from '../helpers/stack.ts';

export interface SigningFiles {
  privateKey: string;
  publicKey: string;
  keyId: string;
}

export function signingKeyIn(dir: string, name = 'ledger-signing.pem'): SigningFiles {
  const privateKey = join(dir, name);
  const { keyId, publicPath } = writeSigningKeyPair(privateKey);
  return { privateKey, publicKey: publicPath, keyId };
}

/**
 * Runs a real server on the store named by `env` and records a history in rounds, signing a digest after each: an
 * allowed refund, a held one rejected, another allowed and a held one approved and executed. Closing the server
 * signs the last digest. Returns the closed stack (its folder is removed by stack.close()).
 */
export async function recordHistory(
  env: Record<string, string>,
  keys: SigningFiles,
  digestFile: string,
): Promise<Stack> {
  const stack = await startStack({
    AIRLOCK_LEDGER_SIGNING_KEY_FILE: keys.privateKey,
    AIRLOCK_LEDGER_DIGEST_FILE: digestFile,
    // Digests are signed by the test between rounds, not by the clock.
    AIRLOCK_LEDGER_DIGEST_INTERVAL_MS: '3600000',
    ...env,
  });
  const signer = stack.airlock.ledger!;
  const ch = await charge(stack, 500_000);
  await stack.agent.refunds.create({ charge: ch.id, amount: 1_000 });
  await signer.sign();
  const held = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 60_000 }));
  await stack.api(`/api/actions/${held.raw.airlock_action}/reject`, { method: 'POST', body: { note: 'no' } });
  await signer.sign();
  await stack.agent.refunds.create({ charge: ch.id, amount: 2_000 });
  const second = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 70_000 }));
  const id = second.raw.airlock_action as string;
  await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: { note: 'ok' } });
  await stack.api(`/api/actions/${id}?wait=10`);
  await signer.sign();
  await stack.agent.refunds.create({ charge: ch.id, amount: 3_000 });
  await stack.airlock.close();
  return stack;
}

/** A copy of a closed SQLite store (with its WAL, if one was left) and of the digest file, for one attack. */
export function copyOf(dbFile: string, digestFile: string): { db: string; digests: string; dir: string } {
  const dir = tempDir();
  const db = join(dir, 'airlock.db');
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(dbFile + suffix)) copyFileSync(dbFile + suffix, db + suffix);
  }
  const digests = join(dir, 'ledger-digests.jsonl');
  copyFileSync(digestFile, digests);
  return { db, digests, dir };
}

// The SQL an attacker needs, on either store.
export { postgresSql, type Sql, sqliteSql } from '../helpers/direct-sql.ts';

export async function events(sql: Sql): Promise<LedgerRow[]> {
  return sql.all<LedgerRow>('select * from ledger order by seq');
}

/** Deletes the newest `count` events and sets ledger_head back to the new last one: the head-rewrite attack. */
export async function truncateTail(sql: Sql, count: number): Promise<{ from: number; to: number }> {
  const all = await events(sql);
  const keep = all.slice(0, all.length - count);
  const last = keep[keep.length - 1];
  await sql.run('delete from ledger where seq > ?', [last?.seq ?? 0]);
  await sql.run('update ledger_head set seq = ?, hash = ? where id = 1', [
    last?.seq ?? 0,
    last?.hash ?? GENESIS_HASH,
  ]);
  return { from: (last?.seq ?? 0) + 1, to: all[all.length - 1]!.seq };
}

/**
 * Rewrites the chain from `fromSeq` on: each event is passed through `edit` (null drops it, and later events are
 * renumbered to close the gap), then every hash and link after it is recomputed and ledger_head moved to match.
 * The result passes a check of the hash chain alone.
 */
export async function rewriteChain(
  sql: Sql,
  fromSeq: number,
  edit: (e: LedgerRow) => LedgerRow | null,
): Promise<void> {
  const all = await events(sql);
  const kept = all.filter((e) => e.seq < fromSeq);
  let prev = kept.length ? kept[kept.length - 1]!.hash : GENESIS_HASH;
  let seq = kept.length ? kept[kept.length - 1]!.seq : 0;
  const rewritten: LedgerRow[] = [];
  for (const e of all.filter((x) => x.seq >= fromSeq)) {
    const changed = e.seq === fromSeq ? edit({ ...e }) : { ...e };
    if (!changed) continue;
    seq++;
    const row = { ...changed, seq, prev_hash: prev };
    row.hash = ledgerHash(prev, row);
    prev = row.hash;
    rewritten.push(row);
  }
  await sql.run('delete from ledger where seq >= ?', [fromSeq]);
  for (const r of rewritten) {
    await sql.run(
      'insert into ledger (seq, action_id, type, from_status, to_status, actor, data, at, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [r.seq, r.action_id, r.type, r.from_status, r.to_status, r.actor, r.data, r.at, r.prev_hash, r.hash],
    );
  }
  await sql.run('update ledger_head set seq = ?, hash = ? where id = 1', [seq, prev]);
}

/** The digest file's lines, and a way to write them back changed. */
export function digestLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

export function writeDigestLines(file: string, lines: string[]): void {
  writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
}

/** `airlock audit verify` as the real CLI, against the store in `env`. */
export function verify(env: Record<string, string>, args: string[]) {
  return cli(['audit', 'verify', ...args], env);
}
