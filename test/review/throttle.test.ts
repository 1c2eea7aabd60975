// Dashboard logins slow down and then lock out, per account and per address: through the real login form, and the
// whole schedule (the doubling delay, the lockout window, what a right password clears) on the throttle itself.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ACCOUNT_RULE, ADDRESS_RULE, LoginThrottle } from '../../src/auth/throttle.ts';
import { FormClient, PASSWORD, type ReviewStack, startReviewStack } from './helpers.ts';

describe('the login form', () => {
  let stack: ReviewStack;
  beforeAll(async () => {
    stack = await startReviewStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function attempt(client: FormClient, email: string, password: string) {
    const form = await client.request('/review/login');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.text)?.[1] ?? '';
    const res = await fetch(`${stack.airlock.url}/review/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ _csrf: csrf, email, password, next: '' }).toString(),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), text: await res.text() };
  }

  it('checks only the first few of 25 wrong passwords, refuses the rest with 429, and the right one too until the delay is over', async () => {
    const client = new FormClient(stack.airlock.url);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await attempt(client, 'alice@example.com', `guess-${i}`));
    // Right after the third failure, even the right password waits out the delay.
    const right = await attempt(client, 'alice@example.com', PASSWORD);
    expect(right.status).toBe(429);
    expect(right.retryAfter).toBe('1');
    for (let i = 3; i < 25; i++) answers.push(await attempt(client, 'alice@example.com', `guess-${i}`));
    const statuses = answers.map((a) => a.status);
    expect(statuses.slice(0, 4)).toEqual([401, 401, 401, 429]);
    // Without a throttle all 25 are checked (401); a slow machine may let one more through per delay that passed.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
    for (const a of answers.filter((x) => x.status !== 401)) {
      expect(a.status).toBe(429);
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(a.text).toContain('Too many failed logins');
    }
    // Another account from the same address is not held up by alice's count.
    expect((await attempt(new FormClient(stack.airlock.url), 'bob@example.com', PASSWORD)).status).toBe(303);
    // Once the delay has passed, the right password gets in.
    const checked = statuses.filter((s) => s === 401).length;
    await new Promise((r) => setTimeout(r, 2 ** (checked - 3) * 1000 + 100));
    expect((await attempt(client, 'alice@example.com', PASSWORD)).status).toBe(303);
  });
});

describe('the throttle', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('doubles the delay after each failure past the free ones, then locks the account out for the window', async () => {
    vi.useFakeTimers();
    const throttle = new LoginThrottle();
    const delays: number[] = [];
    for (let i = 1; i < ACCOUNT_RULE.lockoutAfter; i++) {
      expect(await throttle.wait('alice@example.com', '10.0.0.1')).toBe(0);
      await throttle.failed('alice@example.com', '10.0.0.1');
      const wait = await throttle.wait('alice@example.com', '10.0.0.1');
      delays.push(wait / 1000);
      vi.advanceTimersByTime(wait);
    }
    expect(delays).toEqual([0, 0, 1, 2, 4, 8, 16, 32, 60]);
    await throttle.failed('alice@example.com', '10.0.0.1');
    // The tenth failure locks it: the same from any address, for the lockout window, whatever the password.
    expect(await throttle.wait('Alice@Example.com ', '10.9.9.9')).toBe(ACCOUNT_RULE.lockoutSeconds * 1000);
    vi.advanceTimersByTime(ACCOUNT_RULE.lockoutSeconds * 1000 - 1000);
    expect(await throttle.wait('alice@example.com', '10.9.9.9')).toBe(1000);
    vi.advanceTimersByTime(1000);
    expect(await throttle.wait('alice@example.com', '10.9.9.9')).toBe(0);
  });

  it('locks out an address that sprays one password over many accounts', async () => {
    vi.useFakeTimers();
    const throttle = new LoginThrottle();
    for (let i = 0; i < ADDRESS_RULE.lockoutAfter; i++) {
      vi.advanceTimersByTime(await throttle.wait(`user${i}@example.com`, '10.0.0.2'));
      await throttle.failed(`user${i}@example.com`, '10.0.0.2');
    }
    // No single account failed more than once, yet the address waits out the lockout window.
    expect(await throttle.wait('someone-new@example.com', '10.0.0.2')).toBe(
      ADDRESS_RULE.lockoutSeconds * 1000,
    );
    expect(await throttle.wait('someone-new@example.com', '10.0.0.3')).toBe(0);
  });

  it('clears the account on a right password but not the address, so a guesser cannot wipe their own tally', async () => {
    vi.useFakeTimers();
    const throttle = new LoginThrottle();
    for (let i = 0; i < ADDRESS_RULE.free; i++) await throttle.failed(`victim${i}@example.com`, '10.0.0.4');
    for (let i = 0; i < ACCOUNT_RULE.free; i++) await throttle.failed('mallory@example.com', '10.0.0.5');
    expect(await throttle.wait('mallory@example.com', '10.0.0.5')).toBeGreaterThan(0);
    await throttle.succeeded('mallory@example.com');
    expect(await throttle.wait('mallory@example.com', '10.0.0.5')).toBe(0);
    // The address that failed ten times over other accounts still waits, whichever account it tries.
    await throttle.succeeded('victim0@example.com');
    expect(await throttle.wait('mallory@example.com', '10.0.0.4')).toBeGreaterThan(0);
  });
});
