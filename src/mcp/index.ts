export {
  type AirlockCall,
  type AirlockRequest,
  type AirlockResponse,
  assertAgentPath,
  CallError,
  fetchCall,
  injectCall,
} from './call.ts';
export { MCP_PATH, registerMcp } from './http.ts';
export { runStdioMcp } from './stdio.ts';
export { createMcpServer, TOOLS } from './tools.ts';
