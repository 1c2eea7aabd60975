import { createHmac } from 'node:crypto';
import { verifyWebhook, WebhookVerificationError } from 'airlock/sdk';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.ts';

const SECRET = 'whsec_unit_0123456789';
const BODY = JSON.stringify({
  id: 'evt_1',
  type: 'action.completed',
  created: 1700000000,
  data: { object: { id: 'act_1' } },
});

// Signed here from the documented scheme, independently of Airlock's signer.
function sign(body: string, t: number, secret = SECRET): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof WebhookVerificationError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('verifyWebhook', () => {
  const now = 1_700_000_100;

  it('accepts a fresh signature and returns the parsed event, from a string or the raw bytes', () => {
    expect(verifyWebhook(BODY, sign(BODY, now - 10), SECRET, { now }).id).toBe('evt_1');
    expect(verifyWebhook(Buffer.from(BODY), sign(BODY, now), SECRET, { now }).type).toBe('action.completed');
  });

  it('refuses a stale or future timestamp beyond the tolerance, even with a valid signature', () => {
    expect(reason(() => verifyWebhook(BODY, sign(BODY, now - 301), SECRET, { now }))).toBe(
      'timestamp_out_of_tolerance',
    );
    expect(reason(() => verifyWebhook(BODY, sign(BODY, now + 301), SECRET, { now }))).toBe(
      'timestamp_out_of_tolerance',
    );
    expect(
      reason(() => verifyWebhook(BODY, sign(BODY, now - 50), SECRET, { now, toleranceSeconds: 30 })),
    ).toBe('timestamp_out_of_tolerance');
  });

  it('refuses a changed body, another secret, or a timestamp swapped into the header', () => {
    expect(reason(() => verifyWebhook(`${BODY} `, sign(BODY, now), SECRET, { now }))).toBe(
      'signature_mismatch',
    );
    expect(reason(() => verifyWebhook(BODY, sign(BODY, now, 'whsec_other_secret'), SECRET, { now }))).toBe(
      'signature_mismatch',
    );
    const forged = sign(BODY, now - 1000).replace(/^t=\d+/, `t=${now}`);
    expect(reason(() => verifyWebhook(BODY, forged, SECRET, { now }))).toBe('signature_mismatch');
  });

  it('accepts any of several v1 signatures (secret rotation)', () => {
    const old = sign(BODY, now, 'whsec_old_secret_value');
    const header = `${old},v1=${sign(BODY, now).split('v1=')[1]}`;
    expect(verifyWebhook(BODY, header, SECRET, { now }).id).toBe('evt_1');
  });

  it('refuses missing and malformed headers', () => {
    expect(reason(() => verifyWebhook(BODY, undefined, SECRET, { now }))).toBe('missing_signature');
    expect(reason(() => verifyWebhook(BODY, 'v1=abc', SECRET, { now }))).toBe('malformed_signature');
    expect(reason(() => verifyWebhook(BODY, `t=${now},v1=zz`, SECRET, { now }))).toBe('signature_mismatch');
    expect(reason(() => verifyWebhook(BODY, sign(BODY, now), '', { now }))).toBe('missing_signature');
  });
});

describe('the SDK package entry', () => {
  it('bundles from src/sdk alone: server schemas are imported as types only', async () => {
    const result = await build({
      entryPoints: [`${ROOT}/src/sdk/index.ts`],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'esm',
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.length).toBeGreaterThan(3);
    expect(inputs.filter((p) => !p.startsWith('src/sdk/'))).toEqual([]);
  });
});
