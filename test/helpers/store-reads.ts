// Whole-table reads the tests assert on, through the store's repositories (nothing outside src/store/ writes SQL).
import { ledgerEvents } from '../../src/engine/ledger.ts';
import type { ActionRow, LedgerRow, Store } from '../../src/store/store.ts';

/** Every ledger event committed so far, sealed first (PostgreSQL), oldest first; narrowed by `keep` when given. */
export async function ledger(
  store: Store,
  keep: (e: LedgerRow) => boolean = () => true,
): Promise<LedgerRow[]> {
  await store.ledger.sealPending();
  const events: LedgerRow[] = [];
  for await (const e of ledgerEvents(store)) if (keep(e)) events.push(e);
  return events;
}

/** Every action, oldest first (by created_at, then id); narrowed by `keep` when given. */
export async function actions(
  store: Store,
  keep: (a: ActionRow) => boolean = () => true,
): Promise<ActionRow[]> {
  const rows: ActionRow[] = [];
  for (let after: string | undefined; ; ) {
    const page = await store.actions.list({ limit: 500, startingAfter: after });
    rows.push(...page.rows);
    if (!page.hasMore) break;
    after = page.rows[page.rows.length - 1]!.id;
  }
  return rows.reverse().filter(keep);
}
