import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { boundHash, type Engine } from '../engine/engine.ts';
import { type Attempt, OutboxWorker, type Outcome, type RetryOptions } from '../outbound/outbox.ts';
import { ReviewStore } from '../review/store.ts';
import {
  type NotificationRow,
  OutboxQueue,
  setNotificationPayload,
  setNotificationStatus,
} from '../store/outbox.ts';
import type { ActionRow, Store } from '../store/store.ts';
import { type Channel, type ReviewLinks, Undeliverable } from './channel.ts';
import {
  CUSTOMER_CHANNEL,
  CUSTOMER_NOTICE,
  type CustomerNotices,
  composeNotice,
  customerNoticeSettings,
  type NoticeOutcome,
  noticeFor,
} from './customer.ts';
import { EmailChannel } from './email.ts';
import { occasionOf, REVIEW_REMINDER } from './outbox.ts';
import { SlackChannel } from './slack.ts';
import { SlackApp, SlackAppChannel } from './slack-app.ts';
import { CONTEXT_TIMEOUT_MS, summarize } from './summary.ts';
import { TeamsChannel } from './teams.ts';

export { type Recipient, recipientsFor } from './email.ts';

/**
 * Retries span about an hour and a half (1 s doubling to 5 min, 25 tries): long enough to ride out an SMTP or Slack
 * outage, short of the shortest usual hold.
 */
export const NOTIFICATION_RETRY: RetryOptions = {
  maxAttempts: 25,
  backoffMs: 1_000,
  maxBackoffMs: 300_000,
  pollMs: 500,
  timeoutMs: 10_000,
  // An SMTP send is several exchanges, each bounded by the timeout: the lease outlasts a slow but live one.
  leaseMs: 60_000,
};

/** The channels the configuration turns on, in the order messages are queued. */
export function configuredChannels(
  config: Pick<Config, 'smtp' | 'slack_webhook_url' | 'teams_webhook_url'> & Partial<Pick<Config, 'slack'>>,
  timeoutMs = NOTIFICATION_RETRY.timeoutMs,
  store: Store | null = null,
): Channel[] {
  const channels: Channel[] = [];
  if (config.smtp) channels.push(new EmailChannel(config.smtp, timeoutMs));
  if (config.slack_webhook_url) channels.push(new SlackChannel(config.slack_webhook_url, timeoutMs));
  if (config.teams_webhook_url) channels.push(new TeamsChannel(config.teams_webhook_url, timeoutMs));
  if (config.slack) channels.push(new SlackAppChannel(new SlackApp(config.slack, timeoutMs), store));
  return channels;
}

/** Customer notices as the configuration sets them up, or null: they need `customer_notices:` and `smtp:`. */
export function customerNotices(
  config: Pick<Config, 'smtp' | 'customer_notices'>,
  customers: {
    customer(
      id: string,
      scope: { stripeAccount: string | null; stripeContext: string | null },
    ): Promise<{ email: string | null; name: string | null } | null>;
  },
  timeoutMs = NOTIFICATION_RETRY.timeoutMs,
): CustomerNotices | null {
  const { smtp, customer_notices: notices } = config;
  if (!smtp || !notices) return null;
  return {
    settings: customerNoticeSettings(notices),
    mail: new EmailChannel({ ...smtp, from: notices.from ?? smtp.from }, timeoutMs),
    contact: async (id, scope) => {
      const c = await customers.customer(id, scope);
      return c ? { email: c.email, name: c.name } : null;
    },
  };
}

export interface NotifierOptions {
  engine: Engine;
  log: Logger;
  channels: readonly Channel[];
  /** Where links in messages point, e.g. https://airlock.example.com (no trailing slash). */
  baseUrl: string;
  linkTtlMs: number;
  retry?: Partial<RetryOptions>;
  /** Customer notices, when `customer_notices:` and `smtp:` are configured. */
  notices?: CustomerNotices | null;
}

const STATUS_AFTER: Record<Outcome, string> = {
  delivered: 'sent',
  failed: 'queued',
  gave_up: 'failed',
  skipped: 'skipped',
};

