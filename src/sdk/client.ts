import { randomUUID } from 'node:crypto';
import { AirlockApiError, AirlockUnavailableError, AirlockWaitTimeoutError, errorOf } from './errors.ts';
import type {
  Action,
  CreateActionRequest,
  CreateDecisionRequest,
  DecideRequest,
  Decision,
  LedgerEvent,
  List,
  ListParams,
  RejectRequest,
  Synthetic,
  SyntheticDecision,
} from './types.ts';

export interface FailOpen {
  /** Reads (get, list) answer a synthetic, clearly marked value instead of throwing when Airlock is down. */
  reads?: boolean;
  /** `decisions.create(req, { advisory: true })` answers a synthetic `allow` instead of throwing. */
  advisoryDecisions?: boolean;
}

export interface AirlockClientOptions {
  baseUrl: string;
  /** An agent key (ak_…) for actions and decisions, or a reviewer token (rvw_…) for reviews. */
  apiKey: string;
  fetch?: typeof fetch;
  /** Per attempt, on top of any server-side wait; default 30 s. */
  timeoutMs?: number;
  /** Retries of requests that are safe to repeat (reads, and creates under their idempotency key); default 2. */
  maxRetries?: number;
  /** Fail closed is the default: money-moving calls always throw when Airlock cannot be reached. */
  failOpen?: FailOpen;
}

export type SyntheticAction = Synthetic & { id: string; object: 'action'; status: 'unknown' };
export type SyntheticList = Synthetic & List<never>;

type ReadsOpen<O> = O extends { failOpen: { reads: true } } ? true : false;
type Read<O, T, S> = ReadsOpen<O> extends true ? T | S : T;
type AdvisoryOpen<O> = O extends { failOpen: { advisoryDecisions: true } } ? true : false;

/** Money-moving calls fail closed; reads and advisory decisions may fail open when asked to. */
type Risk = 'money' | 'read' | 'advisory' | 'decide';

interface Req {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** The server will hold the request this many seconds (long-poll); added to the timeout. */
  waitSeconds?: number;
  idempotencyKey?: string;
  /** `always`: safe to repeat (a read, or a create under its key); `unreached`: only if it never arrived. */
  retry: 'always' | 'unreached';
  risk: Risk;
}

const UNREACHED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const SETTLED_ACTION = new Set(['completed', 'failed', 'blocked', 'rejected', 'expired', 'cancelled']);
const SETTLED_DECISION = new Set(['approved', 'rejected', 'blocked', 'expired', 'cancelled']);
const MAX_SERVER_WAIT = 300;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function causeCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'ABORT_ERR') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * How the call-style helpers (cheqpoint.ts, safefetch.ts) reach their paths with the client's own timeouts,
 * retries and fail-closed errors. Not exported from the SDK's index: not part of its API.
 */
export const SEND: unique symbol = Symbol('airlock.sdk.send');

export interface SendRequest {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  waitSeconds?: number;
  idempotencyKey?: string;
  retry: 'always' | 'unreached';
  /** `money`: an unreachable Airlock means not executed, and the caller must not do it another way. */
  risk: 'money' | 'decide';
}

export function newIdempotencyKey(): string {
  return `sdk_${randomUUID()}`;
}

/**
 * The Airlock client: actions (wrap any HTTP call), decisions (ask first), reviews (reviewer token).
 * Fail closed by default: when Airlock cannot be reached, nothing is executed and an `AirlockUnavailableError` says so.
 */
export class AirlockClient<const O extends AirlockClientOptions = AirlockClientOptions> {
  readonly #base: string;
  readonly #key: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #failOpen: FailOpen;

  constructor(options: O) {
    if (!options.baseUrl) throw new TypeError('AirlockClient: baseUrl is required');
    if (!options.apiKey) throw new TypeError('AirlockClient: apiKey is required');
    this.#base = options.baseUrl.replace(/\/+$/, '');
    this.#key = options.apiKey;
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxRetries = options.maxRetries ?? 2;
    this.#failOpen = options.failOpen ?? {};
  }

