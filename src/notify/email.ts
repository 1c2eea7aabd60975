import nodemailer, { type Transporter } from 'nodemailer';
import { eligibleReviewers, mayDecide, type Reviewer, type StoredDecision } from '../engine/engine.ts';
import { escapeHtml } from '../review/html.ts';
import { type Addressee, type Channel, type Hold, type ReviewLinks, Undeliverable } from './channel.ts';
import type { Summary } from './summary.ts';

export type { ReviewLinks } from './channel.ts';

export interface SmtpSettings {
  host: string;
  port: number;
  secure: boolean;
  user?: string | undefined;
  pass?: string | undefined;
  from: string;
}

export interface EmailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

/** One message for one reviewer; with links, each opens a page that asks for the click (a GET never decides). */
export function reviewEmail(to: string, s: Summary, links: ReviewLinks | null): EmailMessage {
  const text = [
    `${s.headline}: ${s.title}`,
    '',
    ...s.lines,
    '',
    ...(links
      ? [
          `Approve: ${links.approve}`,
          `Reject:  ${links.reject}`,
          '',
          'Each link opens the action and asks you to confirm. They work once, only for you, and expire.',
        ]
      : []),
    `Receipt in the dashboard: ${s.receiptUrl}`,
  ].join('\n');
  const button = (href: string, label: string, color: string) =>
    `<a href="${escapeHtml(href)}" style="display:inline-block;padding:10px 18px;margin-right:8px;border-radius:6px;background:${color};color:#fff;text-decoration:none;font-weight:600">${label}</a>`;
  const html = `<div style="font:14px/1.5 system-ui,sans-serif;color:#111827">
<p style="font-size:18px;margin:0 0 8px"><b>${escapeHtml(s.headline)}:</b> ${escapeHtml(s.title)}</p>
<ul>${s.lines.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>
${links ? `<p>${button(links.approve, 'Approve…', '#15803d')}${button(links.reject, 'Reject…', '#b91c1c')}</p><p style="color:#6b7280">Each link opens the action and asks you to confirm. They work once, only for you, and expire.</p>` : ''}
<p><a href="${escapeHtml(s.receiptUrl)}">Open the receipt in the dashboard</a></p></div>`;
  return { to, subject: `[Airlock] ${s.tag}: ${s.title} (${s.id})`, text, html };
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
  decision: Pick<StoredDecision, 'reviewers' | 'notify' | 'escalated_to'>,
  reviewers: Reviewer[],
  requestedBy: string | null,
): Recipient[] {
  const allowed = eligibleReviewers(decision);
  const eligible = reviewers.filter((r) => r.id !== requestedBy && mayDecide(r, allowed));
  const named = (decision.notify ?? []).filter((n) => n.startsWith('email:')).map((n) => n.slice(6));
  if (named.length === 0) return eligible.map((r) => ({ email: r.email, reviewer: r }));
  return [...new Set(named)].map((email) => ({
    email,
    reviewer: eligible.find((r) => r.email === email) ?? null,
  }));
}

/**
 * Who hears of an escalation: the reviewers it names (emails, groups), with links, never the requester; an address
 * it names that is no reviewer's gets the summary without links.
 */
export function escalationRecipients(
  to: readonly string[],
  reviewers: Reviewer[],
  requestedBy: string | null,
): Recipient[] {
  const named = reviewers.filter((r) => r.id !== requestedBy && mayDecide(r, to));
  const known = new Set(reviewers.map((r) => r.email));
  const strangers = to.filter((p) => !p.startsWith('group:') && !known.has(p));
  return [
    ...named.map((r) => ({ email: r.email, reviewer: r })),
    ...[...new Set(strangers)].map((email) => ({ email, reviewer: null })),
  ];
}

/** Who a hold's message goes to on this occasion: a reminder skips those who voted and those who cannot. */
async function occasionRecipients(hold: Hold): Promise<Recipient[]> {
  const { occasion, action } = hold;
  switch (occasion.kind) {
    case 'held':
      return recipientsFor(hold.decision, await hold.reviewers(), action.requested_by);
    case 'remind': {
      const voted = new Set(await hold.voters());
      return recipientsFor(hold.decision, await hold.reviewers(), action.requested_by).filter(
        (r) => r.reviewer !== null && !voted.has(r.reviewer.id),
      );
    }
    case 'escalate':
      return escalationRecipients(occasion.to, await hold.reviewers(), action.requested_by);
    default: {
      const never: never = occasion;
      return never;
    }
  }
}

export class Mailer {
  readonly #transport: Transporter;
  constructor(
    readonly settings: SmtpSettings,
    /** Bounds each step of a send, so a stalled server cannot outlast the try's lease. */
    timeoutMs = 10_000,
  ) {
    this.#transport = nodemailer.createTransport({
      host: settings.host,
      port: settings.port,
      secure: settings.secure,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      ...(settings.user ? { auth: { user: settings.user, pass: settings.pass ?? '' } } : {}),
    });
  }

  /** Resolves with the server's reply code once it has accepted the message. */
  async send(m: EmailMessage, messageId?: string): Promise<number | null> {
    const info = (await this.#transport.sendMail({
      from: this.settings.from,
      to: m.to,
      subject: m.subject,
      text: m.text,
      html: m.html,
      ...(messageId ? { messageId } : {}),
    })) as { response?: string };
    const code = /^(\d{3})/.exec(info.response ?? '')?.[1];
    return code ? Number(code) : null;
  }

  close(): void {
    this.#transport.close();
  }
}

/** Email through any SMTP server: one message per recipient, with that reviewer's own links. */
export class EmailChannel implements Channel<EmailMessage> {
  readonly name = 'email';
  readonly #mailer: Mailer;

  constructor(settings: SmtpSettings, timeoutMs?: number) {
    this.#mailer = new Mailer(settings, timeoutMs);
  }

  async recipients(hold: Hold): Promise<Addressee[]> {
    const list = await occasionRecipients(hold);
    return list.map((r) => ({ recipient: r.email, reviewerId: r.reviewer?.id ?? null }));
  }

  compose(summary: Summary, to: Addressee, links: ReviewLinks | null): EmailMessage {
    return reviewEmail(to.recipient, summary, links);
  }

  async send(message: EmailMessage, id: string): Promise<{ status: number | null }> {
    try {
      // A stable Message-ID: should a crash after the server's acceptance cause a resend, clients can tell.
      return { status: await this.#mailer.send(message, `<${id}@airlock>`) };
    } catch (err) {
      const code = (err as { responseCode?: unknown }).responseCode;
      // 550-554: the mailbox or the message was refused for good. Anything else (a refused connection, a
      // timeout, 4xx, a failed login) may pass later.
      if (typeof code === 'number' && code >= 550 && code <= 554)
        throw new Undeliverable((err as Error).message, code);
      throw err;
    }
  }

  close(): void {
    this.#mailer.close();
  }
}
