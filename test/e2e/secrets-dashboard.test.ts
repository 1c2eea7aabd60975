// Guarantee 7 in the review dashboard: no page a reviewer can open (queue, receipts, search, overview, freeze, the
// live event stream, the signed email link pages) shows the Stripe key, an agent key, a reviewer token, the callback
// signing secret, an upstream credential, the SMTP password or the session cookie.
import type { ParsedMail } from 'mailparser';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAgentKey, createReviewer } from '../../src/auth/credentials.ts';
import { hashPassword } from '../../src/auth/password.ts';
import { type Receiver, startReceiver } from '../helpers/receiver.ts';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { rejection, stripeAt } from '../helpers/stack.ts';
import { FormClient, PASSWORD, type ReviewStack, startReviewStack } from '../review/helpers.ts';

const STRIPE_KEY = 'sk_test_DASHBOARDupstreamSecret0123456789';
const CALLBACK_SECRET = 'whsec_CALLBACKsigningSecret0123456789';
const UPSTREAM_CREDENTIAL = 'Bearer UPSTREAMhttpCredential0123456789';
const SMTP_USER = 'airlock-mailer';
const SMTP_PASS = 'SMTPpasswordValue0123456789';

let smtp: Mailbox;
let upstream: Receiver;
let hooks: Receiver;
let stack: ReviewStack;

beforeAll(async () => {
  smtp = await startMailbox({ user: SMTP_USER, pass: SMTP_PASS });
  upstream = await startReceiver();
  hooks = await startReceiver();
  stack = await startReviewStack({
    STRIPE_SECRET_KEY: STRIPE_KEY,
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtp.port),
    SMTP_USER,
    SMTP_PASS,
    SMTP_FROM: 'Airlock <airlock@example.com>',
    AIRLOCK_CALLBACK_SECRET: CALLBACK_SECRET,
    AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'true',
    AIRLOCK_CALLBACK_POLL_MS: '20',
    AIRLOCK_HTTP_UPSTREAMS: JSON.stringify([
      { host: '127.0.0.1', allow_private: true, headers: { authorization: UPSTREAM_CREDENTIAL } },
    ]),
  });
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await hooks?.close();
  await smtp.close();
});

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function linksIn(mail: ParsedMail): string[] {
  return [...(mail.text ?? '').matchAll(/(?:Approve|Reject): +(\S+)/g)].map((m) => m[1]!);
}

