import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One Web API call Slack's client made, with its arguments decoded. */
export interface SlackCall {
  method: string;
  token: string | null;
  args: Record<string, unknown>;
  /** What the stand-in answered. */
  answer: Record<string, unknown>;
}

export interface SlackStandIn {
  /** What to give the client as slackApiUrl. */
  apiUrl: string;
  calls: SlackCall[];
  /** users.info answers, by user id. */
  users: Map<string, { email: string; confirmed: boolean }>;
  callsTo(method: string): SlackCall[];
  close(): Promise<void>;
}

/**
 * A local stand-in for Slack's Web API over real HTTP: it records each call @slack/web-api makes (form-encoded, with
 * `blocks` as JSON, as the client sends them) and answers as Slack does, `{"ok": true, …}`.
 */
export async function startSlackStandIn(): Promise<SlackStandIn> {
  const calls: SlackCall[] = [];
  const users = new Map<string, { email: string; confirmed: boolean }>();
  let seq = 0;
  const server = createServer(async (req, res) => {
    const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0]!;
    const args = decode(req, await read(req));
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '') || null;
    let body: Record<string, unknown> = { ok: true };
    if (method === 'chat.postMessage')
      body = { ok: true, channel: args['channel'], ts: `1700000000.${String(++seq).padStart(6, '0')}` };
    else if (method === 'chat.update') body = { ok: true, channel: args['channel'], ts: args['ts'] };
    else if (method === 'chat.postEphemeral')
      body = { ok: true, message_ts: `1700000001.${String(++seq).padStart(6, '0')}` };
    else if (method === 'users.info') {
      const u = users.get(String(args['user']));
      body = u
        ? {
            ok: true,
            user: { id: args['user'], is_email_confirmed: u.confirmed, profile: { email: u.email } },
          }
        : { ok: false, error: 'user_not_found' };
    }
    calls.push({ method, token, args, answer: body });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    calls,
    users,
    callsTo: (m) => calls.filter((c) => c.method === m),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function read(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (d) => {
      s += d;
    });
    req.on('end', () => resolve(s));
  });
}

function decode(req: IncomingMessage, body: string): Record<string, unknown> {
  if ((req.headers['content-type'] ?? '').includes('application/json')) return JSON.parse(body || '{}');
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    out[k] = (k === 'blocks' || k === 'attachments') && v.startsWith('[') ? JSON.parse(v) : v;
  }
  return out;
}

/** A block_actions request as Slack sends it: form-encoded `payload`, signed v0 with the app's signing secret. */
export function slackInteraction(
  secret: string,
  p: {
    user: string;
    actionId: string;
    button: 'airlock_approve' | 'airlock_reject' | 'airlock_open';
    channel: string;
    ts: string;
  },
  at = new Date(),
): { body: string; headers: Record<string, string> } {
  const payload = {
    type: 'block_actions',
    user: { id: p.user, username: p.user.toLowerCase(), team_id: 'T0001' },
    team: { id: 'T0001' },
    channel: { id: p.channel },
    container: { type: 'message', channel_id: p.channel, message_ts: p.ts },
    message: { ts: p.ts },
    response_url: 'https://hooks.slack.invalid/actions/T0001/1/x',
    actions: [
      {
        type: 'button',
        action_id: p.button,
        block_id: 'airlock_decide',
        value: p.actionId,
        action_ts: String(at.getTime() / 1000),
      },
    ],
  };
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  return {
    body,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': timestamp,
      'x-slack-signature': signature,
    },
  };
}
