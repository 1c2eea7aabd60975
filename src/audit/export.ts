// `airlock audit export`: ledger events and actions for a SIEM, with the signed digests that let anyone verify the
// events offline. The export starts at the newest digest before --since, so its first event links to a signed hash.
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { ledgerEvents } from '../engine/ledger.ts';
import type { ActionExportRow } from '../store/actions.ts';
import { GENESIS_HASH } from '../store/migrations.ts';
import type { LedgerRow, Store } from '../store/store.ts';
import { digestLine, type LedgerDigest } from './digest.ts';
import { type DigestEntry, type DigestSource, digestFromRow, entryFrom, openForReading } from './verify.ts';

export type ExportFormat = 'jsonl' | 'csv';
export const EXPORT_VERSION = 1;

export interface ExportSummary {
  since: string;
  from_seq: number;
  to_seq: number;
  events: number;
  digests: number;
  actions: number;
}

const CSV_COLUMNS = [
  'record',
  'seq',
  'at',
  'action_id',
  'type',
  'from_status',
  'to_status',
  'actor',
  'data',
  'prev_hash',
  'hash',
] as const;
type CsvRecord = Partial<Record<(typeof CSV_COLUMNS)[number], string | number | null>>;

function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvLine(r: CsvRecord): string {
  return `${CSV_COLUMNS.map((c) => csvField(r[c])).join(',')}\n`;
}

/** Splits one CSV line (RFC 4180 quoting). Exported fields never hold raw newlines: JSON escapes them. */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(field);
      field = '';
    } else field += c;
  }
  out.push(field);
  return out;
}

