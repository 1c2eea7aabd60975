import { formatMoney, html } from '../html.ts';
import type { DayStats } from '../queries.ts';
import type { Session } from '../store.ts';
import { layout } from './layout.ts';

/** The last days at a glance: decisions per day and the money held back, as inline SVG charts. */
export function overviewPage(stats: DayStats[], session: Session): string {
  const max = Math.max(1, ...stats.map((s) => Math.max(s.held, s.approved, s.rejected, s.expired)));
  const maxUsd = Math.max(1, ...stats.map((s) => s.heldUsd));
  const w = 44;
  const h = 160;
  const series = [
    ['held', '#d97706'],
    ['approved', '#15803d'],
    ['rejected', '#b91c1c'],
    ['expired', '#6b7280'],
  ] as const;
  const bars = stats.map((s, i) =>
    series.map(([key, color], j) => {
      const value = s[key];
      const bh = Math.round((value / max) * h);
      return html`<rect x="${i * w + 4 + j * 9}" y="${h - bh + 10}" width="8" height="${bh}" fill="${color}"><title>${s.day} ${key}: ${value}</title></rect>`;
    }),
  );
  const usdBars = stats.map((s, i) => {
    const bh = Math.round((s.heldUsd / maxUsd) * 80);
    return html`<rect x="${i * w + 8}" y="${90 - bh}" width="28" height="${bh}" fill="#d97706"><title>${s.day}: $${s.heldUsd.toFixed(2)} held</title></rect>`;
  });
  const labels = stats.map(
    (s, i) =>
      html`<text x="${i * w + 22}" y="${h + 26}" text-anchor="middle" font-size="10">${s.day.slice(5)}</text>`,
  );
  const total = stats.reduce(
    (a, s) => ({
      held: a.held + s.held,
      approved: a.approved + s.approved,
      rejected: a.rejected + s.rejected,
      expired: a.expired + s.expired,
      usd: a.usd + s.heldUsd,
    }),
    { held: 0, approved: 0, rejected: 0, expired: 0, usd: 0 },
  );
  return layout(
    'Overview',
    session,
    html`<h1>Last ${stats.length} days</h1>
<p class="totals"><span class="badge s-awaiting_approval">${total.held} held</span> <span class="badge s-completed">${total.approved} approved</span>
<span class="badge s-rejected">${total.rejected} rejected</span> <span class="badge s-expired">${total.expired} expired</span>
· <b>${formatMoney(Math.round(total.usd * 100), 'usd')}</b> held back for review</p>
<section class="panel"><h2>Decisions per day</h2>
<svg class="chart" viewBox="0 0 ${stats.length * w} ${h + 34}" role="img" aria-label="held, approved, rejected and expired per day">${bars}${labels}</svg>
<p class="legend">${series.map(([k, c]) => html`<span><svg width="10" height="10"><rect width="10" height="10" fill="${c}"/></svg> ${k}</span> `)}</p>
</section>
<section class="panel"><h2>Money held back per day (USD)</h2>
<svg class="chart" viewBox="0 0 ${stats.length * w} 110" role="img" aria-label="money held per day">${usdBars}${stats.map(
      (s, i) =>
        html`<text x="${i * w + 22}" y="104" text-anchor="middle" font-size="10">${s.day.slice(5)}</text>`,
    )}</svg></section>`,
  );
}
