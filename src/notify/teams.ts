import { type Addressee, type Channel, Undeliverable } from './channel.ts';
import type { Summary } from './summary.ts';

/** The parts of an Adaptive Card (schema 1.4) that a hold and an alert need. */
interface AdaptiveCard {
  $schema: 'http://adaptivecards.io/schemas/adaptive-card.json';
  type: 'AdaptiveCard';
  version: '1.4';
  body: Array<
    | { type: 'TextBlock'; text: string; weight?: 'Bolder'; size?: 'Medium'; wrap: true }
    | { type: 'FactSet'; facts: { title: string; value: string }[] }
  >;
  actions: { type: 'Action.OpenUrl'; title: string; url: string }[];
}

/**
 * The body both Teams incoming webhooks and Power Automate "when a Teams webhook request is received" flows accept: a
 * message whose one attachment is the card.
 */
export interface TeamsMessage {
  type: 'message';
  attachments: {
    contentType: 'application/vnd.microsoft.card.adaptive';
    contentUrl: null;
    content: AdaptiveCard;
  }[];
}

/** A summary line `Label: value` becomes a fact; the others stay text. */
function fact(line: string): { title: string; value: string } | null {
  const at = line.indexOf(': ');
  return at > 0 && at < 24 ? { title: line.slice(0, at), value: line.slice(at + 2) } : null;
}

/** The summary and a link to the receipt, as a card: never parameters, secrets or decision links. */
export function teamsMessage(s: Summary): TeamsMessage {
  const facts = s.lines.map(fact);
  const text = s.lines.filter((_, i) => facts[i] === null);
  return adaptiveCardMessage(
    [
      { type: 'TextBlock', text: `${s.headline}: ${s.title}`, weight: 'Bolder', size: 'Medium', wrap: true },
      ...text.map((t) => ({ type: 'TextBlock' as const, text: t, wrap: true as const })),
      { type: 'FactSet', facts: facts.filter((f): f is { title: string; value: string } => f !== null) },
    ],
    [{ type: 'Action.OpenUrl', title: 'Open the receipt to decide', url: s.receiptUrl }],
  );
}

/** A message whose one attachment is an Adaptive Card of `body` and `actions`. */
export function adaptiveCardMessage(
  body: AdaptiveCard['body'],
  actions: AdaptiveCard['actions'],
): TeamsMessage {
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body,
          actions,
        },
      },
    ],
  };
}

/**
 * One card per hold to a Teams incoming webhook or Workflows URL. Like Slack, a channel is a shared room, so the card
 * carries no decision links.
 */
export class TeamsChannel implements Channel<TeamsMessage> {
  readonly name = 'teams';

  constructor(
    readonly webhookUrl: string,
    readonly timeoutMs = 10_000,
  ) {}

  async recipients(): Promise<Addressee[]> {
    // The URL is a credential (it carries a signature), so the recipient is recorded by role.
    return [{ recipient: 'webhook', reviewerId: null }];
  }

  compose(summary: Summary): TeamsMessage {
    return teamsMessage(summary);
  }

  async send(message: TeamsMessage): Promise<{ status: number | null }> {
    const res = await fetch(this.webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    // Incoming webhooks answer 200, Workflows 202.
    if (res.ok) return { status: res.status };
    const error = `Teams webhook answered ${res.status}`;
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)
      throw new Undeliverable(error, res.status);
    throw Object.assign(new Error(error), { status: res.status });
  }
}
