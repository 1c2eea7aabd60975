// The Airlock TypeScript SDK (`airlock/sdk`). Imports nothing of the server at run time.
export {
  AirlockClient,
  type AirlockClientOptions,
  type FailOpen,
  newIdempotencyKey,
  type SyntheticAction,
  type SyntheticList,
} from './client.ts';
export {
  AirlockApiError,
  AirlockUnavailableError,
  AirlockWaitTimeoutError,
  type WebhookErrorReason,
  WebhookVerificationError,
} from './errors.ts';
export type {
  Action,
  ActionObject,
  CallbackDelivery,
  CallbackEvent,
  CreateActionRequest,
  CreateDecisionRequest,
  DecideRequest,
  Decision,
  DecisionObject,
  LedgerEvent,
  List,
  ListParams,
  RejectRequest,
  Status,
  Synthetic,
  SyntheticDecision,
} from './types.ts';
export { SIGNATURE_HEADER, type VerifyOptions, verifyWebhook } from './webhooks.ts';
