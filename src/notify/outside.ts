// Alerts about money that moved outside Airlock (a raw key, the Stripe Dashboard, a script, or Stripe's own
// automation). Queued with the event in one transaction (OutsideAlertOutbox), delivered with retries (OutsideAlerter)
// by email, the Slack incoming webhook and Teams: whichever are configured.
import type { Logger } from 'pino';
import type { OutsideAlerts } from '../engine/stripe-events.ts';
import { newId } from '../ids.ts';
import { type Attempt, OutboxWorker, type RetryOptions } from '../outbound/outbox.ts';
import type { Policy } from '../policy/index.ts';
import { escapeHtml, formatMoney } from '../review/html.ts';
import { OutboxQueue, queuedColumns, type StripeAlertRow } from '../store/outbox.ts';
import type { Store, StripeEventRow } from '../store/store.ts';
import { stripeDashboardUrl } from '../stripe/events.ts';
import type { Channel } from './channel.ts';
import type { EmailMessage } from './email.ts';
import { failedAttempt, NOTIFICATION_RETRY } from './notifier.ts';
import { SlackAppChannel } from './slack-app.ts';
import { adaptiveCardMessage } from './teams.ts';

/** The channels an outside event is told through: every configured one (the Slack app posts to its channel). */
const ALERT_CHANNELS = new Set(['email', 'slack', 'teams', 'slack_app']);

export const SOURCE_LABELS = {
  automation: "Stripe's own automation (no API request)",
  outside: 'outside Airlock (a raw key, the Dashboard or a script)',
} as const;

export class OutsideAlertOutbox implements OutsideAlerts {
  constructor(readonly channels: readonly Channel[]) {}

  async enqueue(tx: Store, event: StripeEventRow, policy: Policy): Promise<void> {
    const due = new Date().toISOString();
    const rows: StripeAlertRow[] = [];
    for (const channel of this.channels) {
      if (!ALERT_CHANNELS.has(channel.name)) continue;
      const recipients =
        channel instanceof SlackAppChannel
          ? [channel.app.config.channel]
          : channel.name !== 'email'
            ? ['webhook']
            : policy.outsideAirlock.notify.length
              ? policy.outsideAirlock.notify.map((n) => n.slice('email:'.length))
              : (await tx.credentials.listReviewers()).map((r) => r.email);
      for (const recipient of new Set(recipients)) {
        rows.push({
          ...queuedColumns(newId('alr'), due, event.received_at),
          event_id: event.id,
          channel: channel.name,
          recipient,
          payload: null,
        });
      }
    }
    await tx.stripeEvents.insertAlerts(rows);
  }
}

interface Alert {
  title: string;
  lines: string[];
  stripeUrl: string | null;
  airlockUrl: string;
}

export function describeOutside(e: StripeEventRow, baseUrl: string): Alert {
  const money = e.amount === null ? null : formatMoney(e.amount, e.currency);
  const source = e.origin === 'automation' ? SOURCE_LABELS.automation : SOURCE_LABELS.outside;
  return {
    title: `${e.type}${money ? ` of ${money}` : ''} made outside Airlock`,
    lines: [
      `Event: ${e.type} (${e.id})`,
      money ? `Amount: ${money}` : null,
      e.object_id ? `Stripe object: ${e.object_id}` : null,
      e.customer ? `Customer: ${e.customer}` : null,
      `Source: ${source}`,
      e.request_id ? `Stripe request: ${e.request_id}` : null,
      `At: ${new Date(e.created * 1000).toISOString()}`,
    ].filter((l): l is string => l !== null),
    stripeUrl: stripeDashboardUrl(e.object_id, e.livemode === 1),
    airlockUrl: `${baseUrl}/review/outside`,
  };
}

function slackText(a: Alert): string {
  return `:rotating_light: *Money moved outside Airlock:* ${a.title}\n${a.lines.map((l) => `• ${l}`).join('\n')}\n${a.stripeUrl ? `<${a.stripeUrl}|Open it in Stripe> · ` : ''}<${a.airlockUrl}|Outside Airlock>`;
}

