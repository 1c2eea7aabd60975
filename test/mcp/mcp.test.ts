// The MCP server through the official MCP client: over streamable HTTP at /mcp, and over stdio (`airlock mcp`).
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchCall, injectCall } from '../../src/mcp/call.ts';
import { createMcpServer } from '../../src/mcp/tools.ts';
import { ROOT } from '../helpers/process.ts';
import { charge, type Stack, startStack } from '../helpers/stack.ts';

let stack: Stack;
let client: Client;

async function httpClient(key: string): Promise<Client> {
  const c = new Client({ name: 'test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`${stack.airlock.url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${key}` } },
  });
  await c.connect(transport);
  return c;
}

async function call(c: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await c.callTool({ name, arguments: args })) as CallToolResult;
}

function text(r: CallToolResult): string {
  return r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

function refundsOf(chargeId: string): number {
  return stack.sandbox.list('refund').filter((r) => r['charge'] === chargeId).length;
}

beforeAll(async () => {
  stack = await startStack();
  client = await httpClient(stack.agentKey);
});
afterAll(async () => {
  await client?.close();
  await stack?.close();
});

describe('MCP over streamable HTTP', () => {
  it('lists Stripe agent toolkit names plus payouts, transfers, a generic request and action tools, none that decide', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const expected of [
      'create_refund',
      'cancel_subscription',
      'update_subscription',
      'retrieve_balance',
      'create_customer',
      'list_customers',
      'create_payout',
      'create_transfer',
      'stripe_request',
      'get_action',
      'wait_for_action',
      'request_decision',
    ]) {
      expect(names).toContain(expected);
    }
    expect(names.filter((n) => /approve|reject/i.test(n))).toEqual([]);
    const refund = tools.find((t) => t.name === 'create_refund')!;
    expect(Object.keys(refund.inputSchema.properties ?? {})).toEqual(
      expect.arrayContaining(['payment_intent', 'charge', 'amount', 'idempotency_key']),
    );
  });

  it('holds a $600 refund, says it awaits a person and must not be retried, then completes after approval', async () => {
    const ch = await charge(stack, 60000);
    const held = await call(client, 'create_refund', { charge: ch.id, amount: 60000 });
    expect(held.isError).toBe(false);
    const actionId = (held.structuredContent as { action: string }).action;
    expect(actionId).toMatch(/^act_/);
    expect(held.structuredContent).toMatchObject({ status: 'awaiting_approval', retry: false });
    expect(text(held)).toContain(actionId);
    expect(text(held)).toMatch(/awaits a person's approval/);
    expect(text(held)).toMatch(/Do NOT retry/);
    expect(refundsOf(ch.id)).toBe(0);

    const pending = await call(client, 'get_action', { id: actionId });
    expect(pending.structuredContent).toMatchObject({ status: 'awaiting_approval', action: actionId });

    const approved = await stack.api(`/api/actions/${actionId}/approve`, {
      method: 'POST',
      body: { note: 'verified' },
    });
    expect(approved.status).toBe(200);

    const done = await call(client, 'wait_for_action', { id: actionId, timeout_seconds: 20 });
    expect(done.isError).toBe(false);
    const action = (done.structuredContent as { object: any }).object;
    expect(action.status).toBe('completed');
    expect(action.response_body.object).toBe('refund');
    expect(action.response_body.amount).toBe(60000);
    expect(refundsOf(ch.id)).toBe(1);
  });

  it('executes an allowed $20 refund and answers with Stripe’s refund; the same idempotency_key does not refund twice', async () => {
    const ch = await charge(stack, 5000);
    const first = await call(client, 'create_refund', {
      charge: ch.id,
      amount: 2000,
      idempotency_key: 'mcp-refund-1',
    });
    expect(first.isError).toBe(false);
    const s1 = first.structuredContent as { status: string; action: string; response: any };
    expect(s1.status).toBe('completed');
    expect(s1.action).toMatch(/^act_/);
    expect(s1.response.object).toBe('refund');
    const again = await call(client, 'create_refund', {
      charge: ch.id,
      amount: 2000,
      idempotency_key: 'mcp-refund-1',
    });
    const s2 = again.structuredContent as { action: string; response: any };
    expect(s2.action).toBe(s1.action);
    expect(s2.response.id).toBe(s1.response.id);
    expect(refundsOf(ch.id)).toBe(1);
  });

  it('refuses every tool call that tries to approve, and the held action stays held', async () => {
    const ch = await charge(stack, 55000);
    const held = await call(client, 'create_refund', { charge: ch.id, amount: 55000 });
    const actionId = (held.structuredContent as { action: string }).action;
    expect(actionId).toMatch(/^act_/);

    const attempts: [string, Record<string, unknown>][] = [
      ['stripe_request', { method: 'POST', path: `/api/actions/${actionId}/approve` }],
      ['stripe_request', { method: 'POST', path: `/v1/../api/actions/${actionId}/approve` }],
      ['stripe_request', { method: 'POST', path: `/v1/actions/${actionId}/approve` }],
      ['approve_action', { id: actionId }],
      ['get_action', { id: `${actionId}/approve` }],
    ];
    for (const [name, args] of attempts) {
      const r = await call(client, name, args);
      expect(r.isError, `${name} ${JSON.stringify(args)}`).toBe(true);
    }
    const unknown = await call(client, 'approve_action', { id: actionId });
    expect(text(unknown)).toMatch(/approve_action not found/);

    const still = await stack.api(`/api/actions/${actionId}`);
    expect(still.body.status).toBe('awaiting_approval');
    expect(still.body.approvals).toEqual([]);
    expect(refundsOf(ch.id)).toBe(0);
  });

  it('answers bad arguments with an MCP error naming the field, and executes nothing', async () => {
    const ch = await charge(stack, 3000);
    const before = (await stack.api('/api/actions?limit=100')).body.data.length;

    const wrongType = await call(client, 'create_refund', { charge: ch.id, amount: 'lots' });
    expect(wrongType.isError).toBe(true);
    expect(text(wrongType)).toMatch(/amount/);

    const badId = await call(client, 'create_refund', { charge: 'pi_not_a_charge', amount: 100 });
    expect(badId.isError).toBe(true);
    expect(text(badId)).toMatch(/charge/);

    const neither = await call(client, 'create_refund', { amount: 100 });
    expect(neither.isError).toBe(true);
    expect(text(neither)).toMatch(/payment_intent/);

    const missing = await call(client, 'create_payout', { currency: 'usd' });
    expect(missing.isError).toBe(true);
    expect(text(missing)).toMatch(/amount/);

    const badPath = await call(client, 'stripe_request', { method: 'PATCH', path: '/v1/refunds' });
    expect(badPath.isError).toBe(true);
    expect(text(badPath)).toMatch(/method/);

    expect((await stack.api('/api/actions?limit=100')).body.data.length).toBe(before);
    expect(refundsOf(ch.id)).toBe(0);
  });

  it('reports a blocked or rejected call as not executed, with the reason', async () => {
    const ch = await charge(stack, 52000);
    const held = await call(client, 'create_refund', {
      charge: ch.id,
      amount: 52000,
      idempotency_key: 'rej-1',
    });
    const actionId = (held.structuredContent as { action: string }).action;
    const rejected = await stack.api(`/api/actions/${actionId}/reject`, {
      method: 'POST',
      body: { note: 'no' },
    });
    expect(rejected.status).toBe(200);
    const retried = await call(client, 'create_refund', {
      charge: ch.id,
      amount: 52000,
      idempotency_key: 'rej-1',
    });
    expect(retried.isError).toBe(true);
    expect(retried.structuredContent).toMatchObject({ status: 'rejected', action: actionId, retry: false });
    expect(text(retried)).toMatch(/NOT executed/);
  });

  it('passes reads through: retrieve_balance returns Stripe’s balance object', async () => {
    const r = await call(client, 'retrieve_balance', {});
    expect(r.isError).toBe(false);
    expect((r.structuredContent as { response: any }).response.object).toBe('balance');
  });

  it('asks for a decision without executing anything', async () => {
    const r = await call(client, 'request_decision', {
      intent: { kind: 'refund.create', amount: 60000, currency: 'usd' },
      summary: 'Refund order 42',
      idempotency_key: 'mcp-decision-1',
    });
    // Needs POST /api/decisions; until it lands this answers 404 and the tool reports that as an error.
    expect(r.isError).toBe(false);
    const s = r.structuredContent as { status: string; object: any };
    expect(s.object.object).toBe('decision');
    expect(s.object.outcome).toBe('review');
    expect(s.status).toBe('awaiting_approval');
  });

  it('refuses reviewer tokens and missing credentials at /mcp', async () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    });
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const asReviewer = await fetch(`${stack.airlock.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, authorization: `Bearer ${stack.reviewerToken}` },
      body,
    });
    expect(asReviewer.status).toBe(403);
    const anonymous = await fetch(`${stack.airlock.url}/mcp`, { method: 'POST', headers, body });
    expect(anonymous.status).toBe(401);
    const asAgent = await fetch(`${stack.airlock.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, authorization: `Bearer ${stack.agentKey}` },
      body,
    });
    expect(asAgent.status).toBe(200);
    expect((await asAgent.json()).result.serverInfo.name).toBe('airlock');
  });
});

