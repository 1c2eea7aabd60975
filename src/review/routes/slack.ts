import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { verifySlackSignature } from '../../auth/slack-signature.ts';
import { linkSlackUser } from '../../auth/slack-users.ts';
import type { Reviewer } from '../../engine/engine.ts';
import { holdMessage, SLACK_BUTTONS, type SlackApp } from '../../notify/slack-app.ts';
import { CONTEXT_TIMEOUT_MS, summarize } from '../../notify/summary.ts';
import { votes } from '../pages/parts.ts';
import { loadView } from '../queries.ts';
import { isUserError, type ReviewContext } from './context.ts';

export const SLACK_INTERACTIONS_PATH = '/slack/interactions';

// What Airlock reads of Slack's block_actions payload; anything else in it is ignored.
const Payload = z.object({
  type: z.string(),
  user: z.object({ id: z.string().min(1) }),
  channel: z.object({ id: z.string() }).optional(),
  container: z.object({ channel_id: z.string().optional(), message_ts: z.string().optional() }).optional(),
  message: z.object({ ts: z.string() }).optional(),
  actions: z.array(z.object({ action_id: z.string(), value: z.string().optional() })).default([]),
});

/**
 * Slack's interaction requests: a reviewer pressed Approve or Reject on a hold's message. The request must carry
 * Slack's v0 signature, made within five minutes, and not seen before; the Slack user must be linked to a reviewer.
 * The vote goes through the engine like any other (quorum, self-approval, eligibility, freezes), and the message is
 * updated in place. A press that changes nothing is told why in a reply only the presser sees.
 */
