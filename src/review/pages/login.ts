import { html } from '../html.ts';
import type { LoginMethods } from '../sso.ts';
import { layout, type Notice } from './layout.ts';

/** The login form; `csrf` is the login cookie's token, `next` the dashboard page to return to. */
export function loginPage(
  csrf: string,
  next: string,
  notice: Notice | null,
  methods: LoginMethods = { password: true, sso: null },
): string {
  const sso = methods.sso
    ? html`<p><a class="button approve big" id="sso" href="/review/sso${next ? `?next=${encodeURIComponent(next)}` : ''}">Log in with ${methods.sso.settings.name}</a></p>`
    : '';
  const password = methods.password
    ? html`<form method="post" action="/review/login">
  <input type="hidden" name="_csrf" value="${csrf}">
  <input type="hidden" name="next" value="${next}">
  <label>Email <input type="email" name="email" autocomplete="username" required${methods.sso ? '' : ' autofocus'}></label>
  <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
  <button type="submit" class="${methods.sso ? '' : 'approve '}big">Log in</button>
</form>`
    : '';
  return layout(
    'Log in',
    null,
    html`<section class="panel login"><h1>Reviewer log in</h1>
${sso}${sso && password ? html`<p class="sub">or with your Airlock password</p>` : ''}${password}</section>`,
    { notice },
  );
}
