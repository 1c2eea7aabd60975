import type { Selectable } from 'kysely';
import type { Connection } from './connection.ts';
import type { FreezesTable } from './schema.ts';

export type FreezeRow = Selectable<FreezesTable>;

/** The kill switch's rows (migration 0007_freeze): one per frozen agent id, or '*' for every agent. */
export class FreezesRepository {
  constructor(readonly c: Connection) {}

  async list(): Promise<FreezeRow[]> {
    return this.c.db.selectFrom('freezes').selectAll().orderBy('created_at').execute();
  }

  /** Freezes a scope; freezing it again replaces the reason and the time. */
  async set(row: FreezeRow): Promise<void> {
    await this.c.db
      .insertInto('freezes')
      .values(row)
      .onConflict((oc) => oc.column('scope').doUpdateSet({ reason: row.reason, created_at: row.created_at }))
      .execute();
  }

  /** Lifts a freeze; false when the scope was not frozen. */
  async clear(scope: string): Promise<boolean> {
    const res = await this.c.db.deleteFrom('freezes').where('scope', '=', scope).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }
}
