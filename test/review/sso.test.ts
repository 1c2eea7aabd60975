// Single sign-on (issue 19, section 3): a reviewer logs in to the dashboard through a real OpenID Connect provider
// (node-oidc-provider, run in the test) in Chromium, with the authorization code flow and PKCE. Their groups come
// from the provider's claim, mapped to Airlock's, so `reviewers: [group:finance]` holds with the provider's groups.
import { writeFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Provider from 'oidc-provider';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SsoClient, SsoRefused } from '../../src/review/sso.ts';
import { tempDir } from '../helpers/stack.ts';
import { FormClient, launchChromium, type ReviewStack, startReviewStack } from './helpers.ts';

const POLICY = `
timezone: UTC
default: review
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
    reviewers: [group:finance]
`;

/** The provider's users: their groups there, and whether it has verified their email. */
const USERS: Record<string, { groups: string[]; verified: boolean }> = {
  fiona: { groups: ['finance-team', 'staff'], verified: true },
  sam: { groups: ['support-team', 'staff'], verified: true },
  eve: { groups: ['finance-team', 'staff'], verified: false },
  olga: { groups: ['finance-team'], verified: true },
};

let idp: Server;
let handler: RequestListener = (_req, res) => res.end();
let issuer: string;
let stack: ReviewStack;
let browser: Browser;

beforeAll(async () => {
  // The provider's address goes into Airlock's config and Airlock's into the provider's client: listen first.
  idp = createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  const config = join(tempDir(), 'airlock.yaml');
  writeFileSync(
    config,
    [
      'oidc:',
      `  issuer: ${issuer}`,
      '  client_id: airlock',
      '  client_secret: idp-client-secret-for-tests',
      '  name: Example IdP',
      '  scopes: openid email groups',
      '  required_group: staff',
      '  group_map: { finance-team: finance, support-team: support }',
      'review:',
      '  password_login: false',
    ].join('\n'),
  );
  stack = await startReviewStack({ AIRLOCK_CONFIG: config });
  writeFileSync(join(stack.dir, 'policy.yaml'), POLICY);
  await stack.airlock.reloadPolicy();

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'airlock',
        client_secret: 'idp-client-secret-for-tests',
        redirect_uris: [`${stack.airlock.url}/review/sso/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    claims: { email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'email', 'groups'],
    conformIdTokenClaims: false,
    cookies: { keys: ['provider-cookie-key-for-tests'] },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        email: `${id}@idp.example`,
        email_verified: USERS[id]?.verified ?? false,
        groups: USERS[id]?.groups ?? [],
      }),
    }),
  });
  handler = provider.callback();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  await new Promise((r) => idp?.close(r));
});

/** Logs in as `user` through the provider's own login and consent pages; returns the page, back on Airlock. */
async function ssoLogIn(user: string, next = ''): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${stack.airlock.url}/review/login${next ? `?next=${encodeURIComponent(next)}` : ''}`);
  await page.click('#sso');
  await page.waitForURL((u) => u.href.startsWith(issuer));
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'anything');
  await page.click('button[type=submit]');
  // Consent, the first time this user meets the client.
  const consent = page.locator('button:has-text("Continue")');
  await page.waitForURL((u) => u.href.startsWith(stack.airlock.url) || u.pathname.startsWith('/interaction'));
  if (!page.url().startsWith(stack.airlock.url)) await consent.click();
  await page.waitForURL((u) => u.href.startsWith(stack.airlock.url));
  return page;
}

