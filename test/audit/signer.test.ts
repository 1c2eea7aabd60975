// The digest signer over both stores: when it signs, what it stores, appends and posts, that instances racing to sign
// never fork the chain, the idle heartbeat, and a key rotation that verification follows.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verifyStore } from '../../src/audit/audit.ts';
import { FIRST_DIGEST_PREVIOUS } from '../../src/audit/digest.ts';
import { generateSigningKeyPair, loadSigningKey, type SigningKey } from '../../src/audit/keys.ts';
import { LedgerSigner } from '../../src/audit/signer.ts';
import type { Store } from '../../src/store/store.ts';
import { withDirectSql } from '../helpers/direct-sql.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { tempDir, until } from '../helpers/stack.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from '../store/databases.ts';
import { digestLines } from './helpers.ts';

const silent = pino({ level: 'silent' });

/** A key pair held in memory, with its public key written where a verifier would read it. */
function newKey(dir: string, name: string): { key: SigningKey; publicKey: string } {
  const pair = generateSigningKeyPair();
  const publicKey = join(dir, `${name}.pub.pem`);
  writeFileSync(publicKey, pair.publicPem);
  return { key: loadSigningKey({ signing_key: pair.privatePem })!, publicKey };
}

async function append(store: Store, n: number, tag: string): Promise<void> {
  await store.transaction((tx) =>
    tx.appendLedgerEvents(
      Array.from({ length: n }, (_, i) => ({
        actionId: null,
        type: 'test.event',
        from: null,
        to: null,
        actor: 'test',
        data: { tag, i },
        at: new Date().toISOString(),
      })),
    ),
  );
}