/** The alert as `channel` sends it (email, slack_app, slack, or Teams for any other), composed once and stored. */
export function composeAlert(channel: string, to: string, a: Alert): unknown {
  const links = [a.stripeUrl ? `In Stripe: ${a.stripeUrl}` : null, `In Airlock: ${a.airlockUrl}`].filter(
    (l): l is string => l !== null,
  );
  switch (channel) {
    case 'email':
      return {
        to,
        subject: `[Airlock] Outside Airlock: ${a.title}`,
        text: [`Money moved outside Airlock: ${a.title}`, '', ...a.lines, '', ...links].join('\n'),
        html: `<div style="font:14px/1.5 system-ui,sans-serif;color:#111827"><p style="font-size:18px;margin:0 0 8px"><b>Money moved outside Airlock:</b> ${escapeHtml(a.title)}</p><ul>${a.lines.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>${a.stripeUrl ? `<p><a href="${escapeHtml(a.stripeUrl)}">Open it in Stripe</a></p>` : ''}<p><a href="${escapeHtml(a.airlockUrl)}">Outside Airlock in the dashboard</a></p></div>`,
      } satisfies EmailMessage;
    case 'slack_app':
      return {
        channel: to,
        text: `Money moved outside Airlock: ${a.title}`,
        blocks: [{ type: 'section', text: { type: 'mrkdwn', text: slackText(a) } }],
      };
    case 'slack':
      return { text: slackText(a) };
    default:
      return adaptiveCardMessage(
        [
          {
            type: 'TextBlock',
            text: `Money moved outside Airlock: ${a.title}`,
            weight: 'Bolder',
            wrap: true,
          },
          ...a.lines.map((t) => ({ type: 'TextBlock' as const, text: t, wrap: true as const })),
        ],
        [
          ...(a.stripeUrl
            ? [{ type: 'Action.OpenUrl' as const, title: 'Open it in Stripe', url: a.stripeUrl }]
            : []),
          { type: 'Action.OpenUrl', title: 'Outside Airlock', url: a.airlockUrl },
        ],
      );
  }
}

/** Delivers the queued alerts through the channels this instance has, composing each once and sending it as stored. */
export class OutsideAlerter {
  readonly #channels: Map<string, Channel>;
  readonly #worker: OutboxWorker<'stripe_alerts'>;

  constructor(
    readonly options: {
      store: Store;
      log: Logger;
      channels: readonly Channel[];
      /** Where the dashboard is, for the link in each alert (no trailing slash). */
      baseUrl: string;
      retry?: Partial<RetryOptions>;
    },
  ) {
    this.#channels = new Map(
      options.channels.filter((c) => ALERT_CHANNELS.has(c.name)).map((c) => [c.name, c]),
    );
    const queue = new OutboxQueue(options.store, 'stripe_alerts', {
      column: 'channel',
      values: [...this.#channels.keys()],
    });
    this.#worker = new OutboxWorker(
      queue,
      { ...NOTIFICATION_RETRY, ...options.retry },
      {
        deliver: (a) => this.#deliver(a),
        describe: (a) => ({ event: a.event_id, channel: a.channel }),
      },
      options.log,
      'outside alert',
    );
  }

  start(): this {
    if (this.#channels.size === 0) return this;
    this.#worker.start();
    this.#worker.wake();
    return this;
  }

  /** An alert was just queued: sweep now rather than at the next poll. */
  wake(): void {
    if (this.#channels.size > 0) this.#worker.wake();
  }

  async stop(): Promise<void> {
    this.#worker.stop();
    await this.#worker.idle();
  }

  async #deliver(a: StripeAlertRow): Promise<Attempt> {
    const channel = this.#channels.get(a.channel);
    if (!channel) return { result: 'failed', status: null, error: `no ${a.channel} channel configured` };
    const store = this.options.store;
    let payload = a.payload;
    if (payload === null) {
      const event = await store.stripeEvents.get(a.event_id);
      if (!event) return { result: 'skipped', reason: 'not sent: the event is gone' };
      payload = JSON.stringify(
        composeAlert(a.channel, a.recipient, describeOutside(event, this.options.baseUrl)),
      );
      await store.stripeEvents.setAlertPayload(a.id, payload);
    }
    try {
      // The Slack app's own send keeps a hold's message for later updates; an alert is posted and left as it is.
      const { status } =
        channel instanceof SlackAppChannel
          ? await channel.app
              .post({ action: a.event_id, blocks: [], ...JSON.parse(payload) })
              .then(() => ({ status: 200 }))
          : await channel.send(JSON.parse(payload), a.id);
      return { result: 'delivered', status };
    } catch (err) {
      return failedAttempt(err);
    }
  }
}