describe('MCP over stdio (airlock mcp)', () => {
  it('holds a $600 refund, and wait_for_action returns completed after a reviewer approves', async () => {
    const stdio = new Client({ name: 'stdio-agent', version: '1.0.0' });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [join(ROOT, 'bin', 'airlock.mjs'), 'mcp'],
      cwd: ROOT,
      env: {
        ...(process.env as Record<string, string>),
        AIRLOCK_URL: stack.airlock.url,
        AIRLOCK_AGENT_KEY: stack.agentKey,
      },
      stderr: 'pipe',
    });
    await stdio.connect(transport);
    try {
      const ch = await charge(stack, 61000);
      const held = await call(stdio, 'create_refund', { charge: ch.id, amount: 61000 });
      expect(held.isError).toBe(false);
      const actionId = (held.structuredContent as { action: string }).action;
      expect(actionId).toMatch(/^act_/);
      expect(text(held)).toMatch(/awaits a person's approval/);
      expect(refundsOf(ch.id)).toBe(0);

      const refused = await call(stdio, 'stripe_request', {
        method: 'POST',
        path: `/api/actions/${actionId}/approve`,
      });
      expect(refused.isError).toBe(true);

      expect((await stack.api(`/api/actions/${actionId}/approve`, { method: 'POST', body: {} })).status).toBe(
        200,
      );
      const done = await call(stdio, 'wait_for_action', { id: actionId, timeout_seconds: 20 });
      expect((done.structuredContent as { status: string }).status).toBe('completed');
      expect(refundsOf(ch.id)).toBe(1);
    } finally {
      await stdio.close();
    }
  }, 60_000);
});

