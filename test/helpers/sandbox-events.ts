// The built-in sandbox's own signed events, as Airlock received them: no event here is made by a test.
import type { StripeEventRow } from '../../src/store/store.ts';
import { eventually, type Stack } from './stack.ts';

export interface SandboxEvent {
  id: string;
  type: string;
  data: { object: Record<string, unknown> };
  request: { id: string | null; idempotency_key: string | null };
}

/** The sandbox's events, oldest first, that are of `type` and whose object passes `match`. */
export function sandboxEvents(
  stack: Stack,
  type: string,
  match: (o: Record<string, unknown>) => boolean,
): SandboxEvent[] {
  return (stack.sandbox.events() as unknown as SandboxEvent[]).filter(
    (e) => e.type === type && match(e.data.object),
  );
}

/**
 * The sandbox's event of `type` about the object `match` picks, once the sandbox has made it and Airlock has stored
 * it from the sandbox's signed delivery (the webhook route answers 2xx only after storing).
 */
export async function receivedFromSandbox(
  stack: Stack,
  type: string,
  match: (o: Record<string, unknown>) => boolean,
): Promise<{ event: SandboxEvent; row: StripeEventRow }> {
  const event = await eventually(async () => sandboxEvents(stack, type, match)[0]);
  const row = await eventually(() => stack.airlock.store.stripeEvents.get(event.id));
  return { event, row };
}

/** Matches an event's object by its id. */
export const about =
  (id: string) =>
  (o: Record<string, unknown>): boolean =>
    o['id'] === id;
