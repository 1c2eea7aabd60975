import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import { exponentialBackoff } from '../retry.ts';

/** How one kind of key (an account, an address) is slowed down and then locked out after failed logins. */
export interface ThrottleRule {
  /** Failures allowed before the first delay. */
  free: number;
  /** Failures within the window that lock the key out. */
  lockoutAfter: number;
  windowSeconds: number;
  lockoutSeconds: number;
  /** The delay doubles with each failure past `free` (1 s, 2 s, 4 s, …) up to this. */
  maxDelaySeconds: number;
}

export const ACCOUNT_RULE: ThrottleRule = {
  free: 3,
  lockoutAfter: 10,
  windowSeconds: 15 * 60,
  lockoutSeconds: 15 * 60,
  maxDelaySeconds: 60,
};

// One address may front many honest reviewers (an office NAT), so it gets more room than one account.
export const ADDRESS_RULE: ThrottleRule = {
  free: 10,
  lockoutAfter: 50,
  windowSeconds: 60 * 60,
  lockoutSeconds: 60 * 60,
  maxDelaySeconds: 60,
};

class KeyThrottle {
  readonly #failures: RateLimiterMemory;
  readonly #pause: RateLimiterMemory;

  constructor(
    name: string,
    readonly rule: ThrottleRule,
  ) {
    // Consuming the lockoutAfter-th point goes past `points`, which blocks the key for the lockout window.
    this.#failures = new RateLimiterMemory({
      keyPrefix: `login_${name}`,
      points: rule.lockoutAfter - 1,
      duration: rule.windowSeconds,
      blockDuration: rule.lockoutSeconds,
    });
    this.#pause = new RateLimiterMemory({ keyPrefix: `login_${name}_pause`, points: 1, duration: 1 });
  }

  /** Milliseconds before this key may try again; 0 when it may try now. */
  async wait(key: string): Promise<number> {
    const [failures, pause] = await Promise.all([this.#failures.get(key), this.#pause.get(key)]);
    return Math.max(blockedFor(failures, this.rule.lockoutAfter - 1), blockedFor(pause, 1));
  }

  async failed(key: string): Promise<void> {
    let count: number;
    try {
      count = (await this.#failures.consume(key)).consumedPoints;
    } catch (res) {
      count = (res as RateLimiterRes).consumedPoints; // now locked out
    }
    if (count >= this.rule.free && count < this.rule.lockoutAfter) {
      const delay = exponentialBackoff(count - this.rule.free + 1, 1, this.rule.maxDelaySeconds);
      await this.#pause.block(key, delay);
    }
  }

  async reset(key: string): Promise<void> {
    await Promise.all([this.#failures.delete(key), this.#pause.delete(key)]);
  }
}

function blockedFor(res: RateLimiterRes | null, points: number): number {
  return res && res.consumedPoints > points && res.msBeforeNext > 0 ? res.msBeforeNext : 0;
}

/**
 * Failed dashboard logins slow down, then lock out, both the account tried and the address trying: a guesser
 * spraying one password over many accounts meets the address limit, many addresses on one account meet the
 * account limit. Counts are kept in this process's memory, so each instance counts on its own.
 */
export class LoginThrottle {
  readonly #accounts: KeyThrottle;
  readonly #addresses: KeyThrottle;

  constructor(account: ThrottleRule = ACCOUNT_RULE, address: ThrottleRule = ADDRESS_RULE) {
    this.#accounts = new KeyThrottle('account', account);
    this.#addresses = new KeyThrottle('address', address);
  }

  /** Milliseconds before this account may be tried again from this address; 0 when it may be tried now. */
  async wait(account: string, address: string): Promise<number> {
    const [a, b] = await Promise.all([
      this.#accounts.wait(accountKey(account)),
      this.#addresses.wait(address),
    ]);
    return Math.max(a, b);
  }

  async failed(account: string, address: string): Promise<void> {
    await Promise.all([this.#accounts.failed(accountKey(account)), this.#addresses.failed(address)]);
  }

  /**
   * A right password clears the account's count, not the address's: a guesser who also holds one account must
   * not be able to wipe their own tally by logging into it.
   */
  async succeeded(account: string): Promise<void> {
    await this.#accounts.reset(accountKey(account));
  }
}

function accountKey(email: string): string {
  return email.trim().toLowerCase().slice(0, 320);
}
