// A signed digest of the ledger head, after CloudTrail's digest files and Certificate Transparency's signed tree
// heads. It states "the chain ended at event `ledger_seq` with hash `ledger_hash` at `signed_at`", and links to the
// digest before it. It says nothing about how the chain is formed, so the chain can be rebuilt differently later
// (issue 21's sealer) without changing what is signed. The format is described in docs/audit.md.
import { type KeyObject, sign, verify } from 'node:crypto';
import { z } from 'zod';
import { sha256Hex } from '../ids.ts';

export const DIGEST_VERSION = 1;
/** previous_digest_hash of the first digest. */
export const FIRST_DIGEST_PREVIOUS = '0'.repeat(64);
// Domain separation: these bytes can never be mistaken for another message signed with the same key.
const PREFIX = 'airlock.ledger_digest.v1\n';

/** The fields covered by the signature. */
export interface DigestStatement {
  version: number;
  /** Position in the digest chain, from 1. */
  number: number;
  /** The last ledger event the digest covers (0: an empty ledger). */
  ledger_seq: number;
  /** That event's hash (the genesis hash for an empty ledger). */
  ledger_hash: string;
  signed_at: string;
  /** digest_hash of digest number - 1. */
  previous_digest_hash: string;
  /** Fingerprint of the public key that verifies the signature: see keyId(). */
  key_id: string;
}

export interface LedgerDigest extends DigestStatement {
  object: 'ledger_digest';
  /** SHA-256 of the signed bytes: what the next digest names. */
  digest_hash: string;
  /** Ed25519 signature of the signed bytes, base64. */
  signature: string;
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');

const DigestSchema = z.object({
  object: z.literal('ledger_digest'),
  version: z.literal(DIGEST_VERSION),
  number: z.number().int().min(1),
  ledger_seq: z.number().int().min(0),
  ledger_hash: hex64,
  signed_at: z.string().min(1),
  previous_digest_hash: hex64,
  key_id: z.string().min(1),
  digest_hash: hex64,
  signature: z.string().min(1),
});

/**
 * The signed bytes: a fixed prefix, then the statement as JSON with its keys sorted and no whitespace, which any
 * verifier can rebuild (`jq -cS` gives the same JSON).
 */
export function statementBytes(s: DigestStatement): Buffer {
  const sorted = {
    key_id: s.key_id,
    ledger_hash: s.ledger_hash,
    ledger_seq: s.ledger_seq,
    number: s.number,
    previous_digest_hash: s.previous_digest_hash,
    signed_at: s.signed_at,
    version: s.version,
  };
  return Buffer.from(PREFIX + JSON.stringify(sorted), 'utf8');
}

export function digestHashOf(s: DigestStatement): string {
  return sha256Hex(statementBytes(s));
}

/** A public key's fingerprint: the first 16 bytes of the SHA-256 of its DER (SPKI) encoding, in hex. */
export function keyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return sha256Hex(der).slice(0, 32);
}

export function signDigest(
  s: Omit<DigestStatement, 'version' | 'key_id'>,
  key: { privateKey: KeyObject; keyId: string },
): LedgerDigest {
  const statement: DigestStatement = { version: DIGEST_VERSION, ...s, key_id: key.keyId };
  const bytes = statementBytes(statement);
  return {
    object: 'ledger_digest',
    ...statement,
    digest_hash: sha256Hex(bytes),
    // Ed25519 takes no separate hash algorithm: node:crypto wants null here.
    signature: sign(null, bytes, key.privateKey).toString('base64'),
  };
}

export type DigestCheck = 'ok' | 'unknown_key' | 'altered';

/** Checks the signature with the public key named by key_id, and that digest_hash is the hash of what was signed. */
export function checkDigest(d: LedgerDigest, keys: ReadonlyMap<string, KeyObject>): DigestCheck {
  const key = keys.get(d.key_id);
  if (!key) return 'unknown_key';
  const bytes = statementBytes(d);
  let signed = false;
  try {
    signed = verify(null, bytes, key, Buffer.from(d.signature, 'base64'));
  } catch {
    signed = false;
  }
  if (!signed) return 'altered';
  return sha256Hex(bytes) === d.digest_hash ? 'ok' : 'altered';
}

/** Reads one digest (a JSON line of the digest file or a record of an export); a string says what is wrong. */
export function parseDigest(value: unknown): LedgerDigest | string {
  const parsed = DigestSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  return issue ? `${issue.path.join('.') || 'digest'}: ${issue.message}` : 'not a ledger digest';
}

/** One line of the digest file, newline included. */
export function digestLine(d: LedgerDigest): string {
  const { object, ...rest } = d;
  return `${JSON.stringify({ object, ...rest })}\n`;
}
