// Verification against signed digests. The hash chain alone shows edits made without recomputing it; the digests,
// signed with a key the database never holds, pin where the chain stood when each was signed. So a rewrite that
// recomputes every hash, a truncation with the head row set back, and events deleted before a digest all show up,
// and so do digests deleted from or reordered in the digest file.

import type { KeyObject } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ChainWalk, type LedgerProblem, type LedgerProblemCode } from '../engine/ledger.ts';
import { AirlockError } from '../errors.ts';
import type { DigestRow } from '../store/digests.ts';
import type { LedgerRow, Store } from '../store/store.ts';
import { checkDigest, type LedgerDigest, parseDigest } from './digest.ts';
import type { PublicKey } from './keys.ts';

/** One digest as read from a source, or why it could not be read. */
export interface DigestEntry {
  digest: LedgerDigest | null;
  /** 1-based line in a file or export; 0 for the database. */
  line: number;
  error?: string;
}

export interface DigestSource {
  /** Shown in reports: the file name, "the database" or "the export". */
  name: string;
  /** Files are append-only and in order; the database is read in number order; an export holds part of the chain. */
  kind: 'file' | 'database' | 'export';
  entries: DigestEntry[];
}

export interface KeyUse {
  key_id: string;
  source: string | null;
  digests: number;
  first: number | null;
  last: number | null;
}

export interface DigestSummary {
  sources: { name: string; kind: DigestSource['kind']; digests: number }[];
  /** Distinct digests whose signature verified, across every source. */
  verified: number;
  keys: KeyUse[];
  latest: { number: number; ledger_seq: number; signed_at: string; key_id: string } | null;
  /** The last event a verified digest covers and the chain still matches. */
  covered_through: number;
  /** Events after it: checked by the hash chain only until the next digest is signed. */
  uncovered_events: number;
}

export interface AuditReport {
  ok: boolean;
  events: number;
  headSeq: number;
  problems: LedgerProblem[];
  /** Worth knowing, not evidence of tampering: the file lagging the database, the age of the latest digest. */
  warnings: string[];
  /** null when verified without digests. */
  digests: DigestSummary | null;
}

const problem = (
  code: LedgerProblemCode,
  text: string,
  at: { seq?: number | null; digest?: number } = {},
): LedgerProblem => ({
  code,
  seq: at.seq ?? null,
  actionId: null,
  type: null,
  digest: at.digest,
  problem: text,
});

function describe(d: LedgerDigest): string {
  return `digest #${d.number} (signed ${d.signed_at})`;
}

/** Reads a digest file: one JSON digest per line. Blank lines are skipped. */
export async function readDigestFile(file: string): Promise<DigestSource> {
  const entries: DigestEntry[] = [];
  const lines = createInterface({
    input: await openForReading(file, '--digests'),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (!text.trim()) continue;
    entries.push(entryFrom(text, line));
  }
  return { name: file, kind: 'file', entries };
}

/** A file opened for reading, or an error naming the option and the file (not a stack trace). */
export async function openForReading(file: string, option: string): Promise<ReadStream> {
  const stream = createReadStream(file, 'utf8');
  await new Promise<void>((resolve, reject) => {
    stream.once('ready', () => resolve());
    stream.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new AirlockError(
          'parameter_invalid',
          `${option} ${file}: cannot read it (${err.code ?? err.message})`,
        ),
      ),
    );
  });
  return stream;
}

export function entryFrom(text: string | unknown, line: number): DigestEntry {
  let value: unknown = text;
  if (typeof text === 'string') {
    try {
      value = JSON.parse(text);
    } catch {
      return { digest: null, line, error: 'not valid JSON (a torn or edited line)' };
    }
  }
  const parsed = parseDigest(value);
  return typeof parsed === 'string' ? { digest: null, line, error: parsed } : { digest: parsed, line };
}

export function digestFromRow(row: DigestRow): LedgerDigest {
  return {
    object: 'ledger_digest',
    version: row.version,
    number: row.number,
    ledger_seq: row.ledger_seq,
    ledger_hash: row.ledger_hash,
    signed_at: row.signed_at,
    previous_digest_hash: row.previous_digest_hash,
    key_id: row.key_id,
    digest_hash: row.digest_hash,
    signature: row.signature,
  };
}

export async function readDatabaseDigests(store: Store): Promise<DigestSource> {
  const entries: DigestEntry[] = [];
  for (let after = 0; ; ) {
    const page = await store.digests.page(after, 5000);
    if (page.length === 0) break;
    for (const row of page) entries.push(entryFrom(digestFromRow(row), 0));
    after = page[page.length - 1]!.number;
  }
  return { name: 'the database', kind: 'database', entries };
}

