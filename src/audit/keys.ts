// The Ed25519 key that signs ledger digests. It lives in a file or an environment variable, never in the database:
// whoever can write the database must not be able to sign a rewritten history.
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  type PrivateKeyInput,
} from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { AirlockError } from '../errors.ts';
import { keyId } from './digest.ts';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

export interface PublicKey {
  publicKey: KeyObject;
  keyId: string;
  /** Where it came from, for reports. */
  source: string;
}

/** Where the configuration says the key is: `ledger.signing_key_file`, or the PEM itself in `ledger.signing_key`. */
export interface SigningKeyConfig {
  signing_key_file?: string | undefined;
  signing_key?: string | undefined;
}

/** A new key pair as PEM text: PKCS#8 for the private key, SPKI for the public one. */
export function generateSigningKeyPair(): { privatePem: string; publicPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyId(publicKey),
  };
}

/** The public key file written beside a private key: `ledger-signing.pem` → `ledger-signing.pub.pem`. */
export function publicKeyPathFor(privatePath: string): string {
  return privatePath.replace(/(\.pem)?$/, '.pub.pem');
}

/**
 * Writes a new pair: the private key readable by its owner only, the public key beside it. Refuses to replace an
 * existing private key, since digests signed with it could then no longer be told apart from forgeries.
 */
export function writeSigningKeyPair(privatePath: string): { keyId: string; publicPath: string } {
  if (existsSync(privatePath)) {
    throw new AirlockError('config_invalid', `Refusing to overwrite the signing key ${privatePath}`);
  }
  const pair = generateSigningKeyPair();
  mkdirSync(dirname(privatePath), { recursive: true });
  writeFileSync(privatePath, pair.privatePem, { mode: 0o600, flag: 'wx' });
  const publicPath = publicKeyPathFor(privatePath);
  writeFileSync(publicPath, pair.publicPem, { mode: 0o644 });
  return { keyId: pair.keyId, publicPath };
}

/** PEM text, or the base64 of the DER encoding (environment variables that cannot hold newlines). */
function keyInput(text: string, type: 'pkcs8' | 'spki'): PrivateKeyInput {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) return { key: trimmed, format: 'pem' };
  return { key: Buffer.from(trimmed, 'base64'), format: 'der', type } as PrivateKeyInput;
}

/**
 * Reads the signing key named by the configuration, or null when none is configured. Errors name where the key was
 * looked for and never quote it.
 */
export function loadSigningKey(cfg: SigningKeyConfig): SigningKey | null {
  let text: string;
  let source: string;
  if (cfg.signing_key) {
    text = cfg.signing_key;
    source = 'ledger.signing_key (AIRLOCK_LEDGER_SIGNING_KEY)';
  } else if (cfg.signing_key_file) {
    source = `ledger.signing_key_file ${cfg.signing_key_file}`;
    try {
      text = readFileSync(cfg.signing_key_file, 'utf8');
    } catch (err) {
      throw new AirlockError(
        'config_invalid',
        `${source}: cannot read the ledger signing key (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  } else {
    return null;
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyInput(text, 'pkcs8'));
  } catch {
    throw new AirlockError('config_invalid', `${source}: not a PEM private key (expected PKCS#8 Ed25519)`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new AirlockError(
      'config_invalid',
      `${source}: the ledger signing key must be Ed25519, not ${privateKey.asymmetricKeyType ?? 'unknown'}`,
    );
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyId(publicKey) };
}

/** A verifier's public key from a file: SPKI PEM (a private key file is accepted too, its public half is used). */
export function readPublicKey(file: string): PublicKey {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AirlockError(
      'parameter_invalid',
      `--public-key ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let publicKey: KeyObject;
  try {
    publicKey = /PRIVATE KEY/.test(text)
      ? createPublicKey(createPrivateKey(keyInput(text, 'pkcs8')))
      : createPublicKey(keyInput(text, 'spki') as Parameters<typeof createPublicKey>[0]);
  } catch {
    throw new AirlockError('parameter_invalid', `--public-key ${file}: not a PEM public key`);
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new AirlockError('parameter_invalid', `--public-key ${file}: not an Ed25519 key`);
  }
  return { publicKey, keyId: keyId(publicKey), source: file };
}