it('shows no key, token, signing secret, upstream credential, SMTP password or session on any dashboard page', async () => {
  const { airlock, sandbox } = stack;
  const base = airlock.url;
  const agentA = await createAgentKey(airlock.store, 'dash-bot');
  const agentB = await createAgentKey(airlock.store, 'other-bot');
  const admin = await createReviewer(airlock.store, 'admin@example.com', {
    passwordHash: await hashPassword(PASSWORD),
    groups: ['admins', 'finance'],
  });
  const reviewerToken = admin.token;

  // Live updates first, so the stream carries the changes made below.
  const browser = new FormClient(base);
  expect(await browser.logIn('admin@example.com')).toBe(303);
  const session = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const sessionValues = [...browser.cookies.values()].filter((v) => v.length >= 16);
  expect(sessionValues.length).toBeGreaterThan(0);
  const sse = new AbortController();
  const events = await fetch(`${base}/review/events`, { headers: { cookie: session }, signal: sse.signal });
  expect(events.status).toBe(200);
  let stream = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of events.body!) stream += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch {
      // aborted at the end of the test
    }
  })();

  // Traffic of every kind: allowed and held refunds through the proxy, an HTTP action with an operator credential
  // and a signed callback, a decision, approvals by API, form and email link, a rejection.
  const direct = stripeAt('sk_test_direct', sandbox.port);
  const ch = await direct.charges.create({ amount: 900_000, currency: 'usd', source: 'tok_visa' });
  const agent = stripeAt(agentA.key, airlock.port);
  await agent.refunds.create({ charge: ch.id, amount: 1_000 });
  const heldByApi = (await rejection(agent.refunds.create({ charge: ch.id, amount: 60_000 }))).raw
    .airlock_action as string;
  const heldByForm = (await rejection(agent.refunds.create({ charge: ch.id, amount: 61_000 }))).raw
    .airlock_action as string;
  const heldByLink = (await rejection(agent.refunds.create({ charge: ch.id, amount: 62_000 }))).raw
    .airlock_action as string;
  const rejected = (
    await rejection(stripeAt(agentB.key, airlock.port).refunds.create({ charge: ch.id, amount: 63_000 }))
  ).raw.airlock_action as string;
  // A wrong key is refused; its value must not be echoed anywhere either.
  const wrongKey = 'ak_WRONGdashboardWRONGkeyWRONG000000000000';
  await rejection(stripeAt(wrongKey, airlock.port).refunds.create({ charge: ch.id, amount: 1 }));

  const asAgent = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agentA.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { id: string; status: string } }));
  const httpAction = await asAgent('/api/actions', {
    url: `${upstream.url}/orders/7/refund`,
    method: 'POST',
    body: { order: 'ord_7' },
    kind: 'refund.create',
    amount: 70_000,
    currency: 'usd',
    callback: `${hooks.url}/airlock`,
  });
  expect(httpAction.body.status).toBe('awaiting_approval');
  const decision = await asAgent('/api/decisions', {
    intent: { kind: 'refund.create', amount: 80_000, currency: 'usd' },
    callback_url: `${hooks.url}/decision`,
  });
  expect(decision.status).toBe(200);

  const api = (path: string) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reviewerToken}`, 'content-type': 'application/json' },
      body: '{"note":"ok"}',
    });
  expect((await api(`/api/actions/${heldByApi}/approve`)).status).toBe(200);
  expect((await api(`/api/actions/${httpAction.body.id}/approve`)).status).toBe(200);
  expect((await api(`/api/actions/${rejected}/reject`)).status).toBe(200);
  const csrf = await browser.csrf();
  const formApprove = await browser.request(`/review/actions/${heldByForm}/approve`, {
    form: { _csrf: csrf, note: 'by form' },
  });
  expect(formApprove.status).toBe(303);

  // The email to the admin for the third hold: open both links, decide with one.
  await until(
    () => smtp.inbox.some((m) => m.subject?.includes(heldByLink) && JSON.stringify(m.to).includes('admin@')),
    'the review email',
  );
  expect(smtp.logins).toBeGreaterThan(0); // the mailer did log in with the password under test
  const mail = smtp.inbox.find(
    (m) => m.subject?.includes(heldByLink) && JSON.stringify(m.to).includes('admin@'),
  )!;
  const links = linksIn(mail);
  expect(links).toHaveLength(2);
  const linkTokens = links.map((l) => l.split('/').pop()!);

  await until(() => upstream.received.length > 0, 'the HTTP action upstream');
  expect(upstream.received[0]!.headers['authorization']).toBe(UPSTREAM_CREDENTIAL);
  await until(() => hooks.received.some((h) => h.url === '/airlock'), 'the signed callback');
  await until(
    async () => (await airlock.engine.get(heldByApi)).status === 'completed',
    'the approved refund to complete',
  );

  // --- every page ---------------------------------------------------------------------------------------------
  const pages: Record<string, string> = {};
  const open = async (path: string, client: FormClient | null = browser, expected = 200) => {
    const res = client
      ? await client.request(path)
      : await fetch(`${base}${path}`).then(async (r) => ({ status: r.status, text: await r.text() }));
    expect(res.status, `GET ${path}`).toBe(expected);
    pages[path] = res.text;
  };
  const linkPages: Record<string, string> = {};
  for (const link of links) {
    const path = new URL(link).pathname;
    const res = await fetch(`${base}${path}`);
    expect(res.status, `GET ${path}`).toBe(200);
    linkPages[path] = await res.text();
  }
  const decided = await fetch(`${base}${new URL(links[0]!).pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'note=from+the+email',
    redirect: 'manual',
  });
  expect(decided.status).toBe(303);
  for (const link of links) {
    const path = `${new URL(link).pathname}?done=1`;
    linkPages[path] = await (await fetch(`${base}${path}`)).text();
  }
  linkPages['/review/links/bad'] = await (await fetch(`${base}/review/links/not-a-real-token`)).text();

  await open('/review/login', null);
  await open('/review');
  await open('/review/queue/rows');
  await open('/review/overview');
  await open('/review/refund');
  await open(`/review/refund?charge=${ch.id}`);
  await open('/review/freeze');
  await open('/review/actions');
  await open('/review/actions?status=completed');
  await open('/review/actions?agent=dash-bot');
  await open('/review/actions?q=ord_7');
  await open('/review/actions/act_missing', browser, 404);
  const all = await airlock.store.listActions({ limit: 100 });
  expect(all.rows.length).toBe(7);
  for (const row of all.rows) await open(`/review/actions/${row.id}`);
  // The receipts did render what they are about.
  expect(pages[`/review/actions/${httpAction.body.id}`]).toContain('/orders/7/refund');
  expect(pages[`/review/actions/${heldByApi}`]).toContain(heldByApi);

  await until(() => stream.includes(heldByLink) && stream.includes(rejected), 'the live events');
  sse.abort();
  await reading;

  // --- the scan -----------------------------------------------------------------------------------------------
  const secrets: Record<string, string> = {
    STRIPE_KEY,
    CALLBACK_SECRET,
    UPSTREAM_CREDENTIAL: UPSTREAM_CREDENTIAL.replace('Bearer ', ''),
    SMTP_PASS,
    agentKeyA: agentA.key,
    agentKeyB: agentB.key,
    reviewerToken,
    wrongKey,
    password: PASSWORD,
    ...Object.fromEntries(sessionValues.map((v, i) => [`session cookie ${i}`, v])),
  };
  const haystacks: Record<string, string> = {
    ...Object.fromEntries(Object.entries(pages).map(([p, t]) => [`page ${p}`, t])),
    ...Object.fromEntries(Object.entries(linkPages).map(([p, t]) => [`link page ${p}`, t])),
    'event stream': stream,
    'review email': `${mail.subject}\n${mail.text}\n${mail.html || ''}`,
  };
  expect(Object.keys(haystacks).length).toBeGreaterThan(20);
  for (const [where, text] of Object.entries(haystacks)) {
    for (const [what, secret] of Object.entries(secrets)) {
      expect(text.includes(secret), `${what} found in ${where}`).toBe(false);
      expect(text.includes(secret.slice(-20)), `the tail of ${what} found in ${where}`).toBe(false);
    }
  }
  // An email link's token opens only its own page (which does carry it, in its form: the search below can see it);
  // no dashboard page or other link page shows it.
  for (const [i, link] of links.entries()) expect(linkPages[new URL(link).pathname]).toContain(linkTokens[i]);
  for (const [where, text] of Object.entries({ ...haystacks, ...linkPages })) {
    for (const token of linkTokens) {
      if (where.includes(token) || where === 'review email') continue;
      expect(text.includes(token), `email link token found in ${where}`).toBe(false);
    }
  }
}, 60_000);