interface DigestCheckResult {
  problems: LedgerProblem[];
  warnings: string[];
  /** Every digest whose signature verified, by number (two at one number is a conflict, reported). */
  trusted: Map<number, LedgerDigest[]>;
  summary: Omit<DigestSummary, 'covered_through' | 'uncovered_events'>;
}

/** Checks each source's digests (signature, order, gaps, links), then the sources against each other. */
export function checkDigests(sources: DigestSource[], keys: PublicKey[]): DigestCheckResult {
  const problems: LedgerProblem[] = [];
  const warnings: string[] = [];
  const keyMap = new Map<string, KeyObject>(keys.map((k) => [k.keyId, k.publicKey]));
  const trusted = new Map<number, LedgerDigest[]>();
  const perSource = new Map<DigestSource, Map<number, LedgerDigest>>();
  const uses = new Map<string, KeyUse>(
    keys.map((k) => [k.keyId, { key_id: k.keyId, source: k.source, digests: 0, first: null, last: null }]),
  );

  for (const source of sources) {
    const where = (e: DigestEntry) =>
      source.kind === 'database' ? source.name : `${source.name} line ${e.line}`;
    const valid = new Map<number, LedgerDigest>();
    let highest: LedgerDigest | null = null;
    for (const entry of source.entries) {
      const d = entry.digest;
      if (!d) {
        problems.push(problem('digest_malformed', `${where(entry)}: ${entry.error ?? 'unreadable'}`));
        continue;
      }
      const check = checkDigest(d, keyMap);
      if (check === 'unknown_key') {
        problems.push(
          problem(
            'digest_unknown_key',
            `${describe(d)} in ${where(entry)} is signed by key ${d.key_id}, which is not among the public keys given (a forgery, or a key missing from --public-key)`,
            { digest: d.number },
          ),
        );
        continue;
      }
      if (check === 'altered') {
        problems.push(
          problem(
            'digest_altered',
            `${describe(d)} in ${where(entry)} does not match its signature (it was altered or forged)`,
            { digest: d.number },
          ),
        );
        continue;
      }
      const seen = valid.get(d.number);
      if (seen) {
        if (seen.digest_hash !== d.digest_hash) {
          problems.push(
            problem(
              'digest_conflict',
              `${where(entry)}: two different signed digests are numbered ${d.number}`,
              {
                digest: d.number,
              },
            ),
          );
        }
        continue;
      }
      if (source.kind !== 'database' && highest && d.number < highest.number) {
        problems.push(
          problem(
            'digests_reordered',
            `${where(entry)}: digest #${d.number} comes after digest #${highest.number} (digests were reordered)`,
            { digest: d.number },
          ),
        );
      }
      if (!highest || d.number > highest.number) highest = d;
      valid.set(d.number, d);
      const list = trusted.get(d.number) ?? [];
      if (!list.some((x) => x.digest_hash === d.digest_hash)) list.push(d);
      trusted.set(d.number, list);
    }
    perSource.set(source, valid);

    // Gaps in number order, within this source; links are checked across sources below.
    const numbers = [...valid.keys()].sort((a, b) => a - b);
    const from = source.kind === 'database' ? 'the database' : source.name;
    if (source.kind === 'file' && numbers.length && numbers[0]! > 1) {
      warnings.push(`${source.name} begins at digest #${numbers[0]} (it was set up after earlier digests)`);
    }
    for (let i = 1; i < numbers.length; i++) {
      const before = valid.get(numbers[i - 1]!)!;
      const d = valid.get(numbers[i]!)!;
      if (d.number > before.number + 1) {
        const range =
          d.number === before.number + 2
            ? `#${before.number + 1} is`
            : `#${before.number + 1}..#${d.number - 1} are`;
        problems.push(
          problem('digest_missing', `digest ${range} missing from ${from} (deleted)`, {
            digest: before.number + 1,
          }),
        );
      }
    }
  }

  // Each digest is stored before it is appended to a file, so one in a file but not in the database was deleted
  // from the database; the reverse is the file lagging (a crash before the append, or a file set up later).
  const db = sources.find((s) => s.kind === 'database');
  const dbDigests = db ? perSource.get(db)! : null;
  if (dbDigests) {
    for (const source of sources) {
      if (source.kind !== 'file') continue;
      const inFile = perSource.get(source)!;
      // Gaps inside the database's numbers are reported above; here, what is gone from its end.
      const dbLast = Math.max(0, ...dbDigests.keys());
      const gone = [...inFile.keys()].filter((n) => n > dbLast);
      for (const range of ranges(gone)) {
        problems.push(
          problem(
            'digest_missing',
            `digest ${range.text} ${range.one ? 'is' : 'are'} in ${source.name} but missing from the database (deleted)`,
            { digest: range.from },
          ),
        );
      }
      const fileLast = Math.max(0, ...inFile.keys());
      const lagging = [...dbDigests.keys()].filter((n) => n > fileLast);
      if (lagging.length) {
        warnings.push(
          `digests #${Math.min(...lagging)}..#${Math.max(...lagging)} are in the database but not yet in ${source.name}`,
        );
      }
    }
  }

  // Across sources: one signed digest per number, each naming the one before.
  const numbers = [...trusted.keys()].sort((a, b) => a - b);
  for (const n of numbers) {
    const here = trusted.get(n)!;
    if (here.length > 1) {
      problems.push(
        problem(
          'digest_conflict',
          `two different signed digests are numbered ${n} (digests were deleted from the database and the chain signed again, or the key signed two histories)`,
          { digest: n },
        ),
      );
    }
    const before = trusted.get(n - 1);
    if (!before) continue;
    for (const d of here) {
      if (!before.some((b) => b.digest_hash === d.previous_digest_hash)) {
        problems.push(
          problem(
            'digest_chain_broken',
            `${describe(d)} does not name digest #${n - 1} as its previous digest (a digest was replaced, or the chain forked)`,
            { digest: n },
          ),
        );
      }
      for (const b of before) {
        if (d.ledger_seq < b.ledger_seq) {
          problems.push(
            problem(
              'ledger_rolled_back',
              `${describe(d)} covers event ${d.ledger_seq}, but digest #${b.number} already covered event ${b.ledger_seq}: the ledger was rolled back between them (events were removed, or a backup restored)`,
              { digest: n, seq: d.ledger_seq },
            ),
          );
        }
      }
    }
  }

  let latest: LedgerDigest | null = null;
  let verified = 0;
  for (const n of numbers) {
    for (const d of trusted.get(n)!) {
      verified++;
      const use = uses.get(d.key_id)!;
      use.digests++;
      use.first ??= d.number;
      use.last = d.number;
      latest = d;
    }
  }
  return {
    problems: dedupe(problems),
    warnings,
    trusted,
    summary: {
      sources: sources.map((s) => ({ name: s.name, kind: s.kind, digests: s.entries.length })),
      verified,
      keys: [...uses.values()],
      latest: latest
        ? {
            number: latest.number,
            ledger_seq: latest.ledger_seq,
            signed_at: latest.signed_at,
            key_id: latest.key_id,
          }
        : null,
    },
  };
}

