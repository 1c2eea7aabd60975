// Slack interactive approvals end to end: a real Airlock (SQLite, Stripe sandbox) posts each hold through
// @slack/web-api to a local Slack stand-in over HTTP, and Slack's signed button presses come back over HTTP.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkSlackUser } from '../../src/auth/slack-users.ts';
import { clearFreeze, setFreeze } from '../../src/engine/freeze.ts';
import { cli } from '../helpers/process.ts';
import { type SlackCall, type SlackStandIn, slackInteraction, startSlackStandIn } from '../helpers/slack.ts';
import { until } from '../helpers/stack.ts';
import { FormClient, type ReviewStack, startReviewStack } from '../review/helpers.ts';

const SECRET = 'slack-signing-secret-for-tests';
const CHANNEL = 'C0REVIEWS';
let slack: SlackStandIn;
let stack: ReviewStack;

beforeAll(async () => {
  slack = await startSlackStandIn();
  stack = await startReviewStack({
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_SIGNING_SECRET: SECRET,
    AIRLOCK_SLACK_CHANNEL: CHANNEL,
    AIRLOCK_SLACK_API_URL: slack.apiUrl,
    AIRLOCK_SLACK_LINK_BY_EMAIL: 'true',
  });
  // alice through the CLI, as an operator would; bob and carol directly.
  const linked = await cli(
    ['reviewers', 'link-slack', '--email', 'alice@example.com', '--slack-user', 'U0ALICE', '--json'],
    { AIRLOCK_DATA: join(stack.dir, 'airlock.db') },
  );
  expect(linked.code, linked.stderr).toBe(0);
  expect(JSON.parse(linked.stdout)).toMatchObject({ email: 'alice@example.com', slack_user_id: 'U0ALICE' });
  await linkSlackUser(stack.airlock.store, 'bob@example.com', 'U0BOB', 'cli');
  await linkSlackUser(stack.airlock.store, 'carol@example.com', 'U0CAROL', 'cli');
}, 120_000);
afterAll(async () => {
  await stack?.close();
  await slack?.close();
});

const mentions = (c: SlackCall, id: string) => JSON.stringify(c.args['blocks'] ?? '').includes(id);

/** The hold's Slack message, once the notifier has posted it. */
async function posted(actionId: string): Promise<{ post: SlackCall; ts: string }> {
  const post = await until(
    () => slack.callsTo('chat.postMessage').find((c) => mentions(c, actionId)),
    10_000,
  );
  return { post, ts: String(post.answer['ts']) };
}

async function held(amount: number) {
  const hold = await stack.holdRefund(amount);
  return { ...hold, ...(await posted(hold.actionId)) };
}

type Button = 'airlock_approve' | 'airlock_reject' | 'airlock_open';

async function press(
  user: string,
  button: Button,
  actionId: string,
  ts: string,
  opts: { at?: Date; secret?: string; body?: (b: string) => string } = {},
): Promise<{ status: number; replay: () => Promise<number> }> {
  const signed = slackInteraction(
    opts.secret ?? SECRET,
    { user, button, actionId, channel: CHANNEL, ts },
    opts.at,
  );
  const send = async () =>
    (
      await fetch(`${stack.airlock.url}/slack/interactions`, {
        method: 'POST',
        headers: signed.headers,
        body: opts.body ? opts.body(signed.body) : signed.body,
      })
    ).status;
  return { status: await send(), replay: send };
}

const statusOf = async (id: string) => (await stack.airlock.engine.get(id)).status;
const votesOn = (id: string) => stack.airlock.store.approvals.listForAction(id);
const ephemeralsTo = (user: string) =>
  slack.callsTo('chat.postEphemeral').filter((c) => c.args['user'] === user);
const updatesOf = (ts: string) => slack.callsTo('chat.update').filter((c) => c.args['ts'] === ts);

describe('the hold message', () => {
  it('is posted by the bot with the summary and Approve, Reject and Open receipt buttons', async () => {
    const { actionId, post } = await held(60_000);
    expect(post.token).toBe('xoxb-test-token');
    expect(post.args['channel']).toBe(CHANNEL);
    const blocks = post.args['blocks'] as any[];
    expect(blocks[0].text.text).toContain('$600.00');
    const buttons = blocks.find((b) => b.type === 'actions').elements;
    expect(buttons.map((b: any) => [b.action_id, b.text.text])).toEqual([
      ['airlock_approve', 'Approve'],
      ['airlock_reject', 'Reject'],
      ['airlock_open', 'Open receipt'],
    ]);
    expect(buttons[0].value).toBe(actionId);
    expect(buttons[1].value).toBe(actionId);
    expect(buttons[2].url).toBe(`${stack.airlock.url}/review/actions/${actionId}`);
  });
});