/** Writes with back-pressure, so a large export streams instead of filling memory. */
async function put(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** An event as both formats write it, `data` as stored (a CSV row as is). */
function eventColumns(e: LedgerRow) {
  return {
    record: 'event',
    seq: e.seq,
    at: e.at,
    action_id: e.action_id,
    type: e.type,
    from_status: e.from_status,
    to_status: e.to_status,
    actor: e.actor,
    data: e.data,
    prev_hash: e.prev_hash,
    hash: e.hash,
  } satisfies CsvRecord;
}

/** An event as a JSON line: `data` parsed, and also kept as stored when the JSON would not give that text back. */
function eventRecord(e: LedgerRow): Record<string, unknown> {
  let data: unknown = e.data;
  let raw: string | undefined;
  try {
    data = JSON.parse(e.data);
    // The hash covers the stored text; keep it verbatim when parsing and writing it again would not give it back.
    if (JSON.stringify(data) !== e.data) raw = e.data;
  } catch {
    raw = e.data;
  }
  const { prev_hash, hash, ...columns } = eventColumns(e);
  return { ...columns, data, ...(raw !== undefined ? { data_raw: raw } : {}), prev_hash, hash };
}

function actionRecord(a: ActionExportRow): Record<string, unknown> {
  let decision: unknown = a.decision;
  try {
    decision = JSON.parse(a.decision);
  } catch {
    // kept as stored
  }
  return { record: 'action', ...a, decision };
}

/**
 * Streams the export: a header, every event from the anchor to the head read at the start, each digest right after
 * the event it covers, the actions changed since `since`, and a closing record with the counts (a cut-off export
 * lacks it). Digests also go to `digestsOut` as digest-file lines, which is where a CSV export keeps them.
 */
export async function exportAudit(
  store: Store,
  opts: { since: string; format: ExportFormat; out: Writable; digestsOut?: Writable | null; now?: Date },
): Promise<ExportSummary> {
  const { since, format, out } = opts;
  // The export holds the sealed chain: seal what has committed first, so it ends at the latest commit.
  await store.ledger.sealPending();
  const head = await store.ledgerHead();
  const first = (await store.ledger.firstSince(since)) ?? head.seq + 1;
  const anchorDigest = first > 1 ? await store.digests.atOrBefore(first - 1) : undefined;
  const startSeq = anchorDigest ? anchorDigest.ledger_seq : first - 1;
  const startHash =
    startSeq === 0
      ? GENESIS_HASH
      : startSeq === head.seq
        ? head.hash
        : ((await store.ledger.hashOf(startSeq)) ?? '');
  const header = {
    record: 'export',
    version: EXPORT_VERSION,
    since,
    exported_at: (opts.now ?? new Date()).toISOString(),
    from_seq: startSeq + 1,
    to_seq: head.seq,
    // The event before the first exported one: a digest at this seq ties the export to the signed chain.
    anchor: { seq: startSeq, hash: startHash },
  };
  if (format === 'jsonl') await put(out, `${JSON.stringify(header)}\n`);
  else {
    await put(out, `${CSV_COLUMNS.join(',')}\n`);
    await put(
      out,
      csvLine({
        record: 'export',
        seq: startSeq,
        hash: startHash,
        data: JSON.stringify(header),
        at: header.exported_at,
      }),
    );
  }

  // Digests from the anchor on, never past the head read above (their events would not be in this export).
  const digests: LedgerDigest[] = [];
  for (let after = anchorDigest ? anchorDigest.number - 1 : 0; ; ) {
    const page = await store.digests.page(after, 5000);
    if (page.length === 0) break;
    for (const row of page) {
      if (row.ledger_seq >= startSeq && row.ledger_seq <= head.seq) digests.push(digestFromRow(row));
    }
    after = page[page.length - 1]!.number;
  }
  let d = 0;
  let digestCount = 0;
  const emitDigestsThrough = async (seq: number) => {
    while (d < digests.length && digests[d]!.ledger_seq <= seq) {
      const digest = digests[d++]!;
      digestCount++;
      if (format === 'jsonl') await put(out, `${JSON.stringify({ record: 'digest', ...digest })}\n`);
      if (opts.digestsOut) await put(opts.digestsOut, digestLine(digest));
    }
  };
  await emitDigestsThrough(startSeq);

  let events = 0;
  let lastHash = startHash;
  for await (const e of ledgerEvents(store, startSeq)) {
    if (e.seq > head.seq) break;
    events++;
    lastHash = e.hash;
    await put(out, format === 'jsonl' ? `${JSON.stringify(eventRecord(e))}\n` : csvLine(eventColumns(e)));
    await emitDigestsThrough(e.seq);
  }
  await emitDigestsThrough(head.seq);

  let actions = 0;
  for (let after: { updated_at: string; id: string } | null = null; ; ) {
    const page = await store.actions.changedSince(since, after, 1000);
    if (page.length === 0) break;
    for (const a of page) {
      actions++;
      if (format === 'jsonl') await put(out, `${JSON.stringify(actionRecord(a))}\n`);
      else {
        await put(
          out,
          csvLine({
            record: 'action',
            at: a.updated_at,
            action_id: a.id,
            type: a.kind,
            to_status: a.status,
            actor: a.agent_id ?? a.requested_by,
            data: JSON.stringify(actionRecord(a)),
          }),
        );
      }
    }
    const tail = page[page.length - 1]!;
    after = { updated_at: tail.updated_at, id: tail.id };
  }

  const summary: ExportSummary = {
    since,
    from_seq: startSeq + 1,
    to_seq: head.seq,
    events,
    digests: digestCount,
    actions,
  };
  const end = { record: 'end', ...summary, to_hash: lastHash };
  if (format === 'jsonl') await put(out, `${JSON.stringify(end)}\n`);
  else await put(out, csvLine({ record: 'end', seq: head.seq, hash: lastHash, data: JSON.stringify(end) }));
  return summary;
}

/** An export read back for offline verification. */
export interface ReadExport {
  start: { seq: number; hash: string };
  /** What the closing record states; null when it is missing (the export was cut off). */
  end: { seq: number; hash: string; events: number; digests: number } | null;
  events: LedgerRow[];
  digests: DigestSource;
  problems: string[];
}

/** Reads a JSONL or CSV export (told apart by its first character). Events are kept in memory. */
export async function readExport(file: string): Promise<ReadExport> {
  const lines = createInterface({
    input: await openForReading(file, '--export'),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  const result: ReadExport = {
    start: { seq: 0, hash: GENESIS_HASH },
    end: null,
    events: [],
    digests: { name: `${file} (the export)`, kind: 'export', entries: [] as DigestEntry[] },
    problems: [],
  };
  let format: ExportFormat | null = null;
  let sawHeader = false;
  let n = 0;
  for await (const text of lines) {
    n++;
    if (!text.trim()) continue;
    format ??= text.startsWith('{') ? 'jsonl' : 'csv';
    if (format === 'csv' && n === 1) continue; // the column names
    let record: Record<string, unknown>;
    try {
      record =
        format === 'jsonl' ? (JSON.parse(text) as Record<string, unknown>) : fromCsv(parseCsvLine(text));
    } catch {
      result.problems.push(`line ${n}: not a valid ${format} record`);
      continue;
    }
    switch (record['record']) {
      case 'export': {
        sawHeader = true;
        const anchor = record['anchor'] as { seq?: unknown; hash?: unknown } | undefined;
        if (typeof anchor?.seq === 'number' && typeof anchor.hash === 'string') {
          result.start = { seq: anchor.seq, hash: anchor.hash };
        } else result.problems.push(`line ${n}: the header has no anchor`);
        break;
      }
      case 'event': {
        const e = toLedgerRow(record);
        if (e) result.events.push(e);
        else result.problems.push(`line ${n}: an event record lacks fields`);
        break;
      }
      case 'digest': {
        const { record: _kind, ...digest } = record;
        result.digests.entries.push(entryFrom(digest, n));
        break;
      }
      case 'end':
        result.end = {
          seq: Number(record['to_seq']),
          hash: String(record['to_hash']),
          events: Number(record['events']),
          digests: Number(record['digests']),
        };
        break;
      case 'action':
        break;
      default:
        result.problems.push(`line ${n}: unknown record ${JSON.stringify(record['record'])}`);
    }
  }
  if (!sawHeader) result.problems.push('the export has no header record');
  return result;
}

/** CSV rows carry the header and closing records as JSON in `data`; events as columns. */
function fromCsv(fields: string[]): Record<string, unknown> {
  const row = Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, fields[i] ?? ''])) as Record<string, string>;
  if (row['record'] === 'export' || row['record'] === 'end')
    return JSON.parse(row['data']!) as Record<string, unknown>;
  if (row['record'] !== 'event') return { record: row['record'] };
  return {
    record: 'event',
    seq: Number(row['seq']),
    at: row['at'],
    action_id: row['action_id'] === '' ? null : row['action_id'],
    type: row['type'],
    from_status: row['from_status'] === '' ? null : row['from_status'],
    to_status: row['to_status'] === '' ? null : row['to_status'],
    actor: row['actor'],
    data_raw: row['data'],
    prev_hash: row['prev_hash'],
    hash: row['hash'],
  };
}

function toLedgerRow(r: Record<string, unknown>): LedgerRow | null {
  const str = (k: string) => (typeof r[k] === 'string' ? (r[k] as string) : null);
  const seq = r['seq'];
  const data = typeof r['data_raw'] === 'string' ? r['data_raw'] : JSON.stringify(r['data']);
  const type = str('type');
  const actor = str('actor');
  const at = str('at');
  const prev = str('prev_hash');
  const hash = str('hash');
  if (typeof seq !== 'number' || !Number.isInteger(seq) || !type || !actor || !at || !prev || !hash)
    return null;
  if (data === undefined) return null;
  return {
    seq,
    action_id: str('action_id'),
    type,
    from_status: str('from_status'),
    to_status: str('to_status'),
    actor,
    data,
    at,
    prev_hash: prev,
    hash,
  };
}
