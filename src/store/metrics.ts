import { sql } from 'kysely';
import type { Connection } from './connection.ts';
import type { Status } from './status.ts';

/** What the Prometheus gauges read from the store at scrape time. */
export class MetricsReads {
  constructor(readonly c: Connection) {}

  /** How many actions are in each of `statuses` now; a status with none is left out. */
  async countByStatus(statuses: readonly Status[]): Promise<{ status: Status; n: number }[]> {
    const rows = await this.c.db
      .selectFrom('actions')
      .select(['status', sql<number>`count(*)`.as('n')])
      .where('status', 'in', [...statuses])
      .groupBy('status')
      .execute();
    // PostgreSQL returns count(*) as a bigint string.
    return rows.map((r) => ({ status: r.status, n: Number(r.n) }));
  }

  /** Money in actions awaiting approval, in the currency's minor unit, by currency. */
  async heldAmounts(): Promise<{ currency: string; total: number }[]> {
    const rows = await this.c.db
      .selectFrom('actions')
      .select(['currency', sql<number>`sum(amount)`.as('total')])
      .where('status', '=', 'awaiting_approval')
      .where('currency', 'is not', null)
      .where('amount', 'is not', null)
      .groupBy('currency')
      .execute();
    return rows.flatMap((r) => (r.currency ? [{ currency: r.currency, total: Number(r.total) }] : []));
  }
}
