import type { Logger } from 'pino';
import { AirlockError, StoreUnavailable } from '../errors.ts';
import { type ActionRow, asStoreError } from '../store/store.ts';
import { classify, isValidStripePath } from '../stripe/classify.ts';
import { bindRequest } from '../stripe/encoding.ts';
import type { Params } from '../stripe/params.ts';
import type { StripeUpstream, UpstreamResponse } from '../stripe/upstream.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { Engine } from './engine.ts';
import { isAnswered } from './status.ts';
import type { Agent } from './types.ts';

export const MAX_WAIT_SECONDS = 300;
// How long a repeat of an in-flight request waits for the first one's answer before being told to retry.
const REPEAT_WAIT_MS = 15_000;

export interface StripeCall {
  agent: Agent;
  method: string;
  path: string;
  params: Params;
  /** For reads: the query exactly as the caller sent it, forwarded unchanged. */
  rawQuery?: string;
  stripeAccount: string | null;
  /** Stripe-Context as received. */
  stripeContext?: string | null;
  stripeVersion: string | null;
  idempotencyKey: string | null;
  /** Seconds to wait for a reviewer when the call is held (Airlock-Wait). */
  waitSeconds: number;
  /** The agent's stated reason (Airlock-Reason): stored on the action for reviewers, never forwarded. */
  reason?: string | null;
  /** Where the action's outcome is POSTed (Airlock-Callback), already checked; never forwarded. */
  callbackUrl?: string | null;
  /** The HTTP request id, carried into the ledger. */
  requestId?: string | null;
}

/** Either a read answered straight from upstream, or an action in whatever status it reached. */
export type StripeCallOutcome =
  | { type: 'read'; response: UpstreamResponse }
  | { type: 'action'; action: ActionRow; created: boolean };

export interface GatewayOptions {
  /** While the store cannot be reached: refuse reads like writes (fail closed), or forward them unrecorded. */
  outageReads: 'refuse' | 'forward';
}

/**
 * One agent Stripe call, from classification to its outcome: used by the HTTP proxy and the MCP tools alike, so
 * every surface goes through the same engine and the same dispatcher.
 */
export class Gateway {
  constructor(
    readonly engine: Engine,
    readonly dispatcher: Dispatcher,
    readonly upstream: StripeUpstream,
    readonly log: Logger,
    readonly options: GatewayOptions = { outageReads: 'refuse' },
  ) {}

  async stripe(call: StripeCall): Promise<StripeCallOutcome> {
    const { method, path } = call;
    if (!isValidStripePath(path) || (method !== 'GET' && method !== 'POST' && method !== 'DELETE')) {
      throw new AirlockError('unknown_path', `Unrecognized request URL (${method}: ${path}).`);
    }
    // A write is encoded as it will be sent and read back before anything classifies it: the policy judges the
    // parameters Stripe will parse, and a body over Airlock's limits is refused here, before any record.
    const params = method === 'GET' ? call.params : bindRequest(method, path, call.params).params;
    const classification = classify({ method, path, params });
    const submission = {
      agent: call.agent,
      method,
      path,
      params,
      stripeAccount: call.stripeAccount,
      stripeContext: call.stripeContext ?? null,
      stripeVersion: call.stripeVersion,
      idempotencyKey: call.idempotencyKey,
      classification,
      requestId: call.requestId ?? null,
      details: call.reason ? { reason: call.reason } : null,
      callbackUrl: call.callbackUrl ?? null,
    };

    // Reads the policy allows go straight through; they are logged, not held in the action store.
    if (classification.read && (await this.engine.evaluate(submission)).decision.outcome === 'allow') {
      // Reads write nothing, so only a reachable store is asked for (a full SQLite disk still serves them). Under
      // traffic the last transaction vouches for it; an idle store is pinged.
      if (this.options.outageReads === 'refuse') await this.engine.store.ensureReachable();
      const response = await this.upstream.send({
        method,
        path,
        params: call.params,
        rawQuery: call.rawQuery,
        stripeAccount: call.stripeAccount,
        stripeContext: call.stripeContext ?? null,
        stripeVersion: call.stripeVersion,
      });
      this.log.info(
        { agent: call.agent.name, method, path, kind: classification.kind, status: response.status },
        'read forwarded',
      );
      return { type: 'read', response };
    }

    const { action, created, claimed } = await this.engine.submit({
      ...submission,
      claimFor: { owner: this.dispatcher.owner, leaseMs: this.dispatcher.options.leaseMs },
    });
    let row = action;
    const wait = Math.min(Math.max(0, call.waitSeconds), MAX_WAIT_SECONDS);
    try {
      if (row.status === 'pending') {
        const completed = created ? await this.dispatcher.drive(row.id, claimed ? row : null) : null;
        row = completed ?? (await this.engine.waitFor(row.id, isAnswered, created ? 0 : REPEAT_WAIT_MS));
      } else if (row.status === 'awaiting_approval' && wait > 0) {
        row = await this.engine.waitFor(row.id, (s) => s !== 'awaiting_approval', wait * 1000);
        if (row.status === 'pending')
          row = await this.engine.waitFor(row.id, isAnswered, MAX_WAIT_SECONDS * 1000);
      }
    } catch (err) {
      // The action is recorded and may already be upstream: the caller hears it is in progress, with its id,
      // never "nothing was forwarded". The dispatcher finishes it once the store is back.
      if (!(asStoreError(err) instanceof StoreUnavailable)) throw err;
      this.log.warn(
        { err, action: row.id },
        'store unavailable while waiting for the outcome of a recorded action',
      );
    }
    return { type: 'action', action: row, created };
  }
}
