// Cross-instance signals over LISTEN/NOTIFY: actions made dispatchable, credentials revoked.
import pg from 'pg';
import { ACTIONS_READY_CHANNEL, CREDENTIALS_CHANNEL, type StoreSignals } from '../store.ts';

/**
 * One dedicated connection that LISTENs for actions made dispatchable on any instance. It connects on the first
 * subscriber and reconnects after a drop; while it is down, the dispatcher's polling still finds the work.
 */
export class PostgresSignals implements StoreSignals {
  readonly #config: pg.ClientConfig;
  readonly #onError: (err: Error) => void;
  readonly #callbacks = new Set<(id: string) => void>();
  readonly #credentialCallbacks = new Set<() => void>();
  #client: pg.Client | null = null;
  #connecting: Promise<void> | null = null;
  #retry: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(config: pg.ClientConfig, onError: (err: Error) => void) {
    this.#config = config;
    this.#onError = onError;
  }

  onActionsReady(cb: (id: string) => void): () => void {
    this.#callbacks.add(cb);
    void this.listening();
    return () => {
      this.#callbacks.delete(cb);
    };
  }

  onCredentialsChanged(cb: () => void): () => void {
    this.#credentialCallbacks.add(cb);
    void this.listening();
    return () => {
      this.#credentialCallbacks.delete(cb);
    };
  }

  get live(): boolean {
    return this.#client !== null;
  }

  /** Resolves once LISTEN is in place (or the attempt failed; polling covers that). */
  listening(): Promise<void> {
    if (this.#closed || this.#client) return Promise.resolve();
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config);
    client.on('notification', (n) => {
      if (n.channel === CREDENTIALS_CHANNEL) this.#credentialsChanged();
      if (n.channel !== ACTIONS_READY_CHANNEL || !n.payload) return;
      for (const cb of this.#callbacks) cb(n.payload);
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('LISTEN connection ended')));
    try {
      await client.connect();
      await client.query(`listen ${ACTIONS_READY_CHANNEL}`);
      await client.query(`listen ${CREDENTIALS_CHANNEL}`);
      if (this.#closed) {
        await client.end();
        return;
      }
      this.#client = client;
      // A revocation sent while nobody listened was lost: caches start over.
      this.#credentialsChanged();
    } catch (err) {
      this.#lost(client, err as Error);
    }
  }

  #lost(client: pg.Client, err: Error): void {
    if (this.#client === client) this.#client = null;
    client.removeAllListeners('end');
    client.end().catch(() => {});
    if (this.#closed) return;
    this.#onError(err);
    if (!this.#retry && this.#callbacks.size + this.#credentialCallbacks.size > 0) {
      this.#retry = setTimeout(() => {
        this.#retry = null;
        void this.listening();
      }, 1_000);
      this.#retry.unref();
    }
  }

  #credentialsChanged(): void {
    for (const cb of this.#credentialCallbacks) cb();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    await this.#connecting;
    const client = this.#client;
    this.#client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
    }
  }
}
