// Single sign-on for reviewers: OpenID Connect's authorization code flow with PKCE, through openid-client. This file
// holds what Airlock decides (who may log in, and which groups they are in); the protocol is the library's.
import * as oidc from 'openid-client';

export interface SsoSettings {
  issuer: string;
  clientId: string;
  /** Absent for a public client: PKCE alone protects the code. */
  clientSecret: string | null;
  scopes: string;
  /** The claim that lists the user's groups at the identity provider. */
  groupsClaim: string;
  /** Identity-provider group → Airlock group. When empty, groups pass through as named. */
  groupMap: Record<string, string>;
  /** Only members of this identity-provider group may log in. */
  requiredGroup: string | null;
  /** Shown on the login button: "Log in with Okta". */
  name: string;
}

/** What the browser carries between the redirect to the provider and the way back (an httpOnly cookie). */
export interface SsoAttempt {
  verifier: string;
  state: string;
  nonce: string;
  next: string;
}

/** Who the provider says logged in, as Airlock will know them. */
export interface SsoIdentity {
  email: string;
  groups: string[];
}

export class SsoRefused extends Error {}

/** How reviewers may log in: with a password, by single sign-on, or both. */
export interface LoginMethods {
  password: boolean;
  sso: SsoClient | null;
}

/** An identity provider on plain HTTP is accepted only on this machine, as in tests and local trials. */
function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}

export class SsoClient {
  #config: Promise<oidc.Configuration> | null = null;

  constructor(readonly settings: SsoSettings) {}

  /** The provider's metadata, read once; a failed read is tried again on the next login. */
  #discover(): Promise<oidc.Configuration> {
    if (!this.#config) {
      const { issuer, clientId, clientSecret } = this.settings;
      this.#config = oidc
        .discovery(
          new URL(issuer),
          clientId,
          clientSecret ?? undefined,
          clientSecret ? undefined : oidc.None(),
          isLoopback(issuer) ? { execute: [oidc.allowInsecureRequests] } : undefined,
        )
        .catch((err: unknown) => {
          this.#config = null;
          throw err;
        });
    }
    return this.#config;
  }

  /** Where to send the browser, and what it must bring back. */
  async begin(redirectUri: string, next: string): Promise<{ url: string; attempt: SsoAttempt }> {
    const config = await this.#discover();
    const verifier = oidc.randomPKCECodeVerifier();
    const attempt: SsoAttempt = { verifier, state: oidc.randomState(), nonce: oidc.randomNonce(), next };
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.settings.scopes,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: attempt.state,
      nonce: attempt.nonce,
    });
    return { url: url.href, attempt };
  }

  /**
   * The way back: the code is exchanged (state, nonce and PKCE checked by the library), and the claims of the ID
   * token and the userinfo endpoint decide who this is. Throws SsoRefused for a user Airlock will not let in.
   */
  async finish(callbackUrl: URL, attempt: SsoAttempt): Promise<SsoIdentity> {
    const config = await this.#discover();
    const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: attempt.verifier,
      expectedState: attempt.state,
      expectedNonce: attempt.nonce,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims();
    if (!idClaims) throw new SsoRefused('the identity provider sent no ID token');
    const info = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub).catch(() => null);
    return this.identity({ ...(info ?? {}), ...idClaims });
  }

  /** Airlock's rules for a set of claims: a verified email, the required group, and the mapped groups. */
  identity(claims: Record<string, unknown>): SsoIdentity {
    const email = claims['email'];
    if (typeof email !== 'string' || !email.includes('@'))
      throw new SsoRefused('the identity provider sent no email address');
    // Reviewers are matched by email, so an address the provider has not verified could claim someone else's account.
    if (claims['email_verified'] === false)
      throw new SsoRefused('the identity provider has not verified this email address');
    const raw = claims[this.settings.groupsClaim];
    const given = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === 'string') : [];
    const { requiredGroup, groupMap } = this.settings;
    if (requiredGroup && !given.includes(requiredGroup))
      throw new SsoRefused(`only members of ${requiredGroup} may review here`);
    const mapped = Object.keys(groupMap).length
      ? given.flatMap((g) => (groupMap[g] ? [groupMap[g]] : []))
      : given;
    return { email: email.trim(), groups: [...new Set(mapped)] };
  }
}
