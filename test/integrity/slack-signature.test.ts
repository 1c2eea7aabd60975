// Slack's request signature as a class of attack: any change to the signed bytes, the timestamp or the signature,
// and any timestamp outside the window, is refused; only the exact request Slack signed passes.
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SLACK_TIMESTAMP_WINDOW_S, verifySlackSignature } from '../../src/auth/slack-signature.ts';

const SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const sign = (secret: string, ts: string, body: string) =>
  `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
const NOW = new Date('2031-03-01T12:00:00Z');
const nowS = Math.floor(NOW.getTime() / 1000);

describe('Slack request signatures', () => {
  it('passes the request exactly as signed, at any time inside the window', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: -SLACK_TIMESTAMP_WINDOW_S, max: SLACK_TIMESTAMP_WINDOW_S }),
        (body, skew) => {
          const ts = String(nowS + skew);
          expect(
            verifySlackSignature(SECRET, body, { timestamp: ts, signature: sign(SECRET, ts, body) }, NOW),
          ).toEqual({
            ok: true,
          });
        },
      ),
    );
  });

  it('refuses any body other than the one signed', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (signed, sent) => {
        fc.pre(signed !== sent);
        const ts = String(nowS);
        const r = verifySlackSignature(
          SECRET,
          sent,
          { timestamp: ts, signature: sign(SECRET, ts, signed) },
          NOW,
        );
        expect(r).toEqual({ ok: false, reason: 'mismatch' });
      }),
    );
  });

  it('refuses a signature made with another secret, or for another timestamp in the window', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.string(),
        fc.integer({ min: 1, max: 200 }),
        (other, body, shift) => {
          fc.pre(other !== SECRET);
          const ts = String(nowS);
          expect(
            verifySlackSignature(SECRET, body, { timestamp: ts, signature: sign(other, ts, body) }, NOW).ok,
          ).toBe(false);
          // A signature lifted from a request signed a moment earlier does not sign this timestamp.
          const earlier = String(nowS - shift);
          expect(
            verifySlackSignature(SECRET, body, { timestamp: ts, signature: sign(SECRET, earlier, body) }, NOW)
              .ok,
          ).toBe(false);
        },
      ),
    );
  });

  it('refuses a correctly signed request whose timestamp is outside the window, either way', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: SLACK_TIMESTAMP_WINDOW_S + 1, max: 10 * 365 * 86400 }),
        fc.boolean(),
        (body, off, past) => {
          const ts = String(nowS + (past ? -off : off));
          expect(
            verifySlackSignature(SECRET, body, { timestamp: ts, signature: sign(SECRET, ts, body) }, NOW),
          ).toEqual({
            ok: false,
            reason: 'stale',
          });
        },
      ),
    );
  });

  it('refuses a missing or malformed timestamp or signature', () => {
    const ts = String(nowS);
    const good = sign(SECRET, ts, 'x');
    for (const h of [
      { timestamp: undefined, signature: good },
      { timestamp: ts, signature: undefined },
      { timestamp: `${ts}.5`, signature: good },
      { timestamp: `-${ts}`, signature: good },
      { timestamp: ts, signature: '' },
      { timestamp: ts, signature: good.replace('v0=', 'v1=') },
      { timestamp: ts, signature: good.toUpperCase() },
    ]) {
      expect(verifySlackSignature(SECRET, 'x', h, NOW).ok).toBe(false);
    }
  });
});
