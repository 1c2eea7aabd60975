import { resourceMissing } from '../errors.ts';
import { newId } from '../ids.ts';
import type { HandlerContext } from '../router.ts';
import type { StripeObject } from '../store.ts';
import { handlePayoutIntents } from './payout-intents.ts';

// An id has a lowercase prefix and a random part with a digit or capital; collection names have neither.
const ID_LIKE = /^[a-z0-9]+_(?=[A-Za-z0-9]*[A-Z0-9])[A-Za-z0-9]+$/;

function singular(segment: string): string {
  if (segment.endsWith('ies')) return `${segment.slice(0, -3)}y`;
  if (segment.endsWith('sses')) return segment.slice(0, -2);
  return segment.endsWith('s') ? segment.slice(0, -1) : segment;
}

function idPrefix(name: string): string {
  return name
    .split('_')
    .map((word) => word[0] ?? '')
    .join('');
}

/**
 * Stripe's /v2 API. Payout intents are emulated as Stripe documents them; anything else is answered generically:
 * a POST to a collection stores its JSON body as a new object, a POST to an object merges into it, GET retrieves
 * or lists, DELETE deletes.
 */
export function handleV2(ctx: HandlerContext): unknown {
  const payoutIntent = handlePayoutIntents(ctx);
  if (payoutIntent !== undefined) return payoutIntent;
  const { store, params: p, method } = ctx;
  const segments = ctx.path.split('/').filter(Boolean).slice(1);
  const existingId = segments.find((s) => ID_LIKE.test(s) && store.find(s)?.object.startsWith('v2.'));
  if (existingId) {
    const obj = store.find(existingId)!;
    if (method === 'GET') return obj;
    if (method === 'DELETE') {
      store.save({ id: obj.id, object: obj.object, deleted: true });
      return { id: obj.id, object: obj.object, deleted: true };
    }
    const action = segments.at(-1);
    const updated: StripeObject = { ...obj, ...p, id: obj.id, object: obj.object };
    if (action !== existingId && action !== undefined) updated['status'] = action;
    return store.save(updated);
  }
  const last = segments.at(-1) ?? '';
  const collection = segments.filter((s) => !ID_LIKE.test(s));
  const objectName = `v2.${collection.map(singular).join('.')}`;
  if (method !== 'POST' && ID_LIKE.test(last)) throw resourceMissing(objectName, last);
  if (method === 'GET') {
    const page = store.page(objectName, { limit: 100 });
    return { data: page.data, next_page_url: null, previous_page_url: null };
  }
  const obj: StripeObject = {
    ...p,
    id: newId(idPrefix(singular(collection.at(-1) ?? 'obj')) || 'obj'),
    object: objectName,
    created: new Date().toISOString(),
    livemode: false,
  };
  return store.insert(obj);
}