describe('a press from a linked reviewer', () => {
  it('approves, the refund executes once, the message says so, and a replay of the same request is refused', async () => {
    const { actionId, chargeId, ts } = await held(60_500);
    const approve = await press('U0ALICE', 'airlock_approve', actionId, ts);
    expect(approve.status).toBe(200);
    const row = await stack.airlock.engine.waitFor(
      actionId,
      (s) => s === 'completed' || s === 'failed',
      5000,
      20,
    );
    expect(row.status).toBe('completed');
    expect(stack.refundsFor(chargeId)).toHaveLength(1);
    expect((await votesOn(actionId)).map((a) => [a.reviewer_email, a.decision])).toEqual([
      ['alice@example.com', 'approve'],
    ]);
    const update = await until(() => updatesOf(ts)[0]);
    expect(update.args['channel']).toBe(CHANNEL);
    const text = JSON.stringify(update.args['blocks']);
    expect(text).toContain('Approved by alice@example.com (1 of 1)');
    expect(text).not.toContain('airlock_approve'); // decided: no more buttons

    expect(await approve.replay()).toBe(401);
    await new Promise((r) => setTimeout(r, 200));
    expect(stack.refundsFor(chargeId)).toHaveLength(1);
    expect(await votesOn(actionId)).toHaveLength(1);
  });

  it('counts towards a quorum of two and updates the message to "1 of 2"; a second reviewer clears it', async () => {
    const { actionId, chargeId, ts } = await held(640_000); // over $5,000: two finance reviewers
    expect((await press('U0BOB', 'airlock_approve', actionId, ts)).status).toBe(200);
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    const first = await until(() => updatesOf(ts)[0]);
    expect(JSON.stringify(first.args['blocks'])).toContain('Approved by bob@example.com: 1 of 2');
    expect(JSON.stringify(first.args['blocks'])).toContain('airlock_approve'); // still open for a second vote
    // The same reviewer again is not a second approval.
    expect((await press('U0BOB', 'airlock_approve', actionId, ts)).status).toBe(200);
    expect(await votesOn(actionId)).toHaveLength(1);
    expect(stack.refundsFor(chargeId)).toHaveLength(0);

    expect((await press('U0ALICE', 'airlock_approve', actionId, ts)).status).toBe(200);
    const row = await stack.airlock.engine.waitFor(
      actionId,
      (s) => s === 'completed' || s === 'failed',
      5000,
      20,
    );
    expect(row.status).toBe('completed');
    expect(stack.refundsFor(chargeId)).toHaveLength(1);
  });

  it('rejects, nothing reaches Stripe, and the message says who rejected it', async () => {
    const { actionId, chargeId, ts } = await held(61_000);
    expect((await press('U0BOB', 'airlock_reject', actionId, ts)).status).toBe(200);
    expect(await statusOf(actionId)).toBe('rejected');
    const update = await until(() => updatesOf(ts)[0]);
    expect(JSON.stringify(update.args['blocks'])).toContain('Rejected by bob@example.com');
    await new Promise((r) => setTimeout(r, 200));
    expect(stack.refundsFor(chargeId)).toHaveLength(0);
  });
});

