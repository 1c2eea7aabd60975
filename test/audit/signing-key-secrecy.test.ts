// The ledger signing key stays outside the database (guarantee 6) and out of sight (guarantee 7): a real server
// given the key in its environment, logging at trace level, signs digests while serving traffic and reviewers'
// pages, and then no form of the private key appears in its database file, its log, any dashboard page or the digest
// file. The digests it signed do verify with the public key, so the key was in use the whole time.
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { generateSigningKeyPair } from '../../src/audit/keys.ts';
import type { Sandbox } from '../../src/stripe/sandbox/index.ts';
import { prepareServe } from '../helpers/operator.ts';
import { cli, type ServerProcess, spawnAirlock, stopProcess } from '../helpers/process.ts';
import { rejection, stripeAt, until } from '../helpers/stack.ts';
import { FormClient, PASSWORD } from '../review/helpers.ts';
import { digestLines } from './helpers.ts';

let sandbox: Sandbox | undefined;
let server: ServerProcess | undefined;
afterAll(async () => {
  if (server) await stopProcess(server, 'SIGKILL');
  await sandbox?.close();
});

/** Every form the private key could leak in: the PEM body, and the 32-byte seed as hex, base64 and base64url. */
function keyForms(privatePem: string): Record<string, string> {
  const der = createPrivateKey(privatePem).export({ type: 'pkcs8', format: 'der' });
  const seed = der.subarray(der.length - 32);
  const body = privatePem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
  return {
    'PEM body': body,
    'PEM body (tail)': body.slice(-24),
    'seed hex': seed.toString('hex'),
    'seed base64': seed.toString('base64').replace(/=+$/, ''),
    'seed base64url': seed.toString('base64url'),
  };
}

it('keeps the signing key out of the database, the logs, the dashboard and the digest file', async () => {
  const pair = generateSigningKeyPair();
  const prepared = await prepareServe({
    AIRLOCK_LEDGER_SIGNING_KEY: pair.privatePem,
    AIRLOCK_LEDGER_DIGEST_INTERVAL_MS: '200',
    AIRLOCK_LOG_LEVEL: 'trace',
  });
  sandbox = prepared.sandbox;
  const { dir } = prepared;
  const digestFile = join(dir, 'ledger-digests.jsonl');
  const env: Record<string, string> = { ...prepared.env, AIRLOCK_LEDGER_DIGEST_FILE: digestFile };
  const publicKey = join(dir, 'ledger.pub.pem');
  writeFileSync(publicKey, pair.publicPem);

  const key = JSON.parse((await cli(['keys', 'create', '--agent', 'bot', '--json'], env)).stdout)
    .key as string;
  const reviewer = await cli(
    ['reviewers', 'create', '--email', 'lead@example.com', '--password', PASSWORD, '--group', 'admins'],
    env,
  );
  expect(reviewer.code, reviewer.stderr).toBe(0);
  server = await spawnAirlock(env);

  const direct = stripeAt('sk_test_direct', sandbox.port);
  const ch = await direct.charges.create({ amount: 90_000, currency: 'usd', source: 'tok_visa' });
  const agent = stripeAt(key, server.port);
  await agent.refunds.create({ charge: ch.id, amount: 1_000 });
  const held = (await rejection(agent.refunds.create({ charge: ch.id, amount: 60_000 }))).raw
    .airlock_action as string;

  const browser = new FormClient(server.url);
  expect(await browser.logIn('lead@example.com')).toBe(303);
  const pages: Record<string, string> = {};
  for (const path of [
    '/review',
    '/review/overview',
    '/review/freeze',
    '/review/actions',
    `/review/actions/${held}`,
    '/review/actions?status=completed',
  ]) {
    const res = await browser.request(path);
    expect(res.status, `GET ${path}`).toBe(200);
    pages[path] = res.text;
  }
  expect(pages[`/review/actions/${held}`]).toContain(held);
  await until(
    () => (existsSync(digestFile) && digestLines(digestFile).length >= 2 ? true : undefined),
    10_000,
  );
  await stopProcess(server, 'SIGTERM');

  // The key was in use: the digests it signed, the last on shutdown, verify with the public key.
  const verified = await cli(
    ['audit', 'verify', '--digests', digestFile, '--public-key', publicKey, '--json'],
    env,
  );
  expect(verified.code, verified.stdout).toBe(0);
  const report = JSON.parse(verified.stdout);
  expect(report.digests.covered_through).toBe(report.events);
  expect(report.events).toBeGreaterThan(4);
  // The public half is printed for verifiers; never the private one.
  const printed = await cli(['audit', 'public-key'], env);
  expect(printed.stdout).toContain(pair.publicPem.trim());

  const database = ['', '-wal']
    .map((suffix) => env['AIRLOCK_DATA'] + suffix)
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f).toString('latin1'))
    .join('');
  const log = server.output();
  // The search can see what it looks for: the key's id is in the stored digests and in the log.
  expect(database).toContain(pair.keyId);
  expect(log).toContain(pair.keyId);
  expect(log).toContain('ledger digest signed');

  const haystacks: Record<string, string> = {
    'the database file': database,
    'the server log': log,
    'the digest file': readFileSync(digestFile, 'utf8'),
    'airlock audit public-key': printed.stdout + printed.stderr,
    'airlock audit verify': verified.stdout + verified.stderr,
    ...Object.fromEntries(Object.entries(pages).map(([p, t]) => [`page ${p}`, t])),
  };
  for (const [where, text] of Object.entries(haystacks)) {
    for (const [what, secret] of Object.entries(keyForms(pair.privatePem))) {
      expect(text.includes(secret), `${what} of the signing key found in ${where}`).toBe(false);
    }
  }
}, 90_000);
