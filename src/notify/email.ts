import nodemailer, { type Transporter } from 'nodemailer';
import { escapeHtml } from '../review/html.ts';
import type { Summary } from './summary.ts';

export interface SmtpSettings {
  host: string;
  port: number;
  secure: boolean;
  user?: string | undefined;
  pass?: string | undefined;
  from: string;
}

export interface ReviewLinks {
  approve: string;
  reject: string;
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
    `Held for review: ${s.title}`,
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
<p style="font-size:18px;margin:0 0 8px"><b>Held for review:</b> ${escapeHtml(s.title)}</p>
<ul>${s.lines.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>
${links ? `<p>${button(links.approve, 'Approve…', '#15803d')}${button(links.reject, 'Reject…', '#b91c1c')}</p><p style="color:#6b7280">Each link opens the action and asks you to confirm. They work once, only for you, and expire.</p>` : ''}
<p><a href="${escapeHtml(s.receiptUrl)}">Open the receipt in the dashboard</a></p></div>`;
  return { to, subject: `[Airlock] Review: ${s.title} (${s.id})`, text, html };
}

export class Mailer {
  readonly #transport: Transporter;
  constructor(readonly settings: SmtpSettings) {
    this.#transport = nodemailer.createTransport({
      host: settings.host,
      port: settings.port,
      secure: settings.secure,
      ...(settings.user ? { auth: { user: settings.user, pass: settings.pass ?? '' } } : {}),
    });
  }

  async send(m: EmailMessage): Promise<void> {
    await this.#transport.sendMail({
      from: this.settings.from,
      to: m.to,
      subject: m.subject,
      text: m.text,
      html: m.html,
    });
  }

  close(): void {
    this.#transport.close();
  }
}
