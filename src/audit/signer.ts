// Signs a digest of the ledger head at a fixed interval and on shutdown, stores it, appends it to the digest file
// and posts it to a webhook. The digest file is the copy outside the database: whoever rewrites the database cannot
// take back what was appended there, nor sign a replacement without the key.
import type { KeyObject } from 'node:crypto';
import { mkdir, open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { type Clock, systemClock } from '../engine/clock.ts';
import type { DigestRow } from '../store/digests.ts';
import type { Store } from '../store/store.ts';
import { checkDigest, digestLine, FIRST_DIGEST_PREVIOUS, type LedgerDigest, signDigest } from './digest.ts';
import type { SigningKey } from './keys.ts';
import { digestFromRow, entryFrom } from './verify.ts';

export interface LedgerSignerOptions {
  store: Store;
  key: SigningKey;
  /** The append-only JSON-lines copy; null keeps digests in the database only (not recommended). */
  digestFile: string | null;
  webhookUrl: string | null;
  /** How often to sign when the head moved. */
  intervalMs: number;
  /** How often to sign when it did not: a heartbeat, so a silent gap in the digests means something. */
  idleIntervalMs: number;
  log: Logger;
  clock?: Clock;
}

const WEBHOOK_TIMEOUT_MS = 5_000;
const FILE_TAIL_BYTES = 64 * 1024;

export class LedgerSigner {
  readonly #o: LedgerSignerOptions;
  readonly #clock: Clock;
  readonly #ownKey: ReadonlyMap<string, KeyObject>;
  #timer: NodeJS.Timeout | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The last digest in the file; undefined until the file has been read. */
  #fileLast: { number: number; digest_hash: string } | null | undefined = undefined;
  #fileNeedsNewline = false;
  #alarmed = false;
  readonly #posts = new Set<Promise<void>>();

  constructor(options: LedgerSignerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#ownKey = new Map([[options.key.keyId, options.key.publicKey]]);
  }

  get keyId(): string {
    return this.#o.key.keyId;
  }

  /** Signs at once if the head moved since the last digest (a crash may have left it unsigned), then every interval. */
  start(): this {
    void this.tick();
    this.#timer = setInterval(() => void this.tick(), this.#o.intervalMs);
    this.#timer.unref();
    return this;
  }

  /** One interval's work; never throws (a store outage is logged and retried at the next interval). */
  tick(): Promise<LedgerDigest | null> {
    return this.#serial(async () => {
      try {
        return await this.#sign('tick');
      } catch (err) {
        this.#o.log.warn(
          { err: (err as Error).message },
          'could not sign a ledger digest; retrying next interval',
        );
        return null;
      }
    });
  }

  /** Signs now if the head moved, or always with force. Tests and the shutdown path use it. */
  sign(opts: { force?: boolean } = {}): Promise<LedgerDigest | null> {
    return this.#serial(() => this.#sign(opts.force ? 'force' : 'moved'));
  }

  /** Stops the timer and signs the head once more if it moved: the digest on shutdown. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    try {
      await this.#serial(() => this.#sign('moved'));
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'could not sign the ledger digest on shutdown');
    }
    await Promise.allSettled([...this.#posts]);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #sign(mode: 'tick' | 'moved' | 'force'): Promise<LedgerDigest | null> {
    const { store, key, log } = this.#o;
    // The head is the sealed chain's end. Seal first so the digest covers what has committed; a tick does not
    // queue behind another instance's sealer, which is sealing it anyway.
    if (mode === 'tick') await store.ledger.seal({ wait: false });
    else await store.ledger.sealPending();
    // The latest digest before the head: the head only moves forward, so it is read at or past what that digest
    // covers. Read the other way round, another instance could seal and sign in between, and this one would sign
    // an older head after a newer digest, which verification rightly calls a rollback.
    const last = await store.digests.latest();
    const head = await store.ledgerHead();
    const now = this.#clock.now();
    if (last) {
      const moved = last.ledger_seq !== head.seq || last.ledger_hash !== head.hash;
      const idle = now.getTime() - Date.parse(last.signed_at) >= this.#o.idleIntervalMs;
      if (!moved && mode !== 'force' && !(mode === 'tick' && idle)) {
        await this.#syncFile();
        return null;
      }
      // Never chain onto a digest that claims this key and does not verify: someone wrote it into the database.
      // Another key's digest is a rotation (or a forgery that verification names); the chain continues from it.
      const previous = digestFromRow(last);
      if (previous.key_id === key.keyId && checkDigest(previous, this.#ownKey) !== 'ok') {
        this.#alarm(last.number, 'the latest ledger digest in the database does not verify with this key');
        return null;
      }
    }
    const digest = signDigest(
      {
        number: (last?.number ?? 0) + 1,
        ledger_seq: head.seq,
        ledger_hash: head.hash,
        signed_at: now.toISOString(),
        previous_digest_hash: last?.digest_hash ?? FIRST_DIGEST_PREVIOUS,
      },
      key,
    );
    const stored = await store.transaction((tx) => tx.digests.insert(rowFrom(digest)));
    if (stored) {
      log.debug({ digest: digest.number, ledger_seq: digest.ledger_seq }, 'ledger digest signed');
      this.#post(digest);
    }
    await this.#syncFile();
    return stored ? digest : null;
  }

  /**
   * Appends to the file every stored digest it lacks, in order, so each instance's file is a whole copy of the
   * chain, whichever instance signed. Stops at a digest that does not continue the file's chain.
   */
  async #syncFile(): Promise<void> {
    const file = this.#o.digestFile;
    if (!file) return;
    if (this.#fileLast === undefined) this.#fileLast = await this.#readFileLast(file);
    for (;;) {
      const rows = await this.#o.store.digests.page(this.#fileLast?.number ?? 0, 500);
      let text = '';
      let stop = false;
      for (const row of rows) {
        const d = digestFromRow(row);
        const last = this.#fileLast;
        if (last && (d.number !== last.number + 1 || d.previous_digest_hash !== last.digest_hash)) {
          this.#alarm(d.number, `the digests in the database do not continue ${file}`);
          stop = true;
          break;
        }
        if (d.key_id === this.#o.key.keyId && checkDigest(d, this.#ownKey) !== 'ok') {
          this.#alarm(d.number, 'a ledger digest in the database does not verify with this key');
          stop = true;
          break;
        }
        text += digestLine(d);
        this.#fileLast = { number: d.number, digest_hash: d.digest_hash };
      }
      if (text) await this.#append(file, text);
      if (stop || rows.length < 500) return;
    }
  }

  async #append(file: string, text: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    const fh = await open(file, 'a', 0o644);
    try {
      await fh.write(this.#fileNeedsNewline ? `\n${text}` : text);
      await fh.datasync();
      this.#fileNeedsNewline = false;
    } finally {
      await fh.close();
    }
  }

  /** The last whole digest in the file; a torn last line (a crash mid-append) is skipped and closed off. */
  async #readFileLast(file: string): Promise<{ number: number; digest_hash: string } | null> {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      return null;
    }
    if (size === 0) return null;
    const fh = await open(file, 'r');
    try {
      const length = Math.min(size, FILE_TAIL_BYTES);
      const buf = Buffer.alloc(length);
      await fh.read(buf, 0, length, size - length);
      const text = buf.toString('utf8');
      this.#fileNeedsNewline = !text.endsWith('\n');
      const lines = text.split('\n').filter((l) => l.trim());
      for (let i = lines.length - 1; i >= 0; i--) {
        const entry = entryFrom(lines[i]!, 0);
        if (entry.digest) return { number: entry.digest.number, digest_hash: entry.digest.digest_hash };
      }
      return null;
    } finally {
      await fh.close();
    }
  }

  #alarm(digest: number, message: string): void {
    // Once per process: the condition persists, and verification names the details.
    if (this.#alarmed) return;
    this.#alarmed = true;
    this.#o.log.error(
      { digest },
      `${message}: the ledger or its digests may have been tampered with; run airlock audit verify`,
    );
  }

  #post(d: LedgerDigest): void {
    const url = this.#o.webhookUrl;
    if (!url) return;
    const sent = fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(d),
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    })
      .then(async (res) => {
        await res.body?.cancel();
        if (!res.ok)
          this.#o.log.warn({ digest: d.number, status: res.status }, 'digest webhook refused a digest');
      })
      .catch((err: Error) =>
        this.#o.log.warn({ digest: d.number, err: err.message }, 'could not post a digest to the webhook'),
      )
      .finally(() => this.#posts.delete(sent));
    this.#posts.add(sent);
  }
}

