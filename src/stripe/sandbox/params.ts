import { invalidInteger, invalidRequest, parameterMissing } from './errors.ts';
import type { ListQuery, SandboxStore, StripeObject } from './store.ts';

/** Request parameters as `qs` parses a form body (strings, arrays, nested objects) or as JSON gives them. */
export type Params = Record<string, unknown>;

const INTEGER = /^-?\d+$/;

function present(p: Params, name: string): boolean {
  const v = p[name];
  return v !== undefined && v !== null && v !== '';
}

export function optString(p: Params, name: string): string | undefined {
  const v = p[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
    throw invalidRequest(`Invalid string: ${JSON.stringify(v)}`, { param: name, stored: false });
  }
  return String(v);
}

export function requireString(p: Params, name: string): string {
  const v = optString(p, name);
  if (v === undefined) throw parameterMissing(name);
  return v;
}

export function optInt(p: Params, name: string, min = 0): number | undefined {
  if (!present(p, name)) return undefined;
  const v = p[name];
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'string' && INTEGER.test(v)) n = Number(v);
  else throw invalidInteger(name, typeof v === 'object' ? JSON.stringify(v) : v);
  if (!Number.isSafeInteger(n)) throw invalidInteger(name, v);
  if (n < min) {
    throw invalidRequest(`This value must be greater than or equal to ${min}.`, {
      code: 'parameter_invalid_integer',
      param: name,
      stored: false,
    });
  }
  return n;
}

export function requireInt(p: Params, name: string, min = 0): number {
  const n = optInt(p, name, min);
  if (n === undefined) throw parameterMissing(name);
  return n;
}

export function optBool(p: Params, name: string): boolean | undefined {
  if (!present(p, name)) return undefined;
  const v = p[name];
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  // Parsed objects have no prototype, so String() cannot print them.
  const shown = typeof v === 'object' ? JSON.stringify(v) : String(v);
  throw invalidRequest(`Invalid boolean: ${shown}`, { param: name, stored: false });
}

export function optEnum<T extends string>(p: Params, name: string, allowed: readonly T[]): T | undefined {
  const v = optString(p, name);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    throw invalidRequest(`Invalid ${name}: must be one of ${allowed.join(', ')}`, {
      param: name,
      stored: false,
    });
  }
  return v as T;
}

export function requireCurrency(p: Params, name = 'currency'): string {
  const v = requireString(p, name).toLowerCase();
  if (!/^[a-z]{3}$/.test(v)) {
    throw invalidRequest(`Invalid currency: ${v}.`, { param: name, stored: false });
  }
  return v;
}

export function optObject(p: Params, name: string): Params | undefined {
  const v = p[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidRequest(`Invalid object`, { param: name, stored: false });
  }
  return v as Params;
}

/** Values of an array parameter; `qs` gives objects keyed by index once indices pass its array limit. */
export function optArray(p: Params, name: string): unknown[] | undefined {
  const v = p[name];
  if (v === undefined || v === '') return undefined;
  if (Array.isArray(v)) return v;
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([, x]) => x);
  }
  return [v];
}

/**
 * Stripe's metadata update: keys merge into the existing set, an empty value removes a key, and
 * `metadata=""` removes them all. Limits are Stripe's: 50 keys, 40-character keys, 500-character values.
 */
export function mergeMetadata(existing: unknown, p: Params): Record<string, string> {
  const current: Record<string, string> =
    existing && typeof existing === 'object' ? { ...(existing as Record<string, string>) } : {};
  const v = p['metadata'];
  if (v === undefined) return current;
  if (v === '' || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw invalidRequest('Invalid metadata: must be an object', { param: 'metadata', stored: false });
  }
  for (const [key, raw] of Object.entries(v as Params)) {
    if (key.length > 40) {
      throw invalidRequest(`Metadata keys can have up to 40 characters; "${key}" has ${key.length}.`, {
        param: `metadata[${key}]`,
        stored: false,
      });
    }
    if (raw === '' || raw === null) {
      delete current[key];
      continue;
    }
    if (typeof raw === 'object') {
      throw invalidRequest(`Invalid value for metadata[${key}]: must be a string`, {
        param: `metadata[${key}]`,
        stored: false,
      });
    }
    const value = String(raw);
    if (value.length > 500) {
      throw invalidRequest(
        `Metadata values can have up to 500 characters, but you passed in ${value.length}.`,
        {
          param: `metadata[${key}]`,
          stored: false,
        },
      );
    }
    current[key] = value;
  }
  if (Object.keys(current).length > 50) {
    throw invalidRequest('You can have at most 50 metadata keys.', { param: 'metadata', stored: false });
  }
  return current;
}

export function listQuery(p: Params): ListQuery {
  const limit = optInt(p, 'limit', 1) ?? 10;
  if (limit > 100) {
    throw invalidRequest('This value must be less than or equal to 100.', {
      code: 'parameter_invalid_integer',
      param: 'limit',
      stored: false,
    });
  }
  const startingAfter = optString(p, 'starting_after');
  const endingBefore = optString(p, 'ending_before');
  return { limit, startingAfter, endingBefore };
}

export interface StripeList {
  object: 'list';
  data: StripeObject[];
  has_more: boolean;
  url: string;
}

export function toList(url: string, page: { data: StripeObject[]; hasMore: boolean }): StripeList {
  return { object: 'list', data: page.data, has_more: page.hasMore, url };
}

/** Replaces id strings named by `expand[]` paths (`latest_charge`, `data.charge`, `charge.customer`) with the objects. */
export function applyExpand(store: SandboxStore, body: unknown, p: Params): unknown {
  const paths = optArray(p, 'expand');
  if (!paths) return body;
  for (const path of paths) {
    if (typeof path === 'string' && path !== '') expandPath(store, body, path.split('.'));
  }
  return body;
}

function expandPath(store: SandboxStore, value: unknown, segments: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value) expandPath(store, item, segments);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const [head, ...rest] = segments;
  if (head === undefined) return;
  const obj = value as Record<string, unknown>;
  let field = obj[head];
  if (typeof field === 'string') {
    const found = store.find(field);
    if (found) {
      field = found;
      obj[head] = found;
    }
  }
  if (rest.length > 0) expandPath(store, field, rest);
}