async function allDigests(store: Store) {
  return store.digests.page(0, 10_000);
}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`digest signer on ${dialect}`, () => {
    // Each test has a store of its own, so the digests of one test's keys are not in another's chain.
    let t: TestStore;
    const stores: TestStore[] = [];
    let dir: string;
    let hook: Receiver;

    beforeAll(async () => {
      dir = tempDir();
      hook = await startReceiver();
    });
    beforeEach(async () => {
      t = await openTestStore(dialect);
      stores.push(t);
    });
    afterAll(async () => {
      await hook?.close();
      for (const s of stores) await s.cleanup();
    });

    const signer = (key: SigningKey, file: string | null, store = t.store, extra = {}) =>
      new LedgerSigner({
        store,
        key,
        digestFile: file,
        webhookUrl: hook.url,
        intervalMs: 3_600_000,
        idleIntervalMs: 3_600_000,
        log: silent,
        ...extra,
      });

    it('signs the head when it moved and not again until it moves; stores, appends and posts each digest', async () => {
      const { key, publicKey } = newKey(dir, 'a');
      const file = join(dir, 'a.jsonl');
      const s = signer(key, file);
      const first = await s.sign();
      expect(first).toMatchObject({
        number: 1,
        ledger_seq: 0,
        previous_digest_hash: FIRST_DIGEST_PREVIOUS,
        key_id: key.keyId,
      });
      await append(t.store, 5, 'one');
      await t.store.ledger.sealPending();
      const head = await t.store.ledgerHead();
      const second = await s.sign();
      expect(second).toMatchObject({
        number: 2,
        ledger_seq: head.seq,
        ledger_hash: head.hash,
        previous_digest_hash: first!.digest_hash,
      });
      expect(await s.sign()).toBeNull();
      expect((await s.sign({ force: true }))?.number).toBe(3);

      const rows = await allDigests(t.store);
      expect(rows.map((r) => r.number)).toEqual([1, 2, 3]);
      // The file holds exactly what the database holds, in order.
      expect(digestLines(file).map((l) => JSON.parse(l).digest_hash)).toEqual(rows.map((r) => r.digest_hash));
      await until(() => (hook.received.length >= 3 ? true : undefined));
      expect(hook.received.map((r) => JSON.parse(r.body).number)).toEqual([1, 2, 3]);
      expect(hook.received[1]!.headers['content-type']).toBe('application/json');

      const report = await verifyStore(t.store, { digestFiles: [file], publicKeys: [publicKey] });
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.digests?.covered_through).toBe(head.seq);
      await s.close();
    });

    it('never forks the chain when two instances sign at once', async () => {
      const { key, publicKey } = newKey(dir, 'race');
      const other = await t.openAnother();
      const fileA = join(dir, 'race-a.jsonl');
      const fileB = join(dir, 'race-b.jsonl');
      const a = signer(key, fileA);
      const b = signer(key, fileB, other);
      for (let round = 0; round < 6; round++) {
        await append(t.store, 3, `race ${round}`);
        await Promise.all([a.sign({ force: true }), b.sign({ force: true })]);
      }
      const rows = await allDigests(t.store);
      expect(rows.length).toBeGreaterThanOrEqual(6);
      rows.forEach((r, i) => {
        expect(r.number).toBe(i + 1);
        if (i > 0) expect(r.previous_digest_hash).toBe(rows[i - 1]!.digest_hash);
      });
      // Each instance's file becomes a whole copy of the chain, whichever instance signed.
      await a.tick();
      await b.tick();
      const inDb = rows.map((r) => r.digest_hash);
      expect(digestLines(fileA).map((l) => JSON.parse(l).digest_hash)).toEqual(inDb);
      expect(digestLines(fileB).map((l) => JSON.parse(l).digest_hash)).toEqual(inDb);
      const report = await verifyStore(t.store, { digestFiles: [fileA, fileB], publicKeys: [publicKey] });
      expect(report.problems).toEqual([]);
    });

    it('signs a heartbeat when idle for the idle interval, and only then', async () => {
      const { key } = newKey(dir, 'idle');
      let now = Date.now() + 60_000;
      const s = signer(key, null, t.store, { idleIntervalMs: 10_000, clock: { now: () => new Date(now) } });
      await s.sign({ force: true });
      expect(await s.tick()).toBeNull();
      now += 11_000;
      const beat = await s.tick();
      expect(beat).not.toBeNull();
      expect(beat!.ledger_seq).toBe((await t.store.ledgerHead()).seq);
    });

    it('continues the chain across a key rotation, which verification follows given both public keys', async () => {
      const oldKey = newKey(dir, 'old');
      const newer = newKey(dir, 'new');
      const file = join(dir, 'rotation.jsonl');
      const first = signer(oldKey.key, file);
      await append(t.store, 2, 'old key');
      const lastOld = await first.sign({ force: true });
      await first.close();
      await append(t.store, 2, 'new key');
      const second = signer(newer.key, file);
      const firstNew = await second.sign();
      // The new key's first digest names the old key's last one.
      expect(firstNew?.previous_digest_hash).toBe(lastOld!.digest_hash);
      await second.close();

      const both = await verifyStore(t.store, {
        digestFiles: [file],
        publicKeys: [oldKey.publicKey, newer.publicKey],
      });
      expect(both.problems).toEqual([]);
      const uses = both.digests!.keys;
      expect(uses.find((k) => k.key_id === oldKey.key.keyId)?.last).toBe(lastOld!.number);
      expect(uses.find((k) => k.key_id === newer.key.keyId)?.first).toBe(firstNew!.number);

      // Without the old public key, its digests cannot be trusted, and verification says which key is missing.
      const newOnly = await verifyStore(t.store, { digestFiles: [file], publicKeys: [newer.publicKey] });
      expect(newOnly.ok).toBe(false);
      expect(newOnly.problems.map((p) => p.code)).toContain('digest_unknown_key');
      expect(newOnly.problems.find((p) => p.code === 'digest_unknown_key')?.problem).toContain(
        oldKey.key.keyId,
      );
    });

    it('refuses to chain onto a digest in the database that claims its key and does not verify', async () => {
      const { key } = newKey(dir, 'forged');
      const s = signer(key, null);
      const signed = await s.sign({ force: true });
      // The forger writes to the database directly, as an insider with its credentials would.
      await withDirectSql(t.location, (db) =>
        db.run(
          `insert into ledger_digests (number, version, ledger_seq, ledger_hash, signed_at, previous_digest_hash,
            key_id, digest_hash, signature) values (?, 1, ?, ?, ?, ?, ?, ?, ?)`,
          [
            signed!.number + 1,
            signed!.ledger_seq,
            signed!.ledger_hash,
            new Date().toISOString(),
            signed!.digest_hash,
            key.keyId,
            'f'.repeat(64),
            signed!.signature,
          ],
        ),
      );
      await append(t.store, 1, 'after the forgery');
      expect(await s.sign()).toBeNull();
      const rows = await allDigests(t.store);
      expect(rows[rows.length - 1]!.number).toBe(signed!.number + 1);
    });
  });
}

describe('the signing key', () => {
  it('is refused when it is not an Ed25519 private key, and the error never quotes it', () => {
    const garbage = 'sk-NOT-A-KEY-0123456789abcdef';
    expect(() => loadSigningKey({ signing_key: garbage })).toThrow(
      /ledger\.signing_key \(AIRLOCK_LEDGER_SIGNING_KEY\): not a PEM private key/,
    );
    try {
      loadSigningKey({ signing_key: garbage });
    } catch (err) {
      expect((err as Error).message).not.toContain(garbage);
    }
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    expect(() => loadSigningKey({ signing_key: rsa })).toThrow(/must be Ed25519, not rsa/);
    expect(() => loadSigningKey({ signing_key_file: join(tempDir(), 'missing.pem') })).toThrow(
      /cannot read the ledger signing key \(ENOENT\)/,
    );
    expect(loadSigningKey({})).toBeNull();
  });

  it('reads the same key from PEM, from base64 DER (for environment variables) and from a file', () => {
    const pair = generateSigningKeyPair();
    const der = createPrivateKey(pair.privatePem).export({ type: 'pkcs8', format: 'der' }).toString('base64');
    const file = join(tempDir(), 'k.pem');
    writeFileSync(file, pair.privatePem);
    for (const cfg of [{ signing_key: pair.privatePem }, { signing_key: der }, { signing_key_file: file }]) {
      expect(loadSigningKey(cfg)?.keyId).toBe(pair.keyId);
    }
  });
});
