import { html } from '../html.ts';
import { layout, type Notice } from './layout.ts';

/** The login form; `csrf` is the login cookie's token, `next` the dashboard page to return to. */
export function loginPage(csrf: string, next: string, notice: Notice | null): string {
  return layout(
    'Log in',
    null,
    html`<section class="panel login"><h1>Reviewer log in</h1>
<form method="post" action="/review/login">
  <input type="hidden" name="_csrf" value="${csrf}">
  <input type="hidden" name="next" value="${next}">
  <label>Email <input type="email" name="email" autocomplete="username" required autofocus></label>
  <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
  <button type="submit" class="approve big">Log in</button>
</form></section>`,
    { notice },
  );
}