/**
 * Delivers the messages HoldOutbox queued with each hold, through the channel each names, with retries and backoff.
 * A message is composed on its first try (the summary and, for a reviewer, their own links), stored, and that same
 * message is sent on every try. Once sent it is never sent again; one for an action decided meanwhile is skipped.
 */
export class Notifier {
  readonly #reviews: ReviewStore;
  readonly #channels: Map<string, Channel>;
  readonly #worker: OutboxWorker<'notifications'>;
  readonly #onChange = (c: { status: string }) => {
    if (c.status === 'awaiting_approval') this.#worker.wake();
    else if (this.options.notices && (c.status === 'completed' || c.status === 'rejected'))
      this.#worker.wake();
  };

  constructor(readonly options: NotifierOptions) {
    const store = options.engine.store;
    this.#reviews = new ReviewStore(store);
    this.#channels = new Map(options.channels.map((c) => [c.name, c]));
    // Each instance delivers only through the channels it has: another may be configured with more.
    const queue = new OutboxQueue(store, 'notifications', {
      column: 'channel',
      values: [...this.#channels.keys(), ...(options.notices ? [CUSTOMER_CHANNEL] : [])],
    });
    this.#worker = new OutboxWorker(
      queue,
      { ...NOTIFICATION_RETRY, ...options.retry },
      {
        deliver: (n) => this.#deliver(n),
        record: (tx, n, outcome, attempt) => this.#record(tx, n, outcome, attempt),
        describe: (n) => ({ action: n.action_id, channel: n.channel, recipient: n.recipient }),
      },
      options.log,
      'notification',
    );
  }

  start(): this {
    if (this.#channels.size === 0 && !this.options.notices) return this; // nothing configured: no sweeps
    this.options.engine.changes.on('change', this.#onChange);
    this.#worker.start();
    this.#worker.wake(); // what a previous run left queued
    return this;
  }

  async stop(): Promise<void> {
    this.options.engine.changes.off('change', this.#onChange);
    this.#worker.stop();
    await this.#worker.idle();
    for (const c of this.#channels.values()) c.close?.();
    this.options.notices?.mail.close();
  }

  /** One sweep of due messages; start() runs them on a timer and on each new hold. */
  async tick(): Promise<void> {
    await this.#worker.tick();
  }

  async #deliver(n: NotificationRow): Promise<Attempt> {
    if (n.event === CUSTOMER_NOTICE) return this.#deliverNotice(n);
    const { engine } = this.options;
    const channel = this.#channels.get(n.channel);
    if (!channel) return { result: 'failed', status: null, error: `no ${n.channel} channel configured` };
    const action = await engine.store.getAction(n.action_id);
    const now = engine.clock.now();
    if (!action) return { result: 'skipped', reason: 'not sent: the action is gone' };
    if (action.status !== 'awaiting_approval')
      return { result: 'skipped', reason: `not sent: the action is ${action.status} already` };
    if (action.expires_at && action.expires_at <= now.toISOString())
      return { result: 'skipped', reason: 'not sent: the hold expired' };
    if (n.event === REVIEW_REMINDER && n.reviewer_id) {
      const bound = boundHash(action);
      const votes = await engine.store.listApprovals(action.id);
      if (votes.some((v) => v.reviewer_id === n.reviewer_id && v.bound_hash === bound))
        return { result: 'skipped', reason: 'not sent: the reviewer has voted since' };
    }
    let payload = n.payload;
    if (payload === null) {
      payload = JSON.stringify(await this.#compose(channel, action, n, now));
      await setNotificationPayload(engine.store, n.id, payload);
    }
    return sendWith(channel, payload, n.id);
  }

  /** A customer notice: addressed and composed on its first try (reading the Stripe customer), then sent as stored. */
  async #deliverNotice(n: NotificationRow): Promise<Attempt> {
    const notices = this.options.notices;
    if (!notices)
      return { result: 'failed', status: null, error: 'customer notices are not configured here' };
    const store = this.options.engine.store;
    const action = await store.getAction(n.action_id);
    if (!action) return { result: 'skipped', reason: 'not sent: the action is gone' };
    const notice = noticeFor(action, notices.settings);
    if (!notice) return { result: 'skipped', reason: `not sent: the action is ${action.status} now` };
    let payload = n.payload;
    if (payload === null) {
      let to = n.recipient;
      let name: string | null = null;
      if (to.startsWith('customer:')) {
        const contact = await notices.contact(to.slice('customer:'.length), {
          stripeAccount: action.stripe_account,
          stripeContext: action.stripe_context,
        });
        if (!contact)
          return { result: 'failed', status: null, error: 'the Stripe customer could not be read' };
        if (!contact.email)
          return { result: 'skipped', reason: 'not sent: the customer has no email address' };
        to = contact.email;
        name = contact.name;
      }
      const outcome = action.status as NoticeOutcome;
      const vote = outcome === 'rejected' ? 'reject' : 'approve';
      const notes = notice.withNote
        ? (await store.listApprovals(action.id))
            .filter((v) => v.decision === vote && v.note)
            .map((v) => v.note as string)
        : [];
      const message = composeNotice(
        action,
        outcome,
        { to, customerName: name, notes },
        notices.settings.templates,
      );
      payload = JSON.stringify(message);
      await setNotificationPayload(store, n.id, payload);
    }
    return sendWith(notices.mail, payload, n.id);
  }

  async #compose(channel: Channel, action: ActionRow, n: NotificationRow, now: Date): Promise<unknown> {
    const { engine, baseUrl } = this.options;
    const agent = action.agent_id ? await engine.store.getAgent(action.agent_id) : undefined;
    const requester = action.requested_by ? await this.#reviews.reviewerEmail(action.requested_by) : null;
    const who = agent ? `agent ${agent.name}` : requester ? `reviewer ${requester}` : 'unknown';
    // Look-ups wait at most CONTEXT_TIMEOUT_MS, and a failure of any kind leaves the summary without them.
    const context = await engine.context(action, { timeoutMs: CONTEXT_TIMEOUT_MS }).catch(() => null);
    const summary = summarize(action, who, now, baseUrl, occasionOf(n.event), context);
    let links: ReviewLinks | null = null;
    if (n.reviewer_id) {
      // A link never outlives the hold it decides.
      const expiry = new Date(
        Math.min(
          now.getTime() + this.options.linkTtlMs,
          action.expires_at ? Date.parse(action.expires_at) : Number.POSITIVE_INFINITY,
        ),
      );
      const tokens = await this.#reviews.createLinks(action.id, n.reviewer_id, now, expiry);
      const url = (token: string) => `${baseUrl}/review/links/${token}`;
      links = { approve: url(tokens.approve), reject: url(tokens.reject) };
    }
    return channel.compose(summary, { recipient: n.recipient, reviewerId: n.reviewer_id }, links);
  }

  /** In the transaction that records the try: the message's status, and a ledger event once it is settled. */
  async #record(tx: Store, n: NotificationRow, outcome: Outcome, attempt: Attempt): Promise<void> {
    await setNotificationStatus(tx, n.id, STATUS_AFTER[outcome]);
    if (outcome !== 'delivered' && outcome !== 'gave_up') return;
    await tx.appendLedger({
      actionId: n.action_id,
      type: outcome === 'delivered' ? 'notification.sent' : 'notification.failed',
      from: null,
      to: null,
      actor: 'notifier',
      data: {
        notification: n.id,
        channel: n.channel,
        recipient: n.recipient,
        attempts: n.attempts + 1,
        ...(attempt.result === 'failed' ? { error: attempt.error } : {}),
      },
      at: this.options.engine.clock.now().toISOString(),
    });
  }
}

/** Sends a stored message; a failure is tried again unless the channel says no retry can help. */
/** A channel's refusal as an outbox attempt: an Undeliverable is permanent, anything else is retried. */
export function failedAttempt(err: unknown): Attempt {
  const status = (err as { status?: unknown }).status;
  return {
    result: 'failed',
    status: typeof status === 'number' ? status : null,
    error: (err instanceof Error ? err.message : String(err)).slice(0, 500),
    permanent: err instanceof Undeliverable,
  };
}

async function sendWith(channel: Pick<Channel, 'send'>, payload: string, id: string): Promise<Attempt> {
  try {
    const { status } = await channel.send(JSON.parse(payload), id);
    return { result: 'delivered', status };
  } catch (err) {
    return failedAttempt(err);
  }
}
