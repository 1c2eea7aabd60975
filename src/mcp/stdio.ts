import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { fetchCall } from './call.ts';
import { createMcpServer } from './tools.ts';

export interface StdioOptions {
  url: string;
  agentKey: string;
}

/**
 * `airlock mcp`: an MCP server on stdin/stdout whose tools call a running Airlock over HTTP with the agent's key.
 * Resolves when the client closes the stream. Nothing else may write to stdout here: it carries the protocol.
 */
export async function runStdioMcp(opts: StdioOptions): Promise<void> {
  const server = createMcpServer(fetchCall({ baseUrl: opts.url, agentKey: opts.agentKey }));
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
  });
  await server.connect(transport);
  process.stdin.once('end', () => void server.close());
  await closed;
}
