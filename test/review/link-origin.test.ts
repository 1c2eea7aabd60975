// The email link's button posts to /review/links/…; a post from another origin (a page that got hold of a link and
// presses the button through the reviewer's browser) is refused, and the link stays unspent.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ReviewStore } from '../../src/review/store.ts';
import { type ReviewStack, startReviewStack } from './helpers.ts';

let stack: ReviewStack;
beforeAll(async () => {
  stack = await startReviewStack();
});
afterAll(async () => {
  await stack?.close();
});

async function approveLink(): Promise<{ actionId: string; token: string }> {
  const { actionId } = await stack.holdRefund(60_000);
  const now = stack.clock.now();
  const links = await new ReviewStore(stack.airlock.store).createLinks(
    actionId,
    stack.reviewers.alice.id,
    now,
    new Date(now.getTime() + 3600_000),
  );
  return { actionId, token: links.approve };
}

function press(token: string, origin: string | null) {
  return fetch(`${stack.airlock.url}/review/links/${token}`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(origin === null ? {} : { origin }),
    },
    body: 'note=',
  });
}

it.each([
  ['another site', 'https://evil.example'],
  ['another port of the same host', 'http://127.0.0.1:1'],
  ['an opaque origin (null)', 'null'],
  ['an unparseable origin', 'not a url'],
])('refuses a link posted from %s with 403 and leaves it unspent', async (_name, origin) => {
  const { actionId, token } = await approveLink();
  const res = await press(token, origin);
  expect(res.status).toBe(403);
  expect(await res.text()).toContain('posted from another site');
  expect((await stack.airlock.engine.get(actionId)).status).toBe('awaiting_approval');
  // The reviewer's own click still works afterwards.
  const own = await press(token, stack.airlock.url);
  expect(own.status).toBe(303);
  expect((await stack.airlock.engine.get(actionId)).status).not.toBe('awaiting_approval');
});

it('accepts the link posted from Airlock’s own origin, and from a client that sends none', async () => {
  const first = await approveLink();
  expect((await press(first.token, stack.airlock.url)).status).toBe(303);
  const second = await approveLink();
  expect((await press(second.token, null)).status).toBe(303);
});

it('serves the link page with a same-origin referrer policy, so the browser sends our Origin when the button posts', async () => {
  const { token } = await approveLink();
  const page = await fetch(`${stack.airlock.url}/review/links/${token}`);
  expect(page.headers.get('referrer-policy')).toBe('same-origin');
  expect(await page.text()).toContain('<meta name="referrer" content="same-origin">');
});
