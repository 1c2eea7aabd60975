// What `airlock audit verify` runs: the store's ledger (or an export) against the digest files and public keys given.
import { ledgerEvents, verifyLedger } from '../engine/ledger.ts';
import type { Store } from '../store/store.ts';
import { readExport } from './export.ts';
import { readPublicKey } from './keys.ts';
import {
  type AuditReport,
  type DigestSource,
  readDatabaseDigests,
  readDigestFile,
  verifyAnchored,
} from './verify.ts';

export const WITHOUT_DIGESTS =
  'Without signed digests this checks the hash chain only: someone with write access to the database can ' +
  'rewrite or truncate it and recompute every hash undetected. Verify with --digests FILE --public-key KEY.';

export interface VerifyOptions {
  digestFiles: string[];
  publicKeys: string[];
  now?: Date;
}

/** The ledger in the store: alone (as before digests existed), or anchored to the digests. */
export async function verifyStore(store: Store, opts: VerifyOptions): Promise<AuditReport> {
  if (opts.publicKeys.length === 0) {
    const report = await verifyLedger(store);
    return { ...report, warnings: [WITHOUT_DIGESTS], digests: null };
  }
  const keys = opts.publicKeys.map(readPublicKey);
  // Events committed but not yet sealed are not in the chain yet: seal them, so the report covers them.
  await store.ledger.sealPending();
  const sources: DigestSource[] = [];
  for (const file of opts.digestFiles) sources.push(await readDigestFile(file));
  sources.push(await readDatabaseDigests(store));
  const report = await verifyAnchored({
    events: ledgerEvents(store),
    head: await store.ledgerHead(),
    sources,
    keys,
    now: opts.now ?? new Date(),
  });
  if (opts.digestFiles.length === 0) {
    report.warnings.push(
      'no digest file given: digests deleted from the end of the database table, with the events they cover, cannot be detected',
    );
  }
  return report;
}

/** An export, offline: its events and digests (and any digest files given), no database. */
export async function verifyExport(file: string, opts: VerifyOptions): Promise<AuditReport> {
  const keys = opts.publicKeys.map(readPublicKey);
  const read = await readExport(file);
  const sources: DigestSource[] = [read.digests];
  for (const f of opts.digestFiles) {
    const file = await readDigestFile(f);
    // The operator's file goes on past the export's end; those digests cover events the export never held.
    const end = read.end?.seq;
    if (end !== undefined) file.entries = file.entries.filter((e) => !e.digest || e.digest.ledger_seq <= end);
    sources.push(file);
  }
  const report = await verifyAnchored({
    events: (async function* () {
      yield* read.events;
    })(),
    start: read.start,
    head: read.end ? { seq: read.end.seq, hash: read.end.hash } : null,
    sources,
    keys,
  });
  const incomplete = [...read.problems];
  if (!read.end) incomplete.push('the export has no closing record: it was cut off');
  else if (read.end.events !== read.events.length) {
    incomplete.push(
      `the closing record counts ${read.end.events} events, the export holds ${read.events.length}`,
    );
  }
  for (const text of incomplete) {
    report.problems.push({ code: 'export_incomplete', seq: null, actionId: null, type: null, problem: text });
  }
  report.ok = report.problems.length === 0;
  return report;
}

/** The report for a person: the verdict, each problem named, then what the digests cover. */
export function formatReport(report: AuditReport): string {
  const lines: string[] = [];
  const anchored = report.digests !== null;
  if (report.ok) {
    lines.push(
      anchored
        ? `Ledger OK: ${report.events} events, chain intact and matching ${report.digests!.verified} signed digest(s).`
        : `Ledger OK: ${report.events} events, chain intact.`,
    );
  } else {
    lines.push(`Ledger FAILED verification (${report.problems.length} problem(s)):`);
    for (const p of report.problems) {
      const where =
        p.type && p.seq !== null
          ? `event ${p.seq} (${p.type}${p.actionId ? ` of ${p.actionId}` : ''}): `
          : p.digest !== undefined && !p.problem.includes(`#${p.digest}`)
            ? `digest #${p.digest}: `
            : '';
      lines.push(`  [${p.code}] ${where}${p.problem}`);
    }
  }
  const d = report.digests;
  if (d) {
    for (const k of d.keys) {
      lines.push(
        k.digests
          ? `  key ${k.key_id} (${k.source}) signed digests #${k.first}..#${k.last} (${k.digests})`
          : `  key ${k.key_id} (${k.source}) signed none of the digests found`,
      );
    }
    if (d.latest && report.ok) {
      lines.push(
        `  covered by signed digests through event ${d.covered_through}; latest digest #${d.latest.number} signed ${d.latest.signed_at}` +
          (d.uncovered_events ? `; ${d.uncovered_events} later event(s) await the next digest` : ''),
      );
    } else if (d.latest) {
      lines.push(`  the chain matches the signed digests through event ${d.covered_through} only`);
    }
  }
  for (const w of report.warnings) lines.push(`Note: ${w}`);
  return lines.join('\n');
}
