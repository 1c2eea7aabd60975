import { Agent, request } from 'undici';
import { encodeForm, type Params } from './params.ts';

export interface UpstreamRequest {
  method: string;
  path: string;
  /** Form params for v1 writes, JSON for v2 writes; ignored when rawQuery is given. */
  params: Params;
  rawQuery?: string;
  /**
   * The bytes to send, already encoded (the form or JSON body of a write, the query of a DELETE): what the decision
   * was bound to, sent as stored. Wins over params.
   */
  body?: string | null;
  idempotencyKey?: string | null;
  stripeAccount?: string | null;
  /** Forwarded as received; Stripe lets it supersede Stripe-Account. */
  stripeContext?: string | null;
  stripeVersion?: string | null;
  /** Bounds this request below the upstream's own timeout (a look-up that must not hold a page or a message). */
  timeoutMs?: number;
}

export interface UpstreamResponse {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** The upstream could not be reached or did not answer: the effect is unknown, so a retry must reuse the key. */
export class UpstreamNetworkError extends Error {
  override name = 'UpstreamNetworkError';

  /** True when the request certainly never reached the upstream (nothing listening, no route, no DNS). */
  get notSent(): boolean {
    const cause = this.cause as { code?: string; cause?: { code?: string } } | undefined;
    const code = cause?.code ?? '';
    const inner = cause?.cause?.code ?? '';
    return NOT_SENT.has(code) || NOT_SENT.has(inner);
  }
}

const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const FORWARDED_RESPONSE_HEADERS = [
  'request-id',
  'idempotent-replayed',
  'stripe-version',
  'stripe-should-retry',
  'retry-after',
];

/** The only place that holds the upstream secret key. */
export class StripeUpstream {
  readonly #agent: Agent;
  readonly #auth: string;

  constructor(
    readonly baseUrl: string,
    secretKey: string,
    readonly timeoutMs = 30_000,
  ) {
    this.#auth = `Bearer ${secretKey}`;
    this.#agent = new Agent({ connections: 128, pipelining: 1, keepAliveTimeout: 10_000 });
  }

  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const isV2 = req.path.startsWith('/v2/');
    const headers: Record<string, string> = { authorization: this.#auth, 'user-agent': 'Airlock/0.1' };
    let body: string | undefined;
    let query = req.rawQuery ?? '';
    const bound = req.body ?? null;
    if (req.method === 'GET' || req.method === 'DELETE') {
      if (!req.rawQuery) query = bound ?? encodeForm(req.params);
    } else if (isV2) {
      headers['content-type'] = 'application/json';
      body = bound ?? JSON.stringify(req.params);
    } else {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = bound ?? encodeForm(req.params);
    }
    if (req.idempotencyKey) headers['idempotency-key'] = req.idempotencyKey;
    if (req.stripeAccount) headers['stripe-account'] = req.stripeAccount;
    if (req.stripeContext) headers['stripe-context'] = req.stripeContext;
    if (req.stripeVersion) headers['stripe-version'] = req.stripeVersion;
    const url = `${this.baseUrl}${req.path}${query ? `?${query}` : ''}`;
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        method: req.method as 'GET',
        headers,
        body,
        dispatcher: this.#agent,
        headersTimeout: req.timeoutMs ?? this.timeoutMs,
        bodyTimeout: req.timeoutMs ?? this.timeoutMs,
      });
    } catch (err) {
      throw new UpstreamNetworkError(describe(err), { cause: err });
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new UpstreamNetworkError(describe(err), { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = { error: { type: 'api_error', message: 'Upstream answered with a body that is not JSON' } };
    }
    const out: Record<string, string> = {};
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const v = res.headers[name];
      if (typeof v === 'string') out[name] = v;
    }
    return { status: res.statusCode, body: parsed, headers: out };
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
