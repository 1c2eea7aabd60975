import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { PolicyError } from '../policy/errors.ts';
import { parsePolicy, STARTER_POLICY_PATH } from '../policy/policy.ts';
import type { Policy } from '../policy/types.ts';
import type { Store } from '../store/store.ts';

export interface PolicyHolder {
  readonly policy: Policy;
  setPolicy(policy: Policy): void;
}

export type ReloadResult =
  | { ok: true; changed: boolean; version: string }
  | { ok: false; error: string; keeping: string };

export interface PolicyReloaderOptions {
  /** The policy file; undefined means the bundled starter, which is never watched. */
  file: string | undefined;
  holder: PolicyHolder;
  store: Store;
  log: Logger;
  now?: () => Date;
  /** Debounce for bursts of file events (an editor's save is often several). */
  debounceMs?: number;
}

/**
 * Swaps the running policy when its file changes or on SIGHUP. The new text is parsed and validated first; a
 * broken file keeps the running version and logs exactly what is wrong (file, line, column). Every version
 * that runs is stored with its text in policy_versions.
 */
export class PolicyReloader {
  readonly #o: PolicyReloaderOptions;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #onHup = () => void this.reload('SIGHUP');

  constructor(options: PolicyReloaderOptions) {
    this.#o = options;
  }

  get file(): string {
    return this.#o.file ?? STARTER_POLICY_PATH;
  }

  async start(): Promise<void> {
    await this.#record(this.#o.holder.policy);
    process.on('SIGHUP', this.#onHup);
    if (this.#o.file === undefined) return;
    const name = basename(this.#o.file);
    // Watching the directory survives editors that save by writing a new file and renaming it over the old.
    this.#watcher = watch(dirname(this.#o.file), (_event, changed) => {
      if (changed !== null && changed !== name) return;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.reload('file change'), this.#o.debounceMs ?? 100);
    });
    this.#watcher.on('error', (err) =>
      this.#o.log.error({ err, file: this.file }, 'policy file watch failed'),
    );
  }

  /** Reads, validates and swaps in the policy file. Reloads run one at a time. */
  reload(reason = 'request'): Promise<ReloadResult> {
    const next = this.#chain.then(() => this.#reload(reason));
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #reload(reason: string): Promise<ReloadResult> {
    const { holder, log } = this.#o;
    const running = holder.policy;
    let policy: Policy;
    try {
      let text: string;
      try {
        text = readFileSync(this.file, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new PolicyError(
          this.file,
          1,
          1,
          `cannot read the policy file (${code})`,
          'a readable YAML file',
        );
      }
      policy = parsePolicy(text, this.file);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      log.error(
        {
          reason,
          file: err.file,
          line: err.line,
          column: err.column,
          problem: err.what,
          expected: err.expected,
          keeping: running.version,
        },
        `policy not reloaded: ${err.message}; still running ${running.version}`,
      );
      return { ok: false, error: err.message, keeping: running.version };
    }
    if (policy.version === running.version) return { ok: true, changed: false, version: policy.version };
    await this.#record(policy);
    holder.setPolicy(policy);
    log.info(
      { reason, file: this.file, from: running.version, policy_version: policy.version },
      'policy reloaded',
    );
    return { ok: true, changed: true, version: policy.version };
  }

  async #record(policy: Policy): Promise<void> {
    await this.#o.store.policyVersions.record(policy, (this.#o.now?.() ?? new Date()).toISOString());
  }

  async close(): Promise<void> {
    process.off('SIGHUP', this.#onHup);
    if (this.#timer) clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
    await this.#chain;
  }
}
