import type { Selectable } from 'kysely';
import { type Connection, shaped } from './connection.ts';
import type { ApprovalsTable } from './schema.ts';
import { currentMemory } from './velocity-memory.ts';

export type ApprovalRow = Selectable<ApprovalsTable>;

/** Reviewers' votes: one per reviewer and action, counted for the version (bound_hash) it was given to. */
export class ApprovalsRepository {
  constructor(readonly c: Connection) {}

  async insert(row: ApprovalRow): Promise<void> {
    await this.c.db.insertInto('approvals').values(row).execute();
    this.c.velocity?.voted(row, this.c.journal ?? null);
  }

  /** Removes a vote given to an earlier version; the ledger keeps its record. */
  async delete(id: string): Promise<void> {
    await this.c.db.deleteFrom('approvals').where('id', '=', id).execute();
    this.c.velocity?.unvoted(id, this.c.journal ?? null);
  }

  async listForAction(actionId: string): Promise<ApprovalRow[]> {
    return this.c.db
      .selectFrom('approvals')
      .selectAll()
      .where('action_id', '=', actionId)
      .orderBy('at')
      .execute();
  }

  /** The votes on a page of actions in one query, oldest first. */
  async listForActions(actionIds: readonly string[]): Promise<ApprovalRow[]> {
    if (actionIds.length === 0) return [];
    return this.c.db
      .selectFrom('approvals')
      .selectAll()
      .where('action_id', 'in', [...actionIds])
      .orderBy('at')
      .execute();
  }

  /** Reviewer votes on one agent's actions cast since `since`: a range of one index, the agent's votes only. */
  async votesOnAgent(agentId: string, since: string): Promise<{ rejected: number; decided: number }> {
    const memory = await currentMemory(this.c);
    if (memory && Date.parse(since) >= memory.votesFrom)
      return memory.votes.total(agentId, Date.parse(since));
    const [row] = await shaped<{ rejected: unknown; decided: unknown }>(
      this.c,
      'review votes',
      () =>
        this.c.db
          .selectFrom('approvals')
          .select((eb) => [
            eb.fn.countAll().as('decided'),
            eb.fn.sum(eb.case().when('decision', '=', 'reject').then(1).else(0).end()).as('rejected'),
          ])
          .where('agent_id', '=', agentId)
          .where('at', '>=', since),
      ['reject', agentId, since],
    );
    // PostgreSQL returns count(*) and sum() as bigint strings.
    return { rejected: Number(row?.rejected ?? 0), decided: Number(row?.decided ?? 0) };
  }
}
