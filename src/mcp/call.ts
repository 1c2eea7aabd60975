import type { FastifyInstance } from 'fastify';
import { encodeForm, type Params } from '../stripe/params.ts';

/** One request to Airlock's own HTTP surface, made on behalf of one agent. */
export interface AirlockRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** `/v1/…` (Stripe proxy, form bodies), `/v2/…` (JSON) or `/api/…` (JSON). */
  path: string;
  params?: Params;
  json?: unknown;
  query?: Record<string, string>;
  idempotencyKey?: string;
  stripeAccount?: string;
  stripeContext?: string;
  /** How long the caller is prepared to wait, so a long-poll is not cut short by our own timeout. */
  timeoutMs?: number;
}

export interface AirlockResponse {
  status: number;
  header(name: string): string | undefined;
  body: unknown;
}

export type AirlockCall = (req: AirlockRequest) => Promise<AirlockResponse>;

export type CallErrorCode = 'tool_forbidden' | 'airlock_unreachable';

export class CallError extends Error {
  readonly code: CallErrorCode;
  constructor(code: CallErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'CallError';
    this.code = code;
  }
}

// What an agent's tool may reach. Approve and reject are reviewer routes; no tool path may name them, even though the
// server would refuse an agent key there anyway (guarantee 4, defended twice).
const ALLOWED: { method: AirlockRequest['method'] | '*'; pattern: RegExp }[] = [
  { method: '*', pattern: /^\/v[12]\/[A-Za-z0-9_\-/.]+$/ },
  { method: 'GET', pattern: /^\/api\/actions(\/act_[A-Za-z0-9]+)?$/ },
  { method: 'POST', pattern: /^\/api\/actions\/act_[A-Za-z0-9]+\/cancel$/ },
  { method: 'POST', pattern: /^\/api\/decisions$/ },
  { method: 'GET', pattern: /^\/api\/decisions\/act_[A-Za-z0-9]+$/ },
  // Axiru's decisions route (src/http/compat/axiru.ts), for the `axiru.decisions.create` alias.
  { method: 'POST', pattern: /^\/api\/v1\/decisions$/ },
];

export function assertAgentPath(method: AirlockRequest['method'], path: string): void {
  const traversal = path.split('/').some((seg) => seg === '.' || seg === '..');
  const decides = /\/(approve|reject)(\/|$)/i.test(path);
  const ok = ALLOWED.some((a) => (a.method === '*' || a.method === method) && a.pattern.test(path));
  if (traversal || decides || !ok) {
    throw new CallError(
      'tool_forbidden',
      `Tools cannot call ${method} ${path}: agents reach only Stripe paths (/v1, /v2) and read or ask on /api; ` +
        'approving or rejecting is for a person.',
    );
  }
}

function encode(req: AirlockRequest): { url: string; headers: Record<string, string>; body?: string } {
  const headers: Record<string, string> = {};
  if (req.idempotencyKey) headers['idempotency-key'] = req.idempotencyKey;
  if (req.stripeAccount) headers['stripe-account'] = req.stripeAccount;
  if (req.stripeContext) headers['stripe-context'] = req.stripeContext;
  let url = req.path;
  const stripeV1 = req.path.startsWith('/v1/');
  let body: string | undefined;
  if (stripeV1 && req.params && req.method === 'POST') {
    body = encodeForm(req.params);
    headers['content-type'] = 'application/x-www-form-urlencoded';
  } else if (stripeV1 && req.params) {
    const q = encodeForm(req.params);
    if (q) url += `?${q}`;
  } else if (req.json !== undefined) {
    body = JSON.stringify(req.json);
    headers['content-type'] = 'application/json';
  }
  if (req.query) {
    const q = new URLSearchParams(req.query).toString();
    if (q) url += `${url.includes('?') ? '&' : '?'}${q}`;
  }
  return body === undefined ? { url, headers } : { url, headers, body };
}

function parseBody(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** In-server: the same Fastify app answers, through `inject`, with the calling agent's own credential. */
export function injectCall(app: FastifyInstance, authorization: string): AirlockCall {
  return async (req) => {
    assertAgentPath(req.method, req.path);
    const { url, headers, body } = encode(req);
    const res = await app.inject({
      method: req.method,
      url,
      headers: { ...headers, authorization },
      ...(body !== undefined ? { payload: body } : {}),
    });
    return {
      status: res.statusCode,
      header: (name) => {
        const v = res.headers[name.toLowerCase()];
        return Array.isArray(v) ? v[0] : v === undefined ? undefined : String(v);
      },
      body: parseBody(res.body),
    };
  };
}

export interface FetchCallOptions {
  baseUrl: string;
  agentKey: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** Out of process (`airlock mcp` over stdio): the same requests over HTTP to a running Airlock. */
export function fetchCall(opts: FetchCallOptions): AirlockCall {
  const doFetch = opts.fetch ?? fetch;
  const base = opts.baseUrl.replace(/\/+$/, '');
  return async (req) => {
    assertAgentPath(req.method, req.path);
    const { url, headers, body } = encode(req);
    const timeoutMs = req.timeoutMs ?? opts.timeoutMs ?? 60_000;
    let res: Response;
    try {
      res = await doFetch(`${base}${url}`, {
        method: req.method,
        headers: { ...headers, authorization: `Bearer ${opts.agentKey}` },
        ...(body !== undefined ? { body } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new CallError(
        'airlock_unreachable',
        `Airlock at ${base} could not be reached (${(err as Error).message}); ` +
          'nothing was executed by this call unless Airlock received it: retry only with the same idempotency_key.',
        { cause: err },
      );
    }
    const text = await res.text();
    return {
      status: res.status,
      header: (name) => res.headers.get(name) ?? undefined,
      body: parseBody(text),
    };
  };
}
