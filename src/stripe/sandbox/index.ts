export { SANDBOX_LIMITS } from './body.ts';
export { StripeApiError } from './errors.ts';
export { type PlacedSandbox, startSandboxBeside } from './port.ts';
export {
  type Sandbox,
  type SandboxFaults,
  type SandboxOptions,
  type SandboxRequestLog,
  startSandbox,
} from './server.ts';
export { newWebhookSecret } from './webhooks.ts';
