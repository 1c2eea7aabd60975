import { AirlockError } from '../errors.ts';
import type { Store } from '../store/store.ts';

/** Slack user ids look like U0123ABCD (or W… on Enterprise Grid). */
const SLACK_USER = /^[UW][A-Z0-9]{2,30}$/;

/** Links a Slack user to the reviewer with this email, so their button presses count as that reviewer's votes. */
export async function linkSlackUser(
  store: Store,
  email: string,
  slackUserId: string,
  by: 'cli' | 'email',
  at = new Date(),
): Promise<{ reviewer_id: string; email: string; slack_user_id: string }> {
  if (!SLACK_USER.test(slackUserId)) {
    throw new AirlockError('parameter_invalid', `"${slackUserId}" is not a Slack user id such as U0123ABCD`, {
      param: 'slack_user',
    });
  }
  const reviewer = await store.credentials.reviewerForLogin(email.trim());
  if (!reviewer) {
    throw new AirlockError('resource_missing', `No reviewer with the email ${email}`, { param: 'email' });
  }
  await store.slack.link({
    slack_user_id: slackUserId,
    reviewer_id: reviewer.id,
    linked_by: by,
    linked_at: at.toISOString(),
  });
  return { reviewer_id: reviewer.id, email: reviewer.email, slack_user_id: slackUserId };
}
