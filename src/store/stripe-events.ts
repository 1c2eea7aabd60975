import type { Selectable } from 'kysely';
import type { Connection } from './connection.ts';
import type { StripeAlertRow } from './outbox.ts';
import type { StripeEventsTable } from './schema.ts';
import { currentMemory } from './velocity-memory.ts';

// Stripe Events received and the alerts about outside ones (migration 0018_stripe_events).

export type StripeEventRow = Selectable<StripeEventsTable>;

/** The settings key under which `airlock stripe backfill` keeps where it got to. */
const BACKFILL_CURSOR = 'stripe_backfill_cursor';

export class StripeEventsRepository {
  constructor(readonly c: Connection) {}

  /** Stores an event unless one with its id is stored already; true when this call stored it. */
  async insert(row: StripeEventRow): Promise<boolean> {
    const res = await this.c.db
      .insertInto('stripe_events')
      .values(row)
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    const stored = Number(res.numInsertedOrUpdatedRows ?? 0) === 1;
    if (stored) this.c.velocity?.eventStored(row, this.c.journal ?? null);
    return stored;
  }

  /**
   * Accepts a further delivery of a stored event only if it was signed after every delivery accepted before: true
   * when it was, false for a replay. Conditional, so two copies of one delivery cannot both pass.
   */
  async acceptRedelivery(id: string, signedAt: number): Promise<boolean> {
    const res = await this.c.db
      .updateTable('stripe_events')
      .set({ signed_at: signedAt })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('signed_at', 'is', null), eb('signed_at', '<', signedAt)]))
      .executeTakeFirst();
    return Number(res.numUpdatedRows ?? 0) === 1;
  }

  async get(id: string): Promise<StripeEventRow | undefined> {
    return this.c.db.selectFrom('stripe_events').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async count(): Promise<number> {
    const row = await this.c.db
      .selectFrom('stripe_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Outside events (automation and outside), newest first, `before` an event id for the next page. */
  async listOutside(
    limit: number,
    before: { created: number; id: string } | null = null,
  ): Promise<StripeEventRow[]> {
    let q = this.c.db
      .selectFrom('stripe_events')
      .selectAll()
      .where('origin', 'in', ['automation', 'outside']);
    if (before)
      q = q.where((eb) =>
        eb.or([
          eb('created', '<', before.created),
          eb.and([eb('created', '=', before.created), eb('id', '<', before.id)]),
        ]),
      );
    return q.orderBy('created', 'desc').orderBy('id', 'desc').limit(limit).execute();
  }

  /** Whether Stripe reported a dispute opened on this charge (charge.dispute.created). */
  async disputed(chargeId: string): Promise<boolean> {
    const memory = await currentMemory(this.c);
    if (memory) return memory.disputed.has(chargeId);
    const row = await this.c.db
      .selectFrom('stripe_events')
      .select('id')
      .where('charge', '=', chargeId)
      .where('type', '=', 'charge.dispute.created')
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Queues alerts; one already queued for the same event, channel and recipient is left as it is. */
  async insertAlerts(rows: StripeAlertRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.c.db
      .insertInto('stripe_alerts')
      .values(rows)
      .onConflict((oc) => oc.columns(['event_id', 'channel', 'recipient']).doNothing())
      .execute();
  }

  async setAlertPayload(id: string, payload: string): Promise<void> {
    await this.c.db.updateTable('stripe_alerts').set({ payload }).where('id', '=', id).execute();
  }

  async alertsFor(eventId: string): Promise<StripeAlertRow[]> {
    return this.c.db
      .selectFrom('stripe_alerts')
      .selectAll()
      .where('event_id', '=', eventId)
      .orderBy('channel')
      .orderBy('recipient')
      .execute();
  }

  /** Where the backfill got to: the id of the last event it stored, oldest-first order. */
  async backfillCursor(): Promise<string | null> {
    const row = await this.c.db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', BACKFILL_CURSOR)
      .executeTakeFirst();
    return row?.value ?? null;
  }

  async setBackfillCursor(value: string): Promise<void> {
    await this.c.db
      .insertInto('settings')
      .values({ key: BACKFILL_CURSOR, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }
}
