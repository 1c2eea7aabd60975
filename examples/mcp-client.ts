// An MCP client (the official SDK) using Airlock's tools over streamable HTTP.
// AIRLOCK_URL=… AIRLOCK_AGENT_KEY=ak_… CHARGE=ch_… npx tsx examples/mcp-client.ts
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

const url = new URL('/mcp', process.env['AIRLOCK_URL'] ?? 'http://127.0.0.1:4700');
const key = process.env['AIRLOCK_AGENT_KEY'];
const charge = process.env['CHARGE'];
if (!key || !charge) throw new Error('set AIRLOCK_AGENT_KEY and CHARGE');

const client = new Client({ name: 'airlock-example', version: '1.0.0' });
await client.connect(
  new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${key}` } } }),
);
try {
  const { tools } = await client.listTools();
  console.log(`tools ${tools.map((t) => t.name).join(',')}`);

  const small = (await client.callTool({
    name: 'create_refund',
    arguments: { charge, amount: 1500 },
  })) as CallToolResult;
  console.log(`small ${JSON.stringify(small.structuredContent)}`);

  // A held call says so and must not be retried; the agent can wait for the person's decision.
  const big = (await client.callTool({
    name: 'create_refund',
    arguments: { charge, amount: 55000 },
  })) as CallToolResult;
  const held = big.structuredContent as { action?: string; status?: string };
  console.log(`big ${held.status} ${held.action}`);
  if (held.status === 'awaiting_approval' && held.action) {
    const waited = (await client.callTool({
      name: 'wait_for_action',
      arguments: { id: held.action, timeout_seconds: 50 },
    })) as CallToolResult;
    console.log(`waited ${JSON.stringify(waited.structuredContent)}`);
  }
} finally {
  await client.close();
}
