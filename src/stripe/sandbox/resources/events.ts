import { invalidRequest, parameterMissing, resourceMissing } from '../errors.ts';
import { baseObject } from '../objects.ts';
import {
  listQuery,
  mergeMetadata,
  optArray,
  optBool,
  optInt,
  optObject,
  optString,
  type Params,
  requireString,
  toList,
} from '../params.ts';
import type { Router } from '../router.ts';
import type { EventQuery, SandboxStore, StripeObject } from '../store.ts';
import { newWebhookSecret } from '../webhooks.ts';

const EVENT_TYPE = /^(\*|[a-z0-9_]+(\.[a-z0-9_*]+)*)$/;

function eventQuery(p: Params): EventQuery {
  const q: EventQuery = listQuery(p);
  const types: string[] = [];
  const type = optString(p, 'type');
  if (type !== undefined) types.push(type);
  const many = optArray(p, 'types');
  if (many !== undefined) {
    if (type !== undefined) {
      throw invalidRequest('You may only specify one of these parameters: type, types.', {
        param: 'types',
        stored: false,
      });
    }
    if (many.length > 20) {
      throw invalidRequest('You may pass at most 20 event types in `types`.', {
        param: 'types',
        stored: false,
      });
    }
    for (const t of many) {
      // `types[a][b]=` parses to an object, which is no event type.
      if (typeof t !== 'string')
        throw invalidRequest('Invalid array: types must be strings.', { param: 'types', stored: false });
      types.push(t);
    }
  }
  for (const t of types) {
    if (!EVENT_TYPE.test(t)) {
      throw invalidRequest(`Invalid event type: ${t}`, {
        param: type !== undefined ? 'type' : 'types',
        stored: false,
      });
    }
  }
  if (types.length > 0) q.types = types;
  const deliverySuccess = optBool(p, 'delivery_success');
  if (deliverySuccess !== undefined) q.deliverySuccess = deliverySuccess;
  // `created` is a timestamp or a range: created[gt], created[gte], created[lt], created[lte].
  if (p['created'] !== undefined && p['created'] !== '') {
    if (typeof p['created'] === 'object') {
      const range = optObject(p, 'created') ?? {};
      const created: NonNullable<EventQuery['created']> = {};
      for (const key of Object.keys(range)) {
        if (key !== 'gt' && key !== 'gte' && key !== 'lt' && key !== 'lte') {
          throw invalidRequest(`Received unknown parameter: created[${key}]`, {
            param: 'created',
            stored: false,
          });
        }
        created[key] = optInt(range, key) as number;
      }
      q.created = created;
    } else {
      const at = optInt(p, 'created') as number;
      q.created = { gte: at, lte: at };
    }
  }
  return q;
}

/** An endpoint as Stripe shows it: the secret only in the answer to its creation. */
function shown(endpoint: StripeObject): StripeObject {
  const { secret: _secret, ...rest } = endpoint;
  return rest as StripeObject;
}

/** A webhook endpoint that was not deleted, or Stripe's resource_missing. */
function liveEndpoint(store: SandboxStore, id: string): StripeObject {
  const endpoint = store.get('webhook_endpoint', id);
  if (endpoint['deleted']) throw resourceMissing('webhook_endpoint', id);
  return endpoint;
}

function enabledEvents(p: Params): string[] {
  const list = optArray(p, 'enabled_events');
  if (!list || list.length === 0) throw parameterMissing('enabled_events');
  return list.map((value, i) => {
    const t = typeof value === 'string' ? value : '';
    if (!EVENT_TYPE.test(t) || (t.includes('*') && t !== '*')) {
      throw invalidRequest(`Invalid enabled_events[${i}]: ${t || 'that'} is not an event type.`, {
        param: `enabled_events[${i}]`,
        stored: false,
      });
    }
    return t;
  });
}

function webhookUrl(p: Params): string {
  const url = requireString(p, 'url');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidRequest('Invalid URL: must be an absolute http(s) URL.', { param: 'url', stored: false });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidRequest('Invalid URL: must be an absolute http(s) URL.', { param: 'url', stored: false });
  }
  return url;
}

export function registerEvents(r: Router): void {
  r.get('/v1/events', ({ store, params }) => toList('/v1/events', store.eventsPage(eventQuery(params))));
  r.get('/v1/events/:id', ({ store, args }) => {
    const event = store.findEvent(args[0]!);
    if (!event) throw resourceMissing('event', args[0]!);
    return event;
  });

  r.post('/v1/webhook_endpoints', ({ store, params: p }) => {
    const endpoint = store.insert({
      ...baseObject('we', 'webhook_endpoint'),
      api_version: optString(p, 'api_version') ?? null,
      application: null,
      connect: optBool(p, 'connect') ?? false,
      description: optString(p, 'description') ?? null,
      enabled_events: enabledEvents(p),
      metadata: mergeMetadata({}, p),
      secret: newWebhookSecret(),
      status: 'enabled',
      url: webhookUrl(p),
    });
    return endpoint;
  });
  r.get('/v1/webhook_endpoints', ({ store, params }) => {
    const page = store.page('webhook_endpoint', listQuery(params));
    return toList('/v1/webhook_endpoints', { ...page, data: page.data.map(shown) });
  });
  r.get('/v1/webhook_endpoints/:id', ({ store, args }) => shown(liveEndpoint(store, args[0]!)));
  r.post('/v1/webhook_endpoints/:id', ({ store, args, params: p }) => {
    const endpoint = liveEndpoint(store, args[0]!);
    if (p['enabled_events'] !== undefined) endpoint['enabled_events'] = enabledEvents(p);
    if (p['url'] !== undefined) endpoint['url'] = webhookUrl(p);
    if (p['description'] !== undefined) endpoint['description'] = optString(p, 'description') ?? null;
    const disabled = optBool(p, 'disabled');
    if (disabled !== undefined) endpoint['status'] = disabled ? 'disabled' : 'enabled';
    endpoint['metadata'] = mergeMetadata(endpoint['metadata'], p);
    return shown(store.save(endpoint));
  });
  r.delete('/v1/webhook_endpoints/:id', ({ store, args }) => {
    const endpoint = liveEndpoint(store, args[0]!);
    store.save({ ...endpoint, deleted: true, status: 'disabled' });
    return { id: endpoint.id, object: 'webhook_endpoint', deleted: true };
  });
}