  readonly actions = {
    /** Requests an HTTP call through Airlock; it runs now, is held for a person, or is blocked, by policy. */
    create: (req: CreateActionRequest): Promise<Action> => {
      const idempotencyKey = req.idempotency_key ?? newIdempotencyKey();
      return this.#request<Action>({
        method: 'POST',
        path: '/api/actions',
        body: { ...req, idempotency_key: idempotencyKey },
        waitSeconds: req.wait ?? 0,
        idempotencyKey,
        retry: 'always',
        risk: 'money',
      });
    },
    get: (id: string, opts: { wait?: number } = {}): Promise<Read<O, Action, SyntheticAction>> =>
      this.#read(
        {
          method: 'GET',
          path: `/api/actions/${encodeURIComponent(id)}`,
          query: { wait: opts.wait },
          waitSeconds: opts.wait ?? 0,
          retry: 'always',
          risk: 'read',
        },
        (): SyntheticAction => ({
          id,
          object: 'action',
          status: 'unknown',
          synthetic: true,
          airlock_unavailable: true,
        }),
      ),
    list: (params: ListParams = {}): Promise<Read<O, List<Action>, SyntheticList>> =>
      this.#read(
        { method: 'GET', path: '/api/actions', query: { ...params }, retry: 'always', risk: 'read' },
        (): SyntheticList => ({
          object: 'list',
          data: [],
          has_more: false,
          synthetic: true,
          airlock_unavailable: true,
        }),
      ),
    events: (id: string): Promise<List<LedgerEvent>> =>
      this.#request({
        method: 'GET',
        path: `/api/actions/${encodeURIComponent(id)}/events`,
        retry: 'always',
        risk: 'decide',
      }),
    /** Withdraws your own held action. */
    cancel: (id: string): Promise<Action> =>
      this.#request({
        method: 'POST',
        path: `/api/actions/${encodeURIComponent(id)}/cancel`,
        body: {},
        retry: 'unreached',
        risk: 'decide',
      }),
    /** Polls until the action is settled (completed, failed, blocked, rejected, expired, cancelled). */
    wait: (id: string, opts: { timeoutSeconds?: number } = {}): Promise<Action> =>
      this.#waitFor<Action>(`/api/actions/${encodeURIComponent(id)}`, SETTLED_ACTION, opts.timeoutSeconds),
  };

  readonly decisions = {
    /**
     * Asks whether an intent may go ahead. With `advisory: true` and `failOpen.advisoryDecisions`, an unreachable
     * Airlock answers a synthetic allow (marked `synthetic: true`); otherwise it throws, and you must not act.
     */
    create: (
      req: CreateDecisionRequest,
      opts: { advisory?: boolean } = {},
    ): Promise<AdvisoryOpen<O> extends true ? Decision | SyntheticDecision : Decision> => {
      const idempotencyKey = req.idempotency_key ?? newIdempotencyKey();
      const risk: Risk = opts.advisory ? 'advisory' : 'money';
      const request: Req = {
        method: 'POST',
        path: '/api/decisions',
        body: { ...req, idempotency_key: idempotencyKey },
        waitSeconds: req.wait ?? 0,
        idempotencyKey,
        retry: 'always',
        risk,
      };
      if (risk === 'advisory' && this.#failOpen.advisoryDecisions) {
        return this.#orSynthetic(request, () => syntheticDecision(req)) as never;
      }
      return this.#request<Decision>(request) as never;
    },
    get: (id: string, opts: { wait?: number } = {}): Promise<Decision> =>
      this.#request({
        method: 'GET',
        path: `/api/decisions/${encodeURIComponent(id)}`,
        query: { wait: opts.wait },
        waitSeconds: opts.wait ?? 0,
        retry: 'always',
        risk: 'decide',
      }),
    /** Polls until decided (approved, rejected, blocked, expired). */
    wait: (id: string, opts: { timeoutSeconds?: number } = {}): Promise<Decision> =>
      this.#waitFor<Decision>(
        `/api/decisions/${encodeURIComponent(id)}`,
        SETTLED_DECISION,
        opts.timeoutSeconds,
      ),
  };

  /** Reviewer-only: the client's apiKey must be a reviewer token (rvw_…). */
  readonly reviews = {
    approve: (id: string, body: DecideRequest = {}): Promise<Action | Decision> =>
      this.#request({
        method: 'POST',
        path: `/api/actions/${encodeURIComponent(id)}/approve`,
        body,
        retry: 'unreached',
        risk: 'decide',
      }),
    reject: (id: string, body: RejectRequest = {}): Promise<Action | Decision> =>
      this.#request({
        method: 'POST',
        path: `/api/actions/${encodeURIComponent(id)}/reject`,
        body,
        retry: 'unreached',
        risk: 'decide',
      }),
  };

  [SEND]<T>(req: SendRequest): Promise<T> {
    return this.#request<T>(req);
  }

  async #waitFor<T extends { status: string }>(
    path: string,
    settled: Set<string>,
    timeoutSeconds = 300,
  ): Promise<T> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const left = Math.ceil((deadline - Date.now()) / 1000);
      const wait = Math.max(0, Math.min(left, MAX_SERVER_WAIT));
      const row = await this.#request<T>({
        method: 'GET',
        path,
        query: { wait: wait || undefined },
        waitSeconds: wait,
        retry: 'always',
        risk: 'decide',
      });
      if (settled.has(row.status)) return row;
      if (Date.now() >= deadline) {
        throw new AirlockWaitTimeoutError(
          `Still ${row.status} after ${timeoutSeconds}s; nothing was decided for you`,
          row,
        );
      }
      // The server returned before the deadline without settling (e.g. approved, now executing): ask again shortly.
      await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
    }
  }

  async #read<T, S>(req: Req, synthetic: () => S): Promise<never> {
    if (this.#failOpen.reads) return this.#orSynthetic(req, synthetic) as never;
    return this.#request<T>(req) as never;
  }

  async #orSynthetic<T, S>(req: Req, synthetic: () => S): Promise<T | S> {
    try {
      return await this.#request<T>(req);
    } catch (err) {
      if (err instanceof AirlockUnavailableError) return synthetic();
      throw err;
    }
  }

  async #request<T>(req: Req): Promise<T> {
    let attempt = 0;
    for (;;) {
      const outcome = await this.#once(req);
      if (outcome.ok) return outcome.body as T;
      const err = outcome.error;
      const canRetry =
        err instanceof AirlockUnavailableError &&
        attempt < this.#maxRetries &&
        (req.retry === 'always' || err.certain);
      if (!canRetry) throw err;
      attempt++;
      // src/retry.ts's doubling, written out: the SDK bundles from src/sdk alone (test/sdk/webhooks.test.ts).
      await sleep(100 * 2 ** (attempt - 1));
    }
  }

  async #once(req: Req): Promise<{ ok: true; body: unknown } | { ok: false; error: Error }> {
    let url = `${this.#base}${req.path}`;
    const query = Object.entries(req.query ?? {}).filter(([, v]) => v !== undefined) as [string, string][];
    if (query.length > 0) url += `?${new URLSearchParams(query.map(([k, v]) => [k, String(v)])).toString()}`;
    const timeoutMs = this.#timeoutMs + (req.waitSeconds ?? 0) * 1000;
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method: req.method,
        headers: {
          authorization: `Bearer ${this.#key}`,
          accept: 'application/json',
          ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      const code = causeCode(cause);
      const certain = code !== undefined && UNREACHED.has(code);
      return {
        ok: false,
        error: this.#unavailable(req, certain, certain ? code : `no answer within ${timeoutMs}ms`, cause),
      };
    }
    const text = await res.text().catch(() => '');
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    if (res.ok) return { ok: true, body };
    const wire = errorOf(body);
    // The store being down is Airlock being unavailable: it recorded nothing and forwarded nothing.
    if (wire?.code === 'store_unavailable' || (!wire && res.status >= 502 && res.status <= 504)) {
      return {
        ok: false,
        error: this.#unavailable(req, true, `HTTP ${res.status} ${wire?.code ?? ''}`.trim(), undefined),
      };
    }
    return { ok: false, error: new AirlockApiError(res.status, body) };
  }

  #unavailable(req: Req, certain: boolean, why: string, cause: unknown): AirlockUnavailableError {
    const what =
      req.risk === 'money'
        ? `the action was NOT executed${certain ? '' : ' by this call as far as you can know: do not perform it yourself'}`
        : req.risk === 'advisory'
          ? 'no decision was given: do not act on it as allowed'
          : 'nothing was read or decided';
    const retry = req.idempotencyKey
      ? ` Retry later with idempotency_key '${req.idempotencyKey}': it never executes twice.`
      : '';
    return new AirlockUnavailableError(`Airlock at ${this.#base} is unavailable (${why}); ${what}.${retry}`, {
      certain,
      cause,
      ...(req.idempotencyKey ? { idempotencyKey: req.idempotencyKey } : {}),
    });
  }
}

function syntheticDecision(req: CreateDecisionRequest): SyntheticDecision {
  return {
    id: null,
    object: 'decision',
    outcome: 'allow',
    status: 'approved',
    reason_code: 'airlock_unavailable',
    message:
      'Airlock was unreachable; this advisory allow was made up by the SDK (failOpen) and nothing was recorded',
    shadow: true,
    modified_details: null,
    decision_note: null,
    intent: req.intent,
    synthetic: true,
    airlock_unavailable: true,
  };
}
