// The Airlock TypeScript SDK (`airlock/sdk`). Imports nothing of the server at run time.

export {
  type Cheqpoint,
  type CheqpointAnswer,
  type CheqpointAsyncRequest,
  type CheqpointSyncRequest,
  createCheqpoint,
} from './cheqpoint.ts';
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
export {
  createSafeFetch,
  type SafeFetch,
  type SafeFetchApproveBody,
  type SafeFetchRequest,
} from './safefetch.ts';
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
  SafeFetchAction,
  Status,
  Synthetic,
  SyntheticDecision,
} from './types.ts';
export { SIGNATURE_HEADER, type VerifyOptions, verifyWebhook } from './webhooks.ts';