describe('single sign-on with OpenID Connect', () => {
  it('logs a reviewer in through the provider, maps their groups, and lets them approve a finance-only hold', async () => {
    const { actionId, chargeId } = await stack.holdRefund(60_000);
    const page = await ssoLogIn('fiona', `/review/actions/${actionId}`);
    try {
      expect(new URL(page.url()).pathname).toBe(`/review/actions/${actionId}`);
      await expect(page.textContent('nav .who')).resolves.toBe('fiona@idp.example');
      const reviewer = (await stack.airlock.store.credentials.findReviewerByEmail('fiona@idp.example'))!;
      // finance-team maps to finance; staff is in no mapping, so it is not an Airlock group.
      expect(reviewer.groups).toEqual(['finance']);
      await page.click('#approve-form button');
      await stack.airlock.engine.waitFor(actionId, (s) => s === 'completed', 10_000, 20);
      const votes = await stack.airlock.store.listApprovals(actionId);
      expect(votes.map((v) => [v.reviewer_email, v.decision])).toEqual([['fiona@idp.example', 'approve']]);
      expect(stack.refundsFor(chargeId)).toHaveLength(1);
    } finally {
      await page.close();
    }
  });

  it('gives a provider user outside the mapped group no say over a finance-only hold', async () => {
    const { actionId } = await stack.holdRefund(61_000);
    const page = await ssoLogIn('sam');
    try {
      await expect(page.textContent('nav .who')).resolves.toBe('sam@idp.example');
      const sam = (await stack.airlock.store.credentials.findReviewerByEmail('sam@idp.example'))!;
      expect(sam.groups).toEqual(['support']);
      await page.goto(`${stack.airlock.url}/review/actions/${actionId}`);
      expect(await page.locator('#approve-form').count()).toBe(0);
      expect((await stack.airlock.engine.get(actionId)).status).toBe('awaiting_approval');
    } finally {
      await page.close();
    }
  });

  it('refuses an unverified email and a user outside the required group, and starts no session', async () => {
    for (const [user, why] of [
      ['eve', /not verified this email address/],
      ['olga', /only members of staff/],
    ] as const) {
      const page = await ssoLogIn(user);
      try {
        expect(new URL(page.url()).pathname).toBe('/review/sso/callback');
        await expect(page.textContent('.notice.error')).resolves.toMatch(why);
        await page.goto(`${stack.airlock.url}/review`);
        expect(new URL(page.url()).pathname).toBe('/review/login');
      } finally {
        await page.close();
      }
      expect(
        await stack.airlock.store.credentials.findReviewerByEmail(`${user}@idp.example`),
      ).toBeUndefined();
    }
  });

  it('refuses a callback without the state it began with, whatever code it carries', async () => {
    const client = new FormClient(stack.airlock.url);
    const forged = await client.request('/review/sso/callback?code=stolen&state=guess');
    expect(forged.status).toBe(400);
    expect(forged.text).toContain('Start again');
    // A flow begun in this client, answered with another state: refused by the library's state check.
    const begun = await client.request('/review/sso');
    expect(begun.status).toBe(303);
    const wrong = await client.request('/review/sso/callback?code=stolen&state=not-the-one');
    expect(wrong.status).toBe(403);
    expect(client.cookies.has('airlock_session')).toBe(false);
  });

  it('takes no password when password login is off, and shows only the single sign-on button', async () => {
    const client = new FormClient(stack.airlock.url);
    const form = await client.request('/review/login');
    expect(form.text).toContain('Log in with Example IdP');
    expect(form.text).not.toContain('name="password"');
    // A reviewer with a password, which must not work while password login is off.
    expect(await client.logIn(stack.reviewers.alice.email)).toBe(403);
    expect(client.cookies.has('airlock_session')).toBe(false);
  });
});

describe('who single sign-on lets in', () => {
  const client = new SsoClient({
    issuer: 'https://idp.example',
    clientId: 'airlock',
    clientSecret: null,
    scopes: 'openid email',
    groupsClaim: 'roles',
    groupMap: {},
    requiredGroup: null,
    name: 'IdP',
  });

  it('passes groups through as named when no map is set, from the configured claim', () => {
    expect(client.identity({ email: 'a@x.example', roles: ['finance', 7, 'finance'] })).toEqual({
      email: 'a@x.example',
      groups: ['finance'],
    });
  });

  it('refuses claims without an email address', () => {
    expect(() => client.identity({ sub: 'x' })).toThrow(SsoRefused);
    expect(() => client.identity({ email: 'not-an-address' })).toThrow(SsoRefused);
  });
});
