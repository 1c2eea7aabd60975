import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AgentKeyCache, authenticateAgent } from '../auth/agent-keys.ts';
import type { Engine } from '../engine/engine.ts';
import { injectCall } from './call.ts';
import { createMcpServer } from './tools.ts';

export const MCP_PATH = '/mcp';

/**
 * Streamable HTTP at /mcp, stateless: each POST carries the agent key and gets its own server, whose tools call
 * this same app in-process with that key, so MCP adds no second path to the engine.
 */
export function registerMcp(app: FastifyInstance, engine: Engine, log: Logger): void {
  const keys = new AgentKeyCache(engine);
  app.addHook('onClose', async () => keys.close());

  app.post(MCP_PATH, async (request, reply) => {
    // Reviewer tokens are refused here (403): an MCP client is an agent, and agents cannot decide.
    await authenticateAgent(keys, request.headers.authorization);
    const authorization = request.headers.authorization!;
    const server = createMcpServer(injectCall(app, authorization));
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    reply.hijack();
    reply.raw.on('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(request.raw, reply.raw, request.body);
    } catch (err) {
      log.error({ err }, 'MCP request failed');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(500, { 'content-type': 'application/json' });
        reply.raw.end(
          JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: null }),
        );
      }
    }
  });

  // Stateless: no server-initiated stream to resume and no session to delete.
  for (const method of ['GET', 'DELETE'] as const) {
    app.route({
      method,
      url: MCP_PATH,
      handler: async (_request, reply) => {
        reply.header('allow', 'POST');
        return reply.code(405).send({
          jsonrpc: '2.0',
          error: { code: -32000, message: 'Method not allowed: this MCP endpoint is stateless; POST only.' },
          id: null,
        });
      },
    });
  }
}