function ranges(numbers: number[]): { from: number; text: string; one: boolean }[] {
  const sorted = [...numbers].sort((a, b) => a - b);
  const out: { from: number; text: string; one: boolean }[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    const from = sorted[i]!;
    const to = sorted[j]!;
    out.push({ from, text: from === to ? `#${from}` : `#${from}..#${to}`, one: from === to });
    i = j + 1;
  }
  return out;
}

function dedupe(problems: LedgerProblem[]): LedgerProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.code}\n${p.problem}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export interface AnchoredInput {
  events: AsyncIterable<LedgerRow>;
  /** Where the chain picks up: the genesis, or for an export the event before its first. */
  start?: { seq: number; hash: string };
  /** The head row (database) or the export's stated end, which the chain must end at. */
  head: { seq: number; hash: string } | null;
  sources: DigestSource[];
  keys: PublicKey[];
  now?: Date;
}

/**
 * Walks the chain, and at each event a digest covers, checks the chain still has the hash that was signed there.
 * Returns every problem found, named.
 */
export async function verifyAnchored(input: AnchoredInput): Promise<AuditReport> {
  const digests = checkDigests(input.sources, input.keys);
  const start = input.start ?? { seq: 0, hash: '0'.repeat(64) };
  // Each covered event and the digests that signed its hash; the earliest digest names a problem best.
  const anchors = new Map<number, LedgerDigest[]>();
  for (const list of digests.trusted.values()) {
    for (const d of list) {
      if (d.ledger_seq < start.seq) continue;
      const at = anchors.get(d.ledger_seq) ?? [];
      at.push(d);
      anchors.set(d.ledger_seq, at);
    }
  }
  const problems: LedgerProblem[] = [];
  let matchedThrough = start.seq;
  // Once the chain differs from one digest, every later digest differs too (each hash covers all before it); those
  // are folded into the first problem rather than listed one by one.
  let open: { problem: LedgerProblem; text: string; later: number[] } | null = null;
  const anchorAt = (seq: number, hash: string) => {
    const list = anchors.get(seq);
    if (!list) return;
    const wrong = list.filter((d) => d.ledger_hash !== hash);
    if (wrong.length === 0) {
      matchedThrough = seq;
      open = null;
      return;
    }
    const d = wrong.reduce((a, b) => (a.number < b.number ? a : b));
    if (open) {
      open.later.push(d.number);
      open.problem.problem = `${open.text}; the chain differs from every later digest too (#${open.later[0]}..#${d.number})`;
      return;
    }
    const from = matchedThrough + 1;
    const events = from === seq ? `event ${seq} was` : `events ${from}..${seq} were`;
    const text =
      seq === start.seq
        ? `the chain before event ${seq + 1} differs from ${describe(d)}: the events before this export were rewritten`
        : `${describe(d)} signed another hash for event ${seq}: ${events} rewritten (edited with the chain recomputed, or removed or inserted)`;
    const problem: LedgerProblem = {
      code: 'ledger_rewritten',
      seq,
      actionId: null,
      type: null,
      digest: d.number,
      problem: text,
    };
    problems.push(problem);
    open = { problem, text, later: [] };
  };
  anchorAt(start.seq, start.hash);
  const seen = new Set<number>();
  const walk = new ChainWalk(start, (e) => {
    if (anchors.has(e.seq)) {
      seen.add(e.seq);
      anchorAt(e.seq, e.hash);
    }
  });
  for await (const e of input.events) walk.add(e);
  if (input.head) walk.checkHead(input.head);
  const end = walk.last.seq;

  // Digests covering events the chain no longer reaches: the tail was cut (and the head set back to hide it).
  const beyond = [...anchors.values()].flat().filter((d) => d.ledger_seq > end);
  if (beyond.length) {
    const far = beyond.reduce((a, b) => (a.ledger_seq > b.ledger_seq ? a : b));
    problems.push({
      code: 'tail_truncated',
      seq: end + 1,
      actionId: null,
      type: null,
      digest: far.number,
      problem: `the ledger ends at event ${end}, but ${describe(far)} covers event ${far.ledger_seq}: event${far.ledger_seq === end + 1 ? ` ${end + 1} was` : `s ${end + 1}..${far.ledger_seq} were`} removed from the end${input.head && input.head.seq === end ? ' and the head row set back to match' : ''}`,
    });
  }
  // Digests covering an event inside a gap, and gaps before a digest: those events existed when it was signed.
  const gaps = walk.problems.flatMap((p) => (p.code === 'events_missing' && p.missing ? [p.missing] : []));
  for (const [seq, list] of anchors) {
    if (seq <= start.seq || seq > end || seen.has(seq)) continue;
    if (gaps.some(([from, to]) => seq >= from && seq <= to)) continue;
    const d = list[0]!;
    problems.push({
      code: 'events_missing',
      seq,
      actionId: null,
      type: null,
      digest: d.number,
      problem: `event ${seq}, covered by ${describe(d)}, is missing (deleted)`,
    });
  }
  const covering = [...anchors.keys()].sort((a, b) => a - b);
  for (const p of walk.problems) {
    if (p.code !== 'events_missing' || !p.missing) continue;
    const [from, to] = p.missing;
    const after = covering.find((seq) => seq >= from);
    if (after === undefined) continue;
    const d = anchors.get(after)![0]!;
    p.digest = d.number;
    const existed =
      after >= to ? `so ${from === to ? 'it' : 'they'} existed` : `so events ${from}..${after} existed`;
    p.problem += `; ${describe(d)} covers event ${after}, ${existed} when it was signed`;
  }

  const all = dedupe([...walk.problems, ...problems, ...digests.problems]).sort(
    (a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER),
  );
  const warnings = [...digests.warnings];
  const latest = digests.summary.latest;
  if (latest && input.now) {
    const ageMs = input.now.getTime() - Date.parse(latest.signed_at);
    if (ageMs > 2 * 3600_000) {
      warnings.push(
        `the latest digest (#${latest.number}) was signed ${Math.round(ageMs / 3600_000)} h ago: was Airlock stopped, or were later digests removed from every copy?`,
      );
    }
  }
  if (digests.summary.verified === 0)
    warnings.push('no signed digest was found: only the hash chain was checked');
  return {
    ok: all.length === 0,
    events: walk.events,
    headSeq: input.head?.seq ?? end,
    problems: all,
    warnings,
    digests: {
      ...digests.summary,
      covered_through: matchedThrough,
      uncovered_events: Math.max(0, end - matchedThrough),
    },
  };
}
