import type { Connection } from './connection.ts';

// Slack users linked to reviewers (migration 0016_slack_interactive).

export interface SlackReviewer {
  id: string;
  email: string;
  groups: string[];
}

export class SlackRepository {
  constructor(readonly c: Connection) {}

  /** Links a Slack user to a reviewer; linking the user again moves the link. */
  async link(row: { slack_user_id: string; reviewer_id: string; linked_by: string; linked_at: string }) {
    await this.c.db
      .insertInto('slack_users')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('slack_user_id')
          .doUpdateSet({ reviewer_id: row.reviewer_id, linked_by: row.linked_by, linked_at: row.linked_at }),
      )
      .execute();
  }

  async unlink(slackUserId: string): Promise<boolean> {
    const res = await this.c.db
      .deleteFrom('slack_users')
      .where('slack_user_id', '=', slackUserId)
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /** Where one of a hold's messages (the first, a reminder, an escalation) was posted; each is kept (0017). */
  async saveMessage(row: {
    action_id: string;
    channel: string;
    ts: string;
    created_at: string;
  }): Promise<void> {
    await this.c.db
      .insertInto('slack_messages')
      .values(row)
      .onConflict((oc) => oc.columns(['action_id', 'channel', 'ts']).doNothing())
      .execute();
  }

  async messagesFor(actionId: string): Promise<{ channel: string; ts: string }[]> {
    return this.c.db
      .selectFrom('slack_messages')
      .select(['channel', 'ts'])
      .where('action_id', '=', actionId)
      .execute();
  }

  /** The reviewer a Slack user is linked to. */
  async reviewerFor(slackUserId: string): Promise<SlackReviewer | undefined> {
    const row = await this.c.db
      .selectFrom('slack_users')
      .innerJoin('reviewers', 'reviewers.id', 'slack_users.reviewer_id')
      .select(['reviewers.id as id', 'reviewers.email as email', 'reviewers.groups as groups'])
      .where('slack_users.slack_user_id', '=', slackUserId)
      .executeTakeFirst();
    return row && { id: row.id, email: row.email, groups: JSON.parse(row.groups) as string[] };
  }
}
