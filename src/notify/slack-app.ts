import { ErrorCode, LogLevel, WebClient } from '@slack/web-api';
import type { Config } from '../config/config.ts';
import type { Store } from '../store/store.ts';
import { type Addressee, type Channel, Undeliverable } from './channel.ts';
import { slackEscape } from './slack.ts';
import type { Summary } from './summary.ts';

// Slack's interactive app: a bot posts each hold with Approve, Reject and Open receipt (Block Kit), and updates the
// message when a reviewer presses a button. The presses come back to review/routes/slack.ts.

export type SlackAppConfig = NonNullable<Config['slack']>;

/** The action_id of each button; the button's value is the Airlock action id. */
export const SLACK_BUTTONS = {
  approve: 'airlock_approve',
  reject: 'airlock_reject',
  open: 'airlock_open',
} as const;

export interface SlackHoldMessage {
  /** The Airlock action it is about. */
  action: string;
  channel: string;
  text: string;
  blocks: unknown[];
}

/** Where an action stands, in one line under its message. */
export interface SlackStanding {
  status: string;
  approvals: number;
  required: number;
  /** The reviewers who approved so far, or who decided it. */
  by: string[];
}

function summaryBlock(s: Summary): unknown {
  const lines = s.lines.map((l) => `• ${slackEscape(l)}`).join('\n');
  return {
    type: 'section',
    text: { type: 'mrkdwn', text: `:lock: *${s.headline}:* ${slackEscape(s.title)}\n${lines}` },
  };
}

function buttons(s: Summary, decidable: boolean): unknown {
  const open = {
    type: 'button',
    action_id: SLACK_BUTTONS.open,
    text: { type: 'plain_text', text: 'Open receipt' },
    url: s.receiptUrl,
  };
  if (!decidable) return { type: 'actions', block_id: 'airlock_decide', elements: [open] };
  return {
    type: 'actions',
    block_id: 'airlock_decide',
    elements: [
      {
        type: 'button',
        action_id: SLACK_BUTTONS.approve,
        style: 'primary',
        value: s.id,
        text: { type: 'plain_text', text: 'Approve' },
      },
      {
        type: 'button',
        action_id: SLACK_BUTTONS.reject,
        style: 'danger',
        value: s.id,
        text: { type: 'plain_text', text: 'Reject' },
      },
      open,
    ],
  };
}

export function standingLine(st: SlackStanding): string {
  const by = st.by.length ? ` by ${st.by.join(', ')}` : '';
  switch (st.status) {
    case 'awaiting_approval':
      return st.approvals > 0
        ? `:hourglass: Approved${by}: ${st.approvals} of ${st.required}`
        : `:hourglass: Waiting: ${st.approvals} of ${st.required} approval${st.required === 1 ? '' : 's'}`;
    case 'rejected':
      return `:x: Rejected${by}`;
    default:
      // approved, pending, completed, failed: the approvals cleared it; what the upstream did is on the receipt.
      return st.status === 'expired' || st.status === 'cancelled' || st.status === 'blocked'
        ? `:no_entry: ${st.status[0]!.toUpperCase()}${st.status.slice(1)}`
        : `:white_check_mark: Approved${by} (${st.approvals} of ${st.required})`;
  }
}

/** The message for a hold; with `standing`, as it reads after a vote (no buttons once it is decided). */
export function holdMessage(channel: string, s: Summary, standing?: SlackStanding): SlackHoldMessage {
  const decidable = !standing || standing.status === 'awaiting_approval';
  const line = standingLine(standing ?? { status: 'awaiting_approval', approvals: 0, required: 1, by: [] });
  return {
    action: s.id,
    channel,
    text: `${s.headline}: ${s.title}`,
    blocks: [
      summaryBlock(s),
      buttons(s, decidable),
      ...(standing ? [{ type: 'context', elements: [{ type: 'mrkdwn', text: line }] }] : []),
    ],
  };
}

/** The Web API calls Airlock makes, through Slack's maintained client. */
export class SlackApp {
  readonly client: WebClient;

  constructor(
    readonly config: SlackAppConfig,
    timeoutMs = 10_000,
  ) {
    this.client = new WebClient(config.bot_token, {
      ...(config.api_url ? { slackApiUrl: config.api_url } : {}),
      logLevel: LogLevel.ERROR,
      timeout: timeoutMs,
      // The notification outbox retries; the client's own retries would hide a failure from it.
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
    });
  }

  async post(message: SlackHoldMessage): Promise<{ ts: string | undefined }> {
    const res = await this.client.chat.postMessage({
      channel: message.channel,
      text: message.text,
      blocks: message.blocks as never,
    });
    return { ts: res.ts };
  }

  async update(channel: string, ts: string, message: SlackHoldMessage): Promise<void> {
    await this.client.chat.update({ channel, ts, text: message.text, blocks: message.blocks as never });
  }

  /** A reply only the pressing user sees: why their press changed nothing. */
  async ephemeral(channel: string, user: string, text: string): Promise<void> {
    await this.client.chat.postEphemeral({ channel, user, text });
  }

  /** The user's email when Slack says it is confirmed; null otherwise. */
  async confirmedEmail(user: string): Promise<string | null> {
    const res = await this.client.users.info({ user });
    const u = res.user as { is_email_confirmed?: boolean; profile?: { email?: string } } | undefined;
    return u?.is_email_confirmed === true && u.profile?.email ? u.profile.email : null;
  }
}

/** One post per hold to the app's channel, with the buttons; the same channel id is the recipient. */
export class SlackAppChannel implements Channel<SlackHoldMessage> {
  readonly name = 'slack_app';

  /** With a store, where each message lands is kept, so a decision made anywhere can update it. */
  constructor(
    readonly app: SlackApp,
    readonly store: Store | null = null,
  ) {}

  async recipients(): Promise<Addressee[]> {
    // The channel decides nobody's vote: whoever presses is mapped to a reviewer when they press.
    return [{ recipient: this.app.config.channel, reviewerId: null }];
  }

  compose(summary: Summary): SlackHoldMessage {
    return holdMessage(this.app.config.channel, summary);
  }

  async send(message: SlackHoldMessage): Promise<{ status: number | null }> {
    try {
      const { ts } = await this.app.post(message);
      if (ts && this.store) {
        await this.store.slack.saveMessage({
          action_id: message.action,
          channel: message.channel,
          ts,
          created_at: new Date().toISOString(),
        });
      }
      return { status: 200 };
    } catch (err) {
      const e = err as { code?: string; data?: { error?: string }; message?: string };
      // Slack's refusals (channel_not_found, invalid_auth, not_in_channel) stay so; network errors and 429 may pass.
      if (e.code === ErrorCode.PlatformError)
        throw new Undeliverable(`Slack refused: ${e.data?.error ?? e.message}`);
      throw err;
    }
  }
}