describe('MCP in-process (in-memory transport, tools calling the app through inject)', () => {
  it('holds a $600 refund and reports completed after a reviewer approves; the agent key rides along', async () => {
    const server = createMcpServer(injectCall(stack.airlock.app, `Bearer ${stack.agentKey}`));
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const local = new Client({ name: 'in-process', version: '1.0.0' });
    await local.connect(clientSide);
    try {
      const ch = await charge(stack, 60500);
      const held = await call(local, 'create_refund', { charge: ch.id, amount: 60500 });
      const actionId = (held.structuredContent as { action: string }).action;
      expect(held.structuredContent).toMatchObject({ status: 'awaiting_approval', retry: false });
      const seen = await stack.api(`/api/actions/${actionId}`);
      expect(seen.body.agent.name).toBe('support-bot');
      await stack.api(`/api/actions/${actionId}/approve`, { method: 'POST', body: {} });
      const done = await call(local, 'wait_for_action', { id: actionId, timeout_seconds: 20 });
      expect((done.structuredContent as { status: string }).status).toBe('completed');
    } finally {
      await local.close();
      await server.close();
    }
  });

  it('a server built with a reviewer token still cannot approve: the Stripe proxy refuses it', async () => {
    const server = createMcpServer(injectCall(stack.airlock.app, `Bearer ${stack.reviewerToken}`));
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const local = new Client({ name: 'in-process', version: '1.0.0' });
    await local.connect(clientSide);
    try {
      const r = await call(local, 'retrieve_balance', {});
      expect(r.isError).toBe(true);
      expect(r.structuredContent).toMatchObject({ http_status: 403, code: 'forbidden' });
    } finally {
      await local.close();
      await server.close();
    }
  });
});

describe('MCP failure edges', () => {
  it('answers malformed JSON at /mcp with a 400, not a crash', async () => {
    const res = await fetch(`${stack.airlock.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${stack.agentKey}`,
      },
      body: '{"jsonrpc": "2.0", "id": 1, "method": ',
    });
    expect(res.status).toBe(400);
    expect((await fetch(`${stack.airlock.url}/healthz`)).status).toBe(200);
  });

  it('reports an unreachable Airlock (stdio mode) as a tool error that says to retry only with the same key', async () => {
    const server = createMcpServer(fetchCall({ baseUrl: 'http://127.0.0.1:1', agentKey: stack.agentKey }));
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const local = new Client({ name: 'offline', version: '1.0.0' });
    await local.connect(clientSide);
    try {
      const r = await call(local, 'create_refund', { charge: 'ch_123', amount: 100 });
      expect(r.isError).toBe(true);
      expect(r.structuredContent).toMatchObject({ status: 'airlock_unreachable' });
      expect(text(r)).toMatch(/same idempotency_key/);
    } finally {
      await local.close();
      await server.close();
    }
  });
});
