import type { ActionRow } from './actions.ts';
import type { Connection } from './connection.ts';
import type { Status } from './status.ts';

// What the review dashboard reads beyond single actions: the queue, the search page and the overview's counts.

export interface ActionSearch {
  status?: Status | undefined;
  kind?: string | undefined;
  /** An agent's name. */
  agent?: string | undefined;
  minUsd?: number | undefined;
  maxUsd?: number | undefined;
  /** created_at at or after. */
  from?: string | undefined;
  /** created_at before. */
  to?: string | undefined;
  /** An action id or customer id, or text in the parameters. */
  q?: string | undefined;
  startingAfter?: string | undefined;
  limit: number;
}

/** A ledger event of the kinds the overview counts, with the held amount of its action. */
export interface OverviewEvent {
  type: string;
  to: string | null;
  at: string;
  usd: number | null;
}

export class DashboardReads {
  constructor(readonly c: Connection) {}

  /** Held actions, the most urgent (soonest to expire) first. */
  async queue(limit: number): Promise<ActionRow[]> {
    return this.c.db
      .selectFrom('actions')
      .selectAll()
      .where('status', '=', 'awaiting_approval')
      .orderBy('expires_at', 'asc')
      .orderBy('created_at', 'asc')
      .limit(limit)
      .execute();
  }

  /** All actions, newest first, filtered, with keyset pagination on (created_at, id). */
  async search(f: ActionSearch): Promise<{ rows: ActionRow[]; hasMore: boolean }> {
    let query = this.c.db
      .selectFrom('actions')
      .leftJoin('agents', 'agents.id', 'actions.agent_id')
      .selectAll('actions');
    if (f.status) query = query.where('actions.status', '=', f.status);
    if (f.kind) query = query.where('actions.kind', '=', f.kind);
    if (f.agent) query = query.where('agents.name', '=', f.agent);
    if (f.minUsd !== undefined) query = query.where('actions.amount_usd', '>=', f.minUsd);
    if (f.maxUsd !== undefined) query = query.where('actions.amount_usd', '<=', f.maxUsd);
    if (f.from) query = query.where('actions.created_at', '>=', f.from);
    if (f.to) query = query.where('actions.created_at', '<', f.to);
    if (f.q) {
      const q = f.q.trim();
      query = query.where((eb) =>
        eb.or([
          eb('actions.id', '=', q),
          eb('actions.customer', '=', q),
          eb('actions.params', 'like', `%${q}%`),
        ]),
      );
    }
    if (f.startingAfter) {
      const cursor = await this.c.db
        .selectFrom('actions')
        .select(['created_at', 'id'])
        .where('id', '=', f.startingAfter)
        .executeTakeFirst();
      if (cursor) {
        const { created_at: c, id } = cursor;
        query = query.where((eb) =>
          eb.or([
            eb('actions.created_at', '<', c),
            eb.and([eb('actions.created_at', '=', c), eb('actions.id', '<', id)]),
          ]),
        );
      }
    }
    const rows = await query
      .orderBy('actions.created_at', 'desc')
      .orderBy('actions.id', 'desc')
      .limit(f.limit + 1)
      .execute();
    return { rows: rows.slice(0, f.limit), hasMore: rows.length > f.limit };
  }

  /** The decisions, approvals, rejections and expiries recorded at or after `since`, with their amounts. */
  async overviewEvents(since: string): Promise<OverviewEvent[]> {
    return this.c.db
      .selectFrom('ledger')
      .leftJoin('actions', 'actions.id', 'ledger.action_id')
      .select([
        'ledger.type as type',
        'ledger.to_status as to',
        'ledger.at as at',
        'actions.amount_usd as usd',
      ])
      .where('ledger.at', '>=', since)
      .where('ledger.type', 'in', ['action.decided', 'action.approved', 'action.rejected', 'action.expired'])
      .execute();
  }
}
