import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { Agent, request } from 'undici';
import { AirlockError } from '../errors.ts';
import { isPrivateAddress } from './addresses.ts';
import type { Route } from './routes.ts';

export interface UpstreamHost {
  /** Exact host name, or `*.example.com` for its subdomains. */
  host: string;
  /** Allow loopback and private addresses for this host (internal services, tests). */
  allow_private: boolean;
  /** Headers Airlock adds for this host, such as its credentials: agents never hold them. */
  headers: Record<string, string>;
  /** What the operator declares each call on this host to be (src/outbound/routes.ts); none: `http.request`. */
  routes?: readonly Route[];
}

export interface HttpAnswer {
  status: number;
  body: unknown;
}

/** A failure where the request never reached the host, so retrying cannot execute it twice. */
export class NotSentError extends Error {
  override name = 'NotSentError';
}

/** A failure after the request may have reached the host: the outcome is unknown and must not be retried blindly. */
export class UncertainError extends Error {
  override name = 'UncertainError';
}

// Credentials come from the operator's configuration; hop-by-hop headers are Airlock's to set.
const REFUSED_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'x-access-token',
  'host',
  'content-length',
  'connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
  'idempotency-key',
]);

export function refusedHeader(headers: Record<string, string>): string | null {
  for (const name of Object.keys(headers)) if (REFUSED_HEADERS.has(name.toLowerCase())) return name;
  return null;
}

const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * Generic outbound HTTP for the actions API, with the operator's allow-list enforced twice: when the action is
 * submitted (a clear 4xx) and at connect time, on the address actually dialled, so DNS rebinding gains nothing.
 * No redirect is followed.
 */
export class OutboundHttp {
  readonly #agent: Agent;

  constructor(
    readonly hosts: readonly UpstreamHost[],
    readonly timeoutMs = 30_000,
  ) {
    this.#agent = new Agent({
      connect: {
        lookup: (hostname, options, callback) => {
          const entry = this.match(hostname);
          dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
            if (err) return callback(err, '', 4);
            const list = addresses as unknown as LookupAddress[];
            const bad = list.find((a) => !entry?.allow_private && isPrivateAddress(a.address));
            if (!entry || bad || list.length === 0) {
              const e = Object.assign(
                new Error(`refusing to connect to ${hostname}${bad ? ` (${bad.address})` : ''}`),
                {
                  code: 'ECONNREFUSED',
                },
              );
              return callback(e, '', 4);
            }
            const first = list[0]!;
            if ((options as { all?: boolean }).all)
              return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
            return callback(null, first.address, first.family);
          });
        },
      },
    });
  }

  match(hostname: string): UpstreamHost | null {
    const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
    for (const entry of this.hosts) {
      const e = entry.host.toLowerCase();
      if (e === '*' || e === h || (e.startsWith('*.') && h.endsWith(e.slice(1)))) return entry;
    }
    return null;
  }

  /** Validates a URL an agent gave: scheme, no credentials, an allow-listed host, and no private address. */
  async check(raw: string): Promise<URL> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new AirlockError('parameter_invalid', 'url is not a valid absolute URL', { param: 'url' });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new AirlockError('parameter_invalid', `url must use http or https, not ${url.protocol}`, {
        param: 'url',
      });
    }
    if (url.username || url.password) {
      throw new AirlockError(
        'parameter_invalid',
        'url must not carry credentials; the operator configures them per host',
        {
          param: 'url',
        },
      );
    }
    const entry = this.match(url.hostname);
    if (!entry) {
      throw new AirlockError(
        'upstream_not_allowed',
        `${url.hostname} is not on this Airlock's list of upstream hosts`,
        {
          param: 'url',
        },
      );
    }
    if (!entry.allow_private) {
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const addresses = isIP(host) ? [host] : await resolveAll(host);
      const bad = addresses.find(isPrivateAddress);
      if (bad !== undefined || addresses.length === 0) {
        throw new AirlockError(
          'upstream_not_allowed',
          `${url.hostname} resolves to a private address (${bad ?? 'none'})`,
          {
            param: 'url',
          },
        );
      }
    }
    return url;
  }

  async send(req: {
    url: string;
    method: string;
    headers: Record<string, string>;
    body: string | null;
    idempotencyKey: string;
  }): Promise<HttpAnswer> {
    const url = new URL(req.url);
    const entry = this.match(url.hostname);
    if (!entry) throw new NotSentError(`${url.hostname} is no longer on the upstream list`);
    const headers: Record<string, string> = {
      ...req.headers,
      ...expand(entry.headers),
      'idempotency-key': req.idempotencyKey,
      'user-agent': 'Airlock/0.1',
    };
    if (req.body !== null && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        method: req.method as 'POST',
        headers,
        body: req.body ?? undefined,
        dispatcher: this.#agent,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? '';
      const message = `${code || cause || 'error'}: ${(err as Error).message}`;
      if (NOT_SENT_CODES.has(code) || NOT_SENT_CODES.has(cause)) throw new NotSentError(message);
      throw new UncertainError(message);
    }
    const text = await res.body.text().catch(() => '');
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text.slice(0, 64 * 1024);
    }
    return { status: res.statusCode, body };
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve) =>
    dnsLookup(host, { all: true }, (err, addresses) =>
      resolve(err ? [] : (addresses as unknown as LookupAddress[]).map((a) => a.address)),
    ),
  );
}

/** `${NAME}` in a configured header value reads the environment, so secrets stay out of the config file. */
function expand(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers))
    out[k] = v.replace(/\$\{([A-Z0-9_]+)\}/g, (_, n) => process.env[n] ?? '');
  return out;
}
