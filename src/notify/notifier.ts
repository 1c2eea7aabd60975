import type { Logger } from 'pino';
import {
  type ActionChange,
  type Engine,
  mayDecide,
  type Reviewer,
  type StoredDecision,
} from '../engine/engine.ts';
import { ReviewStore } from '../review/store.ts';
import { Mailer, reviewEmail, type SmtpSettings } from './email.ts';
import { postToSlack } from './slack.ts';
import { summarize } from './summary.ts';

export interface NotifierOptions {
  engine: Engine;
  log: Logger;
  /** Where links in messages point, e.g. https://airlock.example.com (no trailing slash). */
  baseUrl: string;
  smtp?: SmtpSettings | undefined;
  slackWebhookUrl?: string | undefined;
  linkTtlMs: number;
}

export interface Recipient {
  email: string;
  /** Present when the recipient may decide: they get their own approve and reject links. */
  reviewer: Reviewer | null;
}

/**
 * Who hears about a hold. Eligible reviewers (the rule's `reviewers:`, never the requester) get links; a rule's
 * `notify: [email:x]` narrows the list to those addresses, and an address that is not an eligible reviewer gets the
 * summary without links.
 */
export function recipientsFor(
  decision: Pick<StoredDecision, 'reviewers' | 'notify'>,
  reviewers: Reviewer[],
  requestedBy: string | null,
): Recipient[] {
  const eligible = reviewers.filter((r) => r.id !== requestedBy && mayDecide(r, decision.reviewers ?? []));
  const named = (decision.notify ?? []).filter((n) => n.startsWith('email:')).map((n) => n.slice(6));
  if (named.length === 0) return eligible.map((r) => ({ email: r.email, reviewer: r }));
  return [...new Set(named)].map((email) => ({
    email,
    reviewer: eligible.find((r) => r.email === email) ?? null,
  }));
}

/** Tells people when an action starts waiting for them: email through SMTP, a Slack webhook. */
export class Notifier {
  readonly #reviews: ReviewStore;
  readonly #mailer: Mailer | null;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #onChange = (c: ActionChange) => {
    if (c.status !== 'awaiting_approval') return;
    if (!this.#mailer && !this.options.slackWebhookUrl) return; // nothing configured: no work on the hot path
    const p = this.notify(c.id).catch((err: unknown) =>
      this.options.log.error({ err, action: c.id }, 'review notification failed'),
    );
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  };

  constructor(readonly options: NotifierOptions) {
    this.#reviews = new ReviewStore(options.engine.store);
    this.#mailer = options.smtp ? new Mailer(options.smtp) : null;
  }

  start(): this {
    this.options.engine.changes.on('change', this.#onChange);
    return this;
  }

  async stop(): Promise<void> {
    this.options.engine.changes.off('change', this.#onChange);
    await Promise.allSettled([...this.#inFlight]);
    this.#mailer?.close();
  }

  async notify(actionId: string): Promise<void> {
    const { engine, log, baseUrl } = this.options;
    const action = await engine.get(actionId);
    const now = engine.clock.now();
    const agent = action.agent_id ? await engine.store.getAgent(action.agent_id) : undefined;
    const requester = action.requested_by ? await this.#reviews.reviewerEmail(action.requested_by) : null;
    const who = agent ? `agent ${agent.name}` : requester ? `reviewer ${requester}` : 'unknown';
    const summary = summarize(action, who, now, baseUrl);
    const tasks: Promise<void>[] = [];

    if (this.options.slackWebhookUrl) tasks.push(postToSlack(this.options.slackWebhookUrl, summary));

    if (this.#mailer) {
      const mailer = this.#mailer;
      const decision = JSON.parse(action.decision) as StoredDecision;
      const recipients = recipientsFor(decision, await this.#reviews.reviewers(), action.requested_by);
      const linkExpiry = new Date(
        Math.min(
          now.getTime() + this.options.linkTtlMs,
          action.expires_at ? new Date(action.expires_at).getTime() : Number.POSITIVE_INFINITY,
        ),
      );
      for (const r of recipients) {
        tasks.push(
          (async () => {
            const links = r.reviewer
              ? await this.#reviews.createLinks(action.id, r.reviewer.id, now, linkExpiry)
              : null;
            const url = (token: string) => `${baseUrl}/review/links/${token}`;
            await mailer.send(
              reviewEmail(
                r.email,
                summary,
                links ? { approve: url(links.approve), reject: url(links.reject) } : null,
              ),
            );
          })(),
        );
      }
    }
    const results = await Promise.allSettled(tasks);
    for (const r of results) {
      if (r.status === 'rejected')
        log.error({ err: r.reason, action: action.id }, 'a review notification was not delivered');
    }
  }
}
