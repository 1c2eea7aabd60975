import type { Summary } from './summary.ts';

/** The Slack incoming-webhook body: the summary and a link to the receipt; never parameters or secrets. */
export function slackMessage(s: Summary): { text: string } {
  const lines = s.lines.map((l) => `• ${l}`).join('\n');
  return {
    text: `:lock: *Held for review:* ${s.title}\n${lines}\n<${s.receiptUrl}|Open the receipt to decide>`,
  };
}

export async function postToSlack(webhookUrl: string, s: Summary, timeoutMs = 10_000): Promise<void> {
  const res = await fetch(webhookUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(slackMessage(s)),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`Slack webhook answered ${res.status}`);
}
