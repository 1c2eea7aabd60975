import { type Addressee, type Channel, Undeliverable } from './channel.ts';
import type { Summary } from './summary.ts';

/**
 * Text for Slack's mrkdwn, where `<…>` is a link or a mention (`<!channel>`) and `&` starts an entity: a stated reason
 * or a customer's name is the agent's or the customer's text, so it is escaped as Slack asks.
 */
export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The Slack incoming-webhook body: the summary and a link to the receipt; never parameters or secrets. */
export function slackMessage(s: Summary): { text: string } {
  const lines = s.lines.map((l) => `• ${slackEscape(l)}`).join('\n');
  return {
    text: `:lock: *${s.headline}:* ${slackEscape(s.title)}\n${lines}\n<${s.receiptUrl}|Open the receipt to decide>`,
  };
}

/** One post per hold to the configured incoming webhook. It carries no decision links: Slack is a shared room. */
export class SlackChannel implements Channel<{ text: string }> {
  readonly name = 'slack';

  constructor(
    readonly webhookUrl: string,
    readonly timeoutMs = 10_000,
  ) {}

  async recipients(): Promise<Addressee[]> {
    // The webhook's URL is a credential, so the recipient is recorded by role, not by address.
    return [{ recipient: 'webhook', reviewerId: null }];
  }

  compose(summary: Summary): { text: string } {
    return slackMessage(summary);
  }

  async send(message: { text: string }): Promise<{ status: number | null }> {
    const res = await fetch(this.webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (res.ok) return { status: res.status };
    const error = `Slack webhook answered ${res.status}`;
    // A deleted or disabled webhook answers 4xx and stays so; a timeout, 429 or 5xx may pass later.
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)
      throw new Undeliverable(error, res.status);
    throw Object.assign(new Error(error), { status: res.status });
  }
}
