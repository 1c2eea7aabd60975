// Slack users linked to reviewers and where holds' messages were posted (migration 0016_slack_interactive), over
// SQLite and PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { linkSlackUser } from '../../src/auth/slack-users.ts';
import { DIALECTS, openTestStore, type TestStore, unavailable } from './databases.ts';

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`slack users on ${dialect}`, () => {
    let t: TestStore;
    beforeAll(async () => {
      t = await openTestStore(dialect);
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    it('links a Slack user to a reviewer, moves the link when linked again, and unlinks', async () => {
      const a = await createReviewer(t.store, 'a@example.com', { groups: ['finance'] });
      const b = await createReviewer(t.store, 'b@example.com');
      expect(await t.store.slack.reviewerFor('U0LINK')).toBeUndefined();
      await linkSlackUser(t.store, 'a@example.com', 'U0LINK', 'cli');
      expect(await t.store.slack.reviewerFor('U0LINK')).toEqual({
        id: a.id,
        email: a.email,
        groups: ['finance'],
      });
      await linkSlackUser(t.store, 'b@example.com', 'U0LINK', 'email');
      expect((await t.store.slack.reviewerFor('U0LINK'))?.id).toBe(b.id);
      expect(await t.store.slack.unlink('U0LINK')).toBe(true);
      expect(await t.store.slack.unlink('U0LINK')).toBe(false);
      expect(await t.store.slack.reviewerFor('U0LINK')).toBeUndefined();
    });

    it("keeps where each of a hold's messages was posted (first, reminder, escalation); the same post once", async () => {
      const at = new Date().toISOString();
      await t.store.slack.saveMessage({
        action_id: 'act_slackmsg',
        channel: 'C1',
        ts: '1.000001',
        created_at: at,
      });
      await t.store.slack.saveMessage({
        action_id: 'act_slackmsg',
        channel: 'C2',
        ts: '1.000002',
        created_at: at,
      });
      await t.store.slack.saveMessage({
        action_id: 'act_slackmsg',
        channel: 'C1',
        ts: '1.000003',
        created_at: at,
      });
      // Saving the same post again (a retried send's bookkeeping) adds nothing.
      await t.store.slack.saveMessage({
        action_id: 'act_slackmsg',
        channel: 'C1',
        ts: '1.000003',
        created_at: at,
      });
      const rows = await t.store.slack.messagesFor('act_slackmsg');
      expect(rows.sort((a, b) => a.channel.localeCompare(b.channel) || a.ts.localeCompare(b.ts))).toEqual([
        { channel: 'C1', ts: '1.000001' },
        { channel: 'C1', ts: '1.000003' },
        { channel: 'C2', ts: '1.000002' },
      ]);
      expect(await t.store.slack.messagesFor('act_none')).toEqual([]);
    });

    it('refuses an unknown reviewer and a malformed Slack user id', async () => {
      await expect(linkSlackUser(t.store, 'nobody@example.com', 'U0NOBODY', 'cli')).rejects.toMatchObject({
        code: 'resource_missing',
      });
      await createReviewer(t.store, 'c@example.com');
      for (const bad of ['', 'alice', 'C0CHANNEL', 'U0; drop table']) {
        await expect(linkSlackUser(t.store, 'c@example.com', bad, 'cli')).rejects.toMatchObject({
          code: 'parameter_invalid',
        });
      }
    });
  });
}
