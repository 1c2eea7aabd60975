import { expect } from 'vitest';
import type { Stack } from './stack.ts';

/**
 * Asserts that every write the sandbox received belongs to an action the store holds, sent under that action's
 * key; seeding writes (keys starting `seed-`) are the test's own. Returns how many writes it checked.
 */
export async function everyUpstreamWriteIsLedgered(stack: Stack): Promise<number> {
  let writes = 0;
  for (const r of stack.sandbox.requests()) {
    if (r.method === 'GET' || r.idempotencyKey?.startsWith('seed-')) continue;
    writes++;
    const id = r.idempotencyKey?.replace(/^airlock-/, '') ?? '';
    const action = await stack.airlock.store.getAction(id);
    expect(action, `${r.method} ${r.path} reached Stripe with key ${r.idempotencyKey}`).toBeDefined();
    expect(['pending', 'completed', 'failed']).toContain(action!.status);
  }
  return writes;
}
