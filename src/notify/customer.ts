// Customer notices: the person whose refund it is hears how it ended, as the Appsmith refund flow told them. Queued in
// the transaction that settles the action (never for blocked or shadow-passed actions), addressed and composed on the
// first try, and sent through the same outbox as reviewers' messages.
import { z } from 'zod';
import type { OutcomeNotifications } from '../engine/callbacks.ts';
import type { StoredDecision } from '../engine/engine.ts';
import { newId } from '../ids.ts';
import { escapeHtml, formatMoney, kindLabel } from '../review/html.ts';
import { insertNotifications, queuedColumns } from '../store/outbox.ts';
import type { ActionRow, Store } from '../store/store.ts';
import type { EmailChannel, EmailMessage } from './email.ts';
import { renderText } from './template.ts';

export const CUSTOMER_NOTICE = 'customer_notice';
/** The channel customer notices are stored and delivered under, apart from reviewers' email. */
export const CUSTOMER_CHANNEL = 'customer_email';

export interface NoticeTemplate {
  subject: string;
  text: string;
}

export interface CustomerNoticeSettings {
  /** Kinds whose customers hear every outcome, whatever rule decided (`customer_notice:` on a rule adds more). */
  kinds: string[];
  /** Whether notices for those kinds carry the reviewers' notes (a rule says `with_note` for its own). */
  note: boolean;
  /** The metadata key an agent may name the customer's address in; otherwise the Stripe customer's email. */
  emailMetadataKey: string;
  templates: Record<NoticeOutcome, NoticeTemplate>;
}

export type NoticeOutcome = 'completed' | 'rejected';

export const DEFAULT_TEMPLATES: Record<NoticeOutcome, NoticeTemplate> = {
  completed: {
    subject: 'Your {{kind}} of {{amount}} has been processed',
    text: [
      'Hello{{#customer_name}} {{customer_name}}{{/customer_name}},',
      '',
      'Your {{kind}} of {{amount}} has been processed. It can take 5 to 10 business days to appear on your statement.',
      '{{#note}}',
      'A note from our team: {{note}}',
      '{{/note}}',
      '',
      'Reference: {{reference}}',
    ].join('\n'),
  },
  rejected: {
    subject: 'About your {{kind}} of {{amount}}',
    text: [
      'Hello{{#customer_name}} {{customer_name}}{{/customer_name}},',
      '',
      'We reviewed the {{kind}} of {{amount}} and will not be making it.',
      '{{#note}}',
      'A note from our team: {{note}}',
      '{{/note}}',
      '',
      'Reference: {{reference}}',
    ].join('\n'),
  },
};

const EMAIL = z.email();

/** The address the agent named in the request's metadata, when it is one. */
function metadataEmail(action: ActionRow, key: string): string | null {
  let params: Record<string, unknown>;
  try {
    params = JSON.parse(action.params) as Record<string, unknown>;
  } catch {
    return null;
  }
  const metadata = params['metadata'];
  const value =
    metadata && typeof metadata === 'object'
      ? (metadata as Record<string, unknown>)[key]
      : params[`metadata[${key}]`];
  return typeof value === 'string' && EMAIL.safeParse(value).success ? value : null;
}

/** The decision that let the action run or be refused: the one made at approval, when there was one. */
function finalDecision(action: ActionRow): StoredDecision {
  const d = JSON.parse(action.decision) as StoredDecision;
  return d.at_approval ?? d;
}

/** Whether this settled action's customer hears about it, and whether the reviewers' notes go with it. */
export function noticeFor(action: ActionRow, settings: CustomerNoticeSettings): { withNote: boolean } | null {
  if (action.status !== 'completed' && action.status !== 'rejected') return null;
  // Shadow-passed actions were let through to watch a policy, not to tell customers; generic calls have none.
  if (action.shadow !== 0 || action.mode !== 'stripe') return null;
  const asked = finalDecision(action).customer_notice;
  const byKind = settings.kinds.includes(action.kind);
  if (!asked && !byKind) return null;
  return { withNote: asked === 'with_note' || (asked === undefined && settings.note) };
}

/** Queues a settled action's customer notice in the transaction that settles it. Queuing it again adds nothing. */
export class CustomerNoticeOutbox implements OutcomeNotifications {
  constructor(readonly settings: CustomerNoticeSettings) {}

  async enqueue(tx: Store, row: ActionRow, at: string): Promise<void> {
    if (!noticeFor(row, this.settings)) return;
    const named = metadataEmail(row, this.settings.emailMetadataKey);
    const recipient = named ?? (row.customer ? `customer:${row.customer}` : null);
    if (!recipient) return; // no one to tell: the receipt shows no notice
    await insertNotifications(tx, [
      {
        ...queuedColumns(newId('ntf'), new Date().toISOString(), at),
        action_id: row.id,
        event: CUSTOMER_NOTICE,
        version: row.request_hash,
        channel: CUSTOMER_CHANNEL,
        recipient,
        reviewer_id: null,
        payload: null,
        status: 'queued',
      },
    ]);
  }
}

export interface NoticeFacts {
  /** The address to write to. */
  to: string;
  customerName: string | null;
  /** The reviewers' notes, already filtered by whether they may go. */
  notes: string[];
}

/** The email, rendered as text: templates are plain text, so nothing is HTML-escaped. */
export function composeNotice(
  action: ActionRow,
  outcome: NoticeOutcome,
  facts: NoticeFacts,
  templates: Record<NoticeOutcome, NoticeTemplate>,
): EmailMessage {
  const view = {
    amount: formatMoney(action.amount === null ? null : Number(action.amount), action.currency),
    kind: kindLabel(action.kind).toLowerCase(),
    outcome,
    note: facts.notes.join('\n'),
    customer_name: facts.customerName ?? '',
    charge: chargeOf(action) ?? '',
    reference: action.id,
  };
  const render = (t: string) => renderText(t, view);
  const template = templates[outcome];
  const text = render(template.text).replace(/\n{3,}/g, '\n\n');
  return { to: facts.to, subject: render(template.subject), text, html: textAsHtml(text) };
}

function chargeOf(action: ActionRow): string | null {
  try {
    const charge = (JSON.parse(action.params) as Record<string, unknown>)['charge'];
    return typeof charge === 'string' ? charge : null;
  } catch {
    return null;
  }
}

function textAsHtml(text: string): string {
  return `<div style="font:14px/1.5 system-ui,sans-serif;white-space:pre-wrap">${escapeHtml(text)}</div>`;
}

/** The Stripe customer's address and name; null fields when it has none. */
export interface CustomerContact {
  email: string | null;
  name: string | null;
}

/** What delivering customer notices needs: the settings, a mailer, and a read of the Stripe customer. */
export interface CustomerNotices {
  settings: CustomerNoticeSettings;
  mail: Pick<EmailChannel, 'send' | 'close'>;
  /** Read-only, with the upstream key; null when the look-up failed (the try is repeated later). */
  contact(
    customer: string,
    scope: { stripeAccount: string | null; stripeContext: string | null },
  ): Promise<CustomerContact | null>;
}

/** The settings from the config, with the built-in templates where it gives none. */
export function customerNoticeSettings(config: {
  kinds: string[];
  note: boolean;
  email_metadata_key: string;
  templates: Partial<Record<NoticeOutcome, NoticeTemplate>>;
}): CustomerNoticeSettings {
  return {
    kinds: config.kinds,
    note: config.note,
    emailMetadataKey: config.email_metadata_key,
    templates: { ...DEFAULT_TEMPLATES, ...config.templates },
  };
}
