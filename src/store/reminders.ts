import type { Connection } from './connection.ts';

// A hold's reminder and escalation (migration 0017_reminders). Each is due once per hold: the sweep that sets
// `fired_at` (a guarded update, in the transaction that records and queues it) is the only one that sends it, on
// every instance, across restarts.

export type ReminderKind = 'remind' | 'escalate';

export interface ReminderRow {
  action_id: string;
  kind: ReminderKind;
  due_at: string;
  fired_at: string | null;
  created_at: string;
}

export class RemindersRepository {
  constructor(readonly c: Connection) {}

  /** Replaces what an action had scheduled with `due` (a new hold starts its reminders afresh). */
  async schedule(
    actionId: string,
    due: { kind: ReminderKind; at: string }[],
    createdAt: string,
  ): Promise<void> {
    await this.c.db.deleteFrom('reminders').where('action_id', '=', actionId).execute();
    if (due.length === 0) return;
    await this.c.db
      .insertInto('reminders')
      .values(
        due.map((d) => ({
          action_id: actionId,
          kind: d.kind,
          due_at: d.at,
          fired_at: null,
          created_at: createdAt,
        })),
      )
      .execute();
  }

  /** Not yet fired and due at `now`, soonest first. */
  async due(now: string, limit: number): Promise<{ action_id: string; kind: ReminderKind }[]> {
    const rows = await this.c.db
      .selectFrom('reminders')
      .select(['action_id', 'kind', 'due_at'])
      .where('fired_at', 'is', null)
      .where('due_at', '<=', now)
      .orderBy('due_at')
      .orderBy('action_id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ action_id: r.action_id, kind: r.kind as ReminderKind }));
  }

  /** Marks it fired unless someone else did: true for the one caller that may send it. */
  async claim(actionId: string, kind: ReminderKind, now: string): Promise<boolean> {
    const res = await this.c.db
      .updateTable('reminders')
      .set({ fired_at: now })
      .where('action_id', '=', actionId)
      .where('kind', '=', kind)
      .where('fired_at', 'is', null)
      .where('due_at', '<=', now)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Forgets one that can no longer fire (its hold ended); a fired one stays as the record. */
  async drop(actionId: string, kind: ReminderKind): Promise<void> {
    await this.c.db
      .deleteFrom('reminders')
      .where('action_id', '=', actionId)
      .where('kind', '=', kind)
      .where('fired_at', 'is', null)
      .execute();
  }

  async forAction(actionId: string): Promise<ReminderRow[]> {
    const rows = await this.c.db
      .selectFrom('reminders')
      .selectAll()
      .where('action_id', '=', actionId)
      .orderBy('due_at')
      .execute();
    return rows as ReminderRow[];
  }
}