describe('presses that change nothing', () => {
  it('refuses a bad signature, a stale request and a tampered body with 401', async () => {
    const { actionId, chargeId, ts } = await held(62_000);
    const bad = await press('U0ALICE', 'airlock_approve', actionId, ts, { secret: 'not-the-secret' });
    expect(bad.status).toBe(401);
    const stale = await press('U0ALICE', 'airlock_approve', actionId, ts, {
      at: new Date(Date.now() - 6 * 60_000),
    });
    expect(stale.status).toBe(401);
    const future = await press('U0ALICE', 'airlock_approve', actionId, ts, {
      at: new Date(Date.now() + 6 * 60_000),
    });
    expect(future.status).toBe(401);
    // Signed for one action, then pointed at another: the signature no longer matches.
    const other = await press('U0ALICE', 'airlock_approve', 'act_other', ts, {
      body: (b) => b.replace('act_other', actionId),
    });
    expect(other.status).toBe(401);
    const unsigned = await fetch(`${stack.airlock.url}/slack/interactions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'payload={}',
    });
    expect(unsigned.status).toBe(401);
    await new Promise((r) => setTimeout(r, 200));
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(await votesOn(actionId)).toHaveLength(0);
    expect(stack.refundsFor(chargeId)).toHaveLength(0);
    expect(updatesOf(ts)).toHaveLength(0);
  });

  it('tells an unlinked Slack user, only them, that they are not linked', async () => {
    const { actionId, ts } = await held(63_000);
    expect((await press('U0STRANGER', 'airlock_approve', actionId, ts)).status).toBe(200);
    const told = await until(() => ephemeralsTo('U0STRANGER')[0]);
    expect(told.args['channel']).toBe(CHANNEL);
    expect(String(told.args['text'])).toContain('not linked to an Airlock reviewer');
    expect(String(told.args['text'])).toContain('--slack-user U0STRANGER');
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(await votesOn(actionId)).toHaveLength(0);
    expect(updatesOf(ts)).toHaveLength(0);
  });

  it('refuses the requester approving their own request', async () => {
    // bob asks for a refund in the dashboard: he is its requester.
    const ch = await stack.direct.charges.create({ amount: 100_000, currency: 'usd', source: 'tok_visa' });
    const form = new FormClient(stack.airlock.url);
    expect(await form.logIn('bob@example.com')).toBe(303);
    const page = await form.request('/review/refund');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const res = await form.request('/review/refund', {
      form: { _csrf: csrf, form_key: 'slack-self', charge: ch.id, amount: '700.00', reason: '' },
    });
    const actionId = /\/review\/actions\/(act_\w+)/.exec(res.location ?? '')![1]!;
    const { ts } = await posted(actionId);
    const before = ephemeralsTo('U0BOB').length;
    expect((await press('U0BOB', 'airlock_approve', actionId, ts)).status).toBe(200);
    const told = await until(() => ephemeralsTo('U0BOB')[before]);
    expect(String(told.args['text'])).toContain('You requested this action, so someone else must decide it');
    expect(await statusOf(actionId)).toBe('awaiting_approval');
    expect(await votesOn(actionId)).toHaveLength(0);
    expect(stack.refundsFor(ch.id)).toHaveLength(0);
  });

  it("refuses a reviewer outside the rule's reviewers (carol is not in finance)", async () => {
    const { actionId, ts } = await held(650_000);
    expect((await press('U0CAROL', 'airlock_approve', actionId, ts)).status).toBe(200);
    const told = await until(() => ephemeralsTo('U0CAROL')[0]);
    expect(String(told.args['text'])).toContain('did not record');
    expect(await votesOn(actionId)).toHaveLength(0);
  });

  it('refuses a press while the agent is frozen', async () => {
    const { actionId, chargeId, ts } = await held(64_000);
    const agent = (await stack.airlock.engine.get(actionId)).agent_id!;
    // The kill switch as the CLI and the dashboard press it: the freeze is the agent's id.
    await setFreeze(stack.airlock.store, agent, 'incident', 'test');
    stack.airlock.engine.freezes.invalidate(); // as the admin API and dashboard do: applied at once here
    const before = ephemeralsTo('U0ALICE').length;
    try {
      expect((await press('U0ALICE', 'airlock_approve', actionId, ts)).status).toBe(200);
      const told = await until(() => ephemeralsTo('U0ALICE')[before]);
      expect(String(told.args['text'])).toContain(`${actionId} cannot be approved now`);
      expect(await statusOf(actionId)).toBe('awaiting_approval');
      expect(await votesOn(actionId)).toHaveLength(0);
      expect(stack.refundsFor(chargeId)).toHaveLength(0);
    } finally {
      await clearFreeze(stack.airlock.store, agent, 'test');
      stack.airlock.engine.freezes.invalidate();
    }
  });
});

describe('linking by a verified email', () => {
  it("links a Slack user whose confirmed Slack email is a reviewer's, and not one whose email is unconfirmed", async () => {
    slack.users.set('U0UNCONF', { email: 'alice@example.com', confirmed: false });
    slack.users.set('U0ALICE2', { email: 'alice@example.com', confirmed: true });
    const { actionId, chargeId, ts } = await held(65_000);
    expect((await press('U0UNCONF', 'airlock_approve', actionId, ts)).status).toBe(200);
    await until(() => ephemeralsTo('U0UNCONF')[0]);
    expect(await votesOn(actionId)).toHaveLength(0);

    expect((await press('U0ALICE2', 'airlock_approve', actionId, ts)).status).toBe(200);
    const row = await stack.airlock.engine.waitFor(
      actionId,
      (s) => s === 'completed' || s === 'failed',
      5000,
      20,
    );
    expect(row.status).toBe('completed');
    expect(stack.refundsFor(chargeId)).toHaveLength(1);
    expect((await stack.airlock.store.slack.reviewerFor('U0ALICE2'))?.email).toBe('alice@example.com');
  });
});

describe('decisions made elsewhere', () => {
  it('updates the Slack message when a reviewer approves in the dashboard: no more buttons', async () => {
    const { actionId, ts } = await held(66_000);
    const form = new FormClient(stack.airlock.url);
    expect(await form.logIn('alice@example.com')).toBe(303);
    const res = await form.request(`/review/actions/${actionId}/approve`, {
      form: { _csrf: await form.csrf(), note: 'from the dashboard' },
    });
    expect(res.status).toBe(303);
    const update = await until(() =>
      updatesOf(ts).find((u) => JSON.stringify(u.args['blocks']).includes('Approved by')),
    );
    const text = JSON.stringify(update.args['blocks']);
    expect(text).toContain('Approved by alice@example.com (1 of 1)');
    expect(text).not.toContain('airlock_approve');
    expect(text).toContain('airlock_open');
  });

  it('updates the Slack message when the hold expires', async () => {
    const { actionId, ts } = await held(67_000);
    stack.clock.offsetMs += 73 * 3600_000; // past the policy's 72 h
    try {
      await stack.airlock.engine.waitFor(actionId, (s) => s === 'expired', 5000, 20);
      const update = await until(() =>
        updatesOf(ts).find((u) => JSON.stringify(u.args['blocks']).includes('Expired')),
      );
      expect(JSON.stringify(update.args['blocks'])).not.toContain('airlock_approve');
    } finally {
      stack.clock.offsetMs -= 73 * 3600_000;
    }
  });
});
