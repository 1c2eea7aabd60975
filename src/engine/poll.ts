/**
 * Runs `tick` every `ms` after the previous run finished, so a slow sweep never overlaps the next one.
 * The fallback behind event-driven work (dispatch, callbacks): it catches what no event announced.
 */
export class Poller {
  #timer: NodeJS.Timeout | null = null;
  #running = false;

  constructor(
    readonly ms: number,
    readonly tick: () => Promise<void>,
  ) {}

  start(): void {
    this.#running = true;
    const loop = () => {
      if (!this.#running) return;
      this.#timer = setTimeout(async () => {
        await this.tick();
        loop();
      }, this.ms);
    };
    loop();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
