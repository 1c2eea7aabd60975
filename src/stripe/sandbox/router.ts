import type { Params } from './params.ts';
import type { SandboxStore } from './store.ts';

export interface HandlerContext {
  store: SandboxStore;
  params: Params;
  /** Path parameters, in the order the pattern names them. */
  args: string[];
  method: string;
  path: string;
}

/** Returns the response body (status 200) or throws a StripeApiError. */
export type Handler = (ctx: HandlerContext) => unknown;

interface Route {
  segments: string[];
  handler: Handler;
}

/** Matches `/v1/charges/:id/refunds`-style patterns, bucketed by method and segment count. */
export class Router {
  private readonly buckets = new Map<string, Route[]>();

  add(method: string, pattern: string, handler: Handler): this {
    const segments = pattern.split('/').filter(Boolean);
    const key = `${method} ${segments.length}`;
    const bucket = this.buckets.get(key) ?? [];
    bucket.push({ segments, handler });
    this.buckets.set(key, bucket);
    return this;
  }

  get(pattern: string, handler: Handler): this {
    return this.add('GET', pattern, handler);
  }

  post(pattern: string, handler: Handler): this {
    return this.add('POST', pattern, handler);
  }

  delete(pattern: string, handler: Handler): this {
    return this.add('DELETE', pattern, handler);
  }

  match(method: string, path: string): { handler: Handler; args: string[] } | undefined {
    const parts = path.split('/').filter(Boolean);
    const bucket = this.buckets.get(`${method} ${parts.length}`);
    if (!bucket) return undefined;
    for (const route of bucket) {
      const args: string[] = [];
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const seg = route.segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith(':')) args.push(safeDecode(part));
        else if (seg !== part) {
          ok = false;
          break;
        }
      }
      if (ok) return { handler: route.handler, args };
    }
    return undefined;
  }
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
