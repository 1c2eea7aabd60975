import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { AirlockResponse } from './call.ts';

interface WireError {
  code?: string;
  message?: string;
  param?: string;
  airlock_action?: string;
}

function errorOf(body: unknown): WireError | null {
  if (body && typeof body === 'object' && 'error' in body) {
    const e = (body as { error: unknown }).error;
    if (e && typeof e === 'object') return e as WireError;
  }
  return null;
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

function result(text: string, structured: Record<string, unknown>, isError = false): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured, isError };
}

export function heldResult(actionId: string, detail: string): CallToolResult {
  return result(
    `HELD FOR HUMAN APPROVAL: action ${actionId} awaits a person's approval and has NOT been executed. ` +
      `Do NOT retry this call: a retry cannot approve it. Call wait_for_action with id "${actionId}" to learn ` +
      `the outcome.${detail ? ` (${detail})` : ''}`,
    { status: 'awaiting_approval', action: actionId, retry: false },
  );
}

const REFUSED: Record<string, { status: string; label: string }> = {
  action_blocked: { status: 'blocked', label: 'BLOCKED by policy' },
  action_rejected: { status: 'rejected', label: 'REJECTED by a reviewer' },
  action_expired: { status: 'expired', label: 'EXPIRED without a decision' },
  action_cancelled: { status: 'cancelled', label: 'CANCELLED by the requester' },
};

/** What an agent reads after a Stripe call through the proxy: Stripe's answer, or why nothing happened. */
export function stripeResult(res: AirlockResponse): CallToolResult {
  const actionId = res.header('airlock-action') ?? null;
  if (res.status >= 200 && res.status < 300) {
    return result(`${actionId ? `Executed as ${actionId}. ` : ''}Stripe answered:\n${json(res.body)}`, {
      status: actionId ? 'completed' : 'ok',
      action: actionId,
      response: res.body,
    });
  }
  const err = errorOf(res.body);
  const id = err?.airlock_action ?? actionId;
  if (err?.code === 'approval_required' && id) return heldResult(id, err.message ?? '');
  const refused = err?.code ? REFUSED[err.code] : undefined;
  if (refused && id) {
    return result(
      `${refused.label}: action ${id} was NOT executed. ${err?.message ?? ''} Do not retry this call.`,
      { status: refused.status, action: id, reason: err?.message ?? null, retry: false },
      true,
    );
  }
  if (err?.code === 'action_in_progress' && id) {
    return result(
      `Action ${id} is approved and being executed. Call wait_for_action with id "${id}" for Stripe's answer.`,
      { status: 'in_progress', action: id },
    );
  }
  return errorResult(res);
}

export function errorResult(res: AirlockResponse): CallToolResult {
  const err = errorOf(res.body);
  const param = err?.param ? ` (parameter: ${err.param})` : '';
  const text = err
    ? `Error ${res.status} ${err.code ?? ''}: ${err.message ?? ''}${param}`
    : `Error ${res.status}: ${json(res.body)}`;
  return result(
    text,
    { status: 'error', http_status: res.status, code: err?.code ?? null, param: err?.param ?? null },
    true,
  );
}

interface ActionLike {
  id?: string;
  object?: string;
  status?: string;
  response_code?: number | null;
  response_body?: unknown;
  decision?: { reason?: string } | null;
  last_error?: string | null;
}

const NEXT_STEP: Record<string, string> = {
  received: 'Being evaluated.',
  awaiting_approval:
    "Awaits a person's approval; NOT executed yet. Do not retry the original call; wait_for_action again later.",
  approved: 'Approved by a reviewer.',
  pending: 'Approved and queued for execution; wait_for_action again for the result.',
  completed: 'Executed; the upstream answer is response_body.',
  failed: 'Execution failed; see response_body or last_error.',
  blocked: 'Blocked by policy; NOT executed. Do not retry.',
  rejected: 'Rejected by a reviewer; NOT executed. Do not retry.',
  expired: 'Expired without a decision; NOT executed.',
  cancelled: 'Cancelled by the requester; NOT executed.',
};

/** An action or decision object from /api, with a one-line reading of its status first. */
export function apiResult(res: AirlockResponse): CallToolResult {
  if (res.status < 200 || res.status >= 300) return errorResult(res);
  const a = (res.body ?? {}) as ActionLike;
  const status = a.status ?? 'unknown';
  const what = a.object === 'decision' ? 'Decision' : 'Action';
  const text = `${what} ${a.id} is ${status}. ${NEXT_STEP[status] ?? ''}\n${json(res.body)}`;
  return result(text, { status, action: a.id ?? null, object: res.body }, status === 'failed');
}