function rowFrom(d: LedgerDigest): DigestRow {
  return {
    number: d.number,
    version: d.version,
    ledger_seq: d.ledger_seq,
    ledger_hash: d.ledger_hash,
    signed_at: d.signed_at,
    previous_digest_hash: d.previous_digest_hash,
    key_id: d.key_id,
    digest_hash: d.digest_hash,
    signature: d.signature,
  };
}

/** Where digests are appended when ledger.digest_file is not set: beside the SQLite file. */
export function defaultDigestFile(data: string): string | null {
  return data === ':memory:' ? null : join(dirname(data), 'ledger-digests.jsonl');
}

/**
 * The running server's signer, or null (with a warning) when no signing key is configured. The key was read before
 * the store opened, so a bad key stops start-up first.
 */
export function startLedgerSigner(
  config: Pick<Config, 'ledger' | 'data'>,
  key: SigningKey | null,
  store: Store,
  log: Logger,
  clock?: Clock,
): LedgerSigner | null {
  if (!key) {
    log.warn(
      'ledger digests are off: no ledger signing key (ledger.signing_key_file or AIRLOCK_LEDGER_SIGNING_KEY); someone who can write the database could rewrite the ledger undetected (docs/audit.md)',
    );
    return null;
  }
  const digestFile = config.ledger.digest_file ?? defaultDigestFile(config.data);
  log.info({ key_id: key.keyId, digest_file: digestFile }, 'signing ledger digests');
  return new LedgerSigner({
    store,
    key,
    digestFile,
    webhookUrl: config.ledger.digest_webhook_url ?? null,
    intervalMs: config.ledger.digest_interval_ms,
    idleIntervalMs: config.ledger.digest_idle_interval_ms,
    log,
    ...(clock ? { clock } : {}),
  }).start();
}