export function registerSlack(
  app: FastifyInstance,
  ctx: ReviewContext,
  slack: SlackApp,
  publicUrl: string | null,
) {
  const secret = slack.config.signing_secret;
  const seen = new Map<string, number>(); // signature → when it leaves the window; replays inside it are refused

  app.register(async (scope) => {
    // The signature covers the body's exact bytes, so this route reads it as text and parses it itself.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) =>
      done(null, body),
    );

    scope.post(SLACK_INTERACTIONS_PATH, async (request, reply) => {
      const raw = typeof request.body === 'string' ? request.body : '';
      const now = ctx.now();
      const signature = header(request, 'x-slack-signature');
      const check = verifySlackSignature(
        secret,
        raw,
        {
          timestamp: header(request, 'x-slack-request-timestamp'),
          signature,
        },
        now,
      );
      if (!check.ok) {
        ctx.log.warn({ reason: check.reason }, 'refused a Slack interaction: bad signature');
        return reply.code(401).send(slackError('slack_signature_invalid', `Slack signature ${check.reason}`));
      }
      for (const [sig, until] of seen) if (until <= now.getTime()) seen.delete(sig);
      if (seen.has(signature!)) {
        ctx.log.warn('refused a replayed Slack interaction');
        return reply.code(401).send(slackError('slack_replayed', 'This Slack request was already received'));
      }
      seen.set(signature!, now.getTime() + 2 * 300_000);

      const parsed = Payload.safeParse(parseJson(new URLSearchParams(raw).get('payload')));
      if (!parsed.success)
        return reply.code(400).send(slackError('parameter_invalid', 'No block_actions payload'));
      const p = parsed.data;
      const pressed = p.actions[0];
      const verb =
        pressed?.action_id === SLACK_BUTTONS.approve
          ? 'approve'
          : pressed?.action_id === SLACK_BUTTONS.reject
            ? 'reject'
            : null;
      // Open receipt is a link: Slack tells us it was pressed, and there is nothing to do.
      if (p.type !== 'block_actions' || !verb || !pressed?.value) return reply.code(200).send();
      const actionId = pressed.value;
      const channel = p.channel?.id ?? p.container?.channel_id ?? slack.config.channel;
      const ts = p.container?.message_ts ?? p.message?.ts;
      const tell = (text: string) =>
        slack.ephemeral(channel, p.user.id, text).catch((err: Error) => {
          ctx.log.warn({ err: err.message }, 'could not send a Slack ephemeral reply');
        });

      const reviewer = await reviewerFor(p.user.id);
      if (!reviewer) {
        await tell(
          'Your Slack account is not linked to an Airlock reviewer, so this press changed nothing. ' +
            'Ask an operator to run: npx airlock reviewers link-slack --email YOU --slack-user ' +
            p.user.id,
        );
        return reply.code(200).send();
      }
      try {
        const row =
          verb === 'approve'
            ? await ctx.engine.approve(actionId, reviewer, null, null, { requestId: request.id })
            : await ctx.engine.reject(actionId, reviewer, null, { requestId: request.id });
        if (row.status === 'pending') void ctx.dispatcher.drive(actionId);
      } catch (err) {
        if (!isUserError(ctx, err)) throw err;
        await tell(`Airlock did not record your ${verb}: ${err.message}`);
        return reply.code(200).send();
      }
      if (ts) await updateMessage(actionId, channel, ts);
      return reply.code(200).send();
    });
  });

  // A decision made anywhere else (dashboard, email link, API, expiry) updates the hold's messages too.
  const onChange = (c: { id: string; status: string }) => {
    if (c.status === 'awaiting_approval') return;
    void ctx.engine.store.slack
      .messagesFor(c.id)
      .then((messages) => Promise.all(messages.map((m) => updateMessage(c.id, m.channel, m.ts))))
      .catch((err: Error) =>
        ctx.log.warn({ err: err.message, action: c.id }, 'could not update the Slack message'),
      );
  };
  ctx.engine.changes.on('change', onChange);
  app.addHook('onClose', async () => {
    ctx.engine.changes.off('change', onChange);
  });

  /** Where receipt links point: the public URL, or the address this server listens on. */
  function baseUrl(): string {
    if (publicUrl) return publicUrl.replace(/\/+$/, '');
    const address = app.server.address();
    return typeof address === 'object' && address
      ? `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`
      : '';
  }

  async function reviewerFor(slackUser: string): Promise<Reviewer | null> {
    const linked = await ctx.engine.store.slack.reviewerFor(slackUser);
    if (linked) return linked;
    if (!slack.config.link_by_email) return null;
    const email = await slack.confirmedEmail(slackUser).catch(() => null);
    if (!email) return null;
    const found = await ctx.engine.store.credentials.reviewerForLogin(email);
    if (!found) return null;
    await linkSlackUser(ctx.engine.store, found.email, slackUser, 'email', ctx.now());
    return (await ctx.engine.store.slack.reviewerFor(slackUser)) ?? null;
  }

  async function updateMessage(actionId: string, channel: string, ts: string): Promise<void> {
    try {
      await update(actionId, channel, ts);
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message, action: actionId }, 'could not update the Slack message');
    }
  }

  async function update(actionId: string, channel: string, ts: string) {
    const v = await loadView(ctx.engine, ctx.reviews, actionId);
    const base = baseUrl();
    const who = v.agent ? `agent ${v.agent.name}` : v.requester ? `reviewer ${v.requester}` : 'unknown';
    const { approvals, required } = votes(v);
    const decided = v.row.status === 'rejected' ? 'reject' : 'approve';
    const by = [...new Set(v.approvals.filter((a) => a.decision === decided).map((a) => a.reviewer_email))];
    const standing = { status: v.row.status, approvals, required, by };
    // The updated message keeps the context it was posted with (the look-ups are cached).
    const context = await ctx.engine.context(v.row, { timeoutMs: CONTEXT_TIMEOUT_MS }).catch(() => null);
    const summary = summarize(v.row, who, ctx.now(), base, 'held', context);
    await slack.update(channel, ts, holdMessage(channel, summary, standing));
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' ? v : undefined;
}

function parseJson(text: string | null): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function slackError(code: string, message: string) {
  return { error: { type: 'invalid_request_error', code, message } };
}
