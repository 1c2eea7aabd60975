// Waiting for an action to reach a status: woken by this process's signals, polling for the others'.
import type { ActionRow } from '../../store/store.ts';
import { type EngineResources, readAction } from '../resources.ts';
import type { Status } from '../status.ts';
import type { ActionChange } from '../types.ts';

export class WaitSystem {
  constructor(private readonly r: EngineResources) {}

  /** Resolves when the action reaches a status that satisfies `until`, or after timeoutMs with its latest row. */
  async waitFor(
    id: string,
    until: (s: Status) => boolean,
    timeoutMs: number,
    pollMs: number,
  ): Promise<ActionRow> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await readAction(this.r, id);
      if (until(row.status) || Date.now() >= deadline) return row;
      // Wake on an in-process change, or poll: another process (the CLI, another instance) may decide it.
      await this.#nextChange(id, Math.min(pollMs, Math.max(0, deadline - Date.now())));
    }
  }

  /** Resolves on the next in-process change of this action, or after ms. */
  #nextChange(id: string, ms: number): Promise<void> {
    const signals = this.r.signals;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function listener(c: ActionChange) {
        if (c.id === id) done();
      }
      function done() {
        clearTimeout(timer);
        signals.off('change', listener);
        resolve();
      }
      signals.on('change', listener);
    });
  }
}
