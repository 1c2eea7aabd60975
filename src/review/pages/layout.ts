import { isAdmin } from '../../auth/authorize.ts';
import { type Html, html } from '../html.ts';
import type { Session } from '../store.ts';

/** A line at the top of a page: what just happened, or what went wrong. */
export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

/** The frame around every page: head, navigation (with the session's CSRF token in its logout form), notice. */
export function layout(
  title: string,
  session: Session | null,
  body: Html,
  opts: { notice?: Notice | null; live?: boolean; actionId?: string } = {},
): string {
  const nav = session
    ? html`<nav>
        <a class="brand" href="/review">Airlock</a>
        <span class="links">
          <a href="/review">Queue</a>
          <a href="/review/actions">All actions</a>
          <a href="/review/overview">Overview</a>
          <a href="/review/outside" id="nav-outside">Outside Airlock</a>
          <a href="/review/refund">Request a refund</a>
          ${isAdmin(session.reviewer) ? html`<a href="/review/freeze" id="nav-freeze">Kill switch</a>` : ''}
        </span>
        <span class="who">${session.reviewer.email}</span>
        <form method="post" action="/review/logout" class="inline">
          <input type="hidden" name="_csrf" value="${session.csrf}">
          <button type="submit" class="link" id="logout">Log out</button>
        </form>
      </nav>`
    : html`<nav><span class="brand">Airlock</span></nav>`;
  const notice = opts.notice
    ? html`<p class="notice ${opts.notice.kind}" role="status">${opts.notice.text}</p>`
    : '';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${title} · Airlock</title>
<link rel="stylesheet" href="/review/assets/dashboard.css">
${opts.live ? html`<script src="/review/assets/live.js" defer></script>` : ''}
</head>
<body${opts.actionId ? html` data-action="${opts.actionId}"` : ''}>
${nav}
<main>
${notice}
<p id="changed" class="notice info" hidden>This action changed since the page loaded. <a href="">Reload</a></p>
${body}
</main>
</body>
</html>`.value;
}

/** A page that only says something: not found, refused, log in first. */
export function messagePage(title: string, text: string, session: Session | null): string {
  return layout(title, session, html`<section class="panel"><h1>${title}</h1><p>${text}</p></section>`);
}
