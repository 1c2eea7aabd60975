// Turns a suite run into its report: the checks against the issue's targets, a markdown table, an SVG chart.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult } from './loadgen.ts';
import type { MillionResult } from './million.ts';

/** Medians over the rounds of one target and one mode, and every round as measured. */
export interface Summary {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  requests: number;
  /** Rate runs: true only if every round kept up with the rate. */
  sustained: boolean | null;
  rounds: LoadResult[];
}

export interface TargetReport {
  name: string;
  label: string;
  /** 'max' and 'rate:<n>' → summary. */
  modes: Record<string, Summary>;
}

export interface ApprovalReport {
  approvals: number;
  /** From the start of the approve call to the upstream receiving the refund, ms. */
  p50: number;
  p99: number;
  max: number;
  /** The approve call alone (its answer to the reviewer), ms. */
  approveCallP50: number;
  approveCallP99: number;
}

export interface Check {
  target: string;
  measured: string;
  met: boolean | null;
}

export interface SuiteReport {
  at: string;
  form: 'full' | 'ci';
  machine: { cpus: number; model: string; node: string; loadavgStart: number[]; loadavgEnd: number[] };
  config: {
    rounds: number;
    seconds: number;
    connections: number;
    rates: number[];
    /** Agent keys Airlock's load was spread over (absent in runs before the option existed: 1). */
    agents?: number;
    policy: string;
  };
  nginx: string;
  targets: TargetReport[];
  decisions: TargetReport | null;
  approval: ApprovalReport | null;
  million: (MillionResult & { allowRpsEmpty: number | null; allowRps1m: number | null }) | null;
  ratios: Record<string, number | null>;
  checks: Check[];
  durationSeconds: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(rounds: LoadResult[]): Summary {
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    p999: median(rounds.map((r) => r.p999)),
    errors: rounds.reduce((s, r) => s + r.errors, 0),
    requests: rounds.reduce((s, r) => s + r.requests, 0),
    sustained: rounds[0]?.sustained === null ? null : rounds.every((r) => r.sustained),
    rounds,
  };
}

const f0 = (n: number | null | undefined) =>
  n === null || n === undefined || Number.isNaN(n) ? '–' : Math.round(n).toLocaleString('en-US');
const f2 = (n: number | null | undefined) =>
  n === null || n === undefined || Number.isNaN(n) ? '–' : n < 10 ? n.toFixed(2) : n.toFixed(1);
const pct = (n: number | null | undefined) =>
  n === null || n === undefined || Number.isNaN(n) ? '–' : `${(n * 100).toFixed(1)}%`;

export function checks(r: Omit<SuiteReport, 'checks'>): Check[] {
  const out: Check[] = [];
  const t = (name: string) => r.targets.find((x) => x.name === name);
  const airlock = t('airlock');
  const bare = t('bare');
  const vsBare = r.ratios['airlock_vs_bare_rps'] ?? null;
  out.push({
    target: "Airlock's allow path at 60% or more of the bare Node proxy's throughput",
    measured: vsBare === null ? 'not measured' : pct(vsBare),
    met: vsBare === null ? null : vsBare >= 0.6,
  });
  const a100 = airlock?.modes['rate:100'];
  const b100 = bare?.modes['rate:100'];
  if (a100 && b100) {
    const added = a100.p99 - b100.p99;
    out.push({
      target: "At a fixed 100 req/s, p99 no more than 2 ms above the bare proxy's",
      measured: `${a100.sustained ? '' : 'rate not sustained; '}p99 ${f2(a100.p99)} ms vs ${f2(b100.p99)} ms (+${f2(added)} ms)`,
      met: Boolean(a100.sustained) && added <= 2,
    });
  }
  const a2k = airlock?.modes['rate:2000'];
  const b2k = bare?.modes['rate:2000'];
  if (a2k && b2k) {
    const added = a2k.p99 - b2k.p99;
    out.push({
      target: "At a fixed 2,000 req/s, p99 no more than 2 ms above the bare proxy's",
      measured: `${a2k.sustained ? '' : 'rate not sustained; '}p99 ${f2(a2k.p99)} ms vs ${f2(b2k.p99)} ms (+${f2(added)} ms)`,
      met: Boolean(a2k.sustained) && added <= 2,
    });
  } else {
    out.push({
      target: 'At a fixed 2,000 req/s, p99 within 2 ms of the bare proxy',
      measured: 'not measured',
      met: null,
    });
  }
  const d = r.decisions?.modes['max'];
  out.push({
    target: 'Decisions API: 10,000 decisions per second or more on SQLite',
    measured: d ? `${f0(d.rps)}/s` : 'not measured',
    met: d ? d.rps >= 10_000 : null,
  });
  out.push({
    target: 'Approval to upstream call: p99 under 5 ms',
    measured: r.approval ? `p99 ${f2(r.approval.p99)} ms (p50 ${f2(r.approval.p50)} ms)` : 'not measured',
    met: r.approval ? r.approval.p99 < 5 : null,
  });
  if (r.million) {
    const worst = Math.max(...r.million.queries.map((q) => q.p50));
    out.push({
      target: 'Each query on 1,000,000 actions under 5 ms (median)',
      measured: r.million.queries.map((q) => `${q.name} ${f2(q.p50)} ms`).join(', '),
      met: worst < 5,
    });
    const ratio =
      r.million.allowRps1m && r.million.allowRpsEmpty ? r.million.allowRps1m / r.million.allowRpsEmpty : null;
    out.push({
      target: 'Allow-path throughput with 1,000,000 actions within 10% of an empty store',
      measured: ratio === null ? 'not measured' : `${pct(ratio)} of the empty store's`,
      met: ratio === null ? null : ratio >= 0.9,
    });
  } else {
    out.push({ target: 'Queries on 1,000,000 actions under 5 ms', measured: 'not measured', met: null });
  }
  return out;
}

export function markdown(r: SuiteReport): string {
  const lines: string[] = [];
  const rates = r.config.rates;
  lines.push(
    `Run ${r.at} (${r.form} form): ${r.machine.cpus} × ${r.machine.model}, Node ${r.machine.node}, load average ${r.machine.loadavgStart.map((x) => x.toFixed(1)).join(' ')} at the start. ` +
      `Medians of ${r.config.rounds} rounds of ${r.config.seconds} s per run, targets alternated; ${r.config.connections} connections. ` +
      `Requests: POST /v1/refunds ($1, a new charge and Idempotency-Key each)${(r.config.agents ?? 1) > 1 ? `, through Airlock from ${r.config.agents} agents in turn` : ', through Airlock from one agent'}. nginx: ${r.nginx}.`,
  );
  lines.push('');
  lines.push(
    `| target | max req/s | p50 ms | p99 ms | p99.9 ms | ${rates.map((x) => `@${x}/s p50 · p99 · p99.9 ms | `).join('')}errors |`,
  );
  lines.push(`|---|--:|--:|--:|--:|${rates.map(() => '--:|').join('')}--:|`);
  const all = [...r.targets, ...(r.decisions ? [r.decisions] : [])];
  for (const t of all) {
    const m = t.modes['max'];
    const cells = rates.map((x) => {
      const s = t.modes[`rate:${x}`];
      if (!s) return '–';
      return `${f2(s.p50)} · ${f2(s.p99)} · ${f2(s.p999)}${s.sustained ? '' : ` (not sustained: ${f0(s.rps)}/s)`}`;
    });
    const errors = Object.values(t.modes).reduce((s, x) => s + x.errors, 0);
    lines.push(
      `| ${t.label} | ${f0(m?.rps)} | ${f2(m?.p50)} | ${f2(m?.p99)} | ${f2(m?.p999)} | ${cells.map((c) => `${c} | `).join('')}${errors} |`,
    );
  }
  lines.push('');
  const ratioNames: Record<string, string> = {
    airlock_vs_bare_rps: '(d)/(b) throughput, Airlock / bare Node proxy',
    airlock_vs_nginx_rps: '(d)/(c) throughput, Airlock / nginx',
    airlock_vs_direct_rps: '(d)/(a) throughput, Airlock / direct',
    bare_vs_nginx_rps: '(b)/(c) throughput, bare Node proxy / nginx',
  };
  for (const [k, label] of Object.entries(ratioNames)) {
    if (k in r.ratios) lines.push(`- ${label}: **${pct(r.ratios[k])}**`);
  }
  for (const x of rates) {
    const k = `airlock_added_p99_ms_at_${x}`;
    if (k in r.ratios)
      lines.push(`- p99 added by Airlock over the bare proxy at ${x} req/s: **${f2(r.ratios[k])} ms**`);
  }
  if (r.approval) {
    lines.push(
      `- (f) approval → upstream call, ${r.approval.approvals} approvals one at a time: p50 ${f2(r.approval.p50)} ms, p99 ${f2(r.approval.p99)} ms, max ${f2(r.approval.max)} ms (the approve call itself: p50 ${f2(r.approval.approveCallP50)} ms, p99 ${f2(r.approval.approveCallP99)} ms)`,
    );
  }
  if (r.million) {
    const s = r.million.store;
    lines.push(
      `- (g) store of ${f0(s.actions)} actions and ${f0(s.events)} ledger events (${(s.bytes / 2 ** 20).toFixed(0)} MiB):`,
    );
    for (const q of r.million.queries)
      lines.push(`  - ${q.name}: p50 ${f2(q.p50)} ms, p99 ${f2(q.p99)} ms (${q.what}; ${q.rows} rows)`);
    if (r.million.verify.events > 0)
      lines.push(
        `  - audit verify: ${f0(r.million.verify.eventsPerSecond)} events/s (${f0(r.million.verify.events)} events in ${r.million.verify.seconds.toFixed(1)} s, ${r.million.verify.ok ? 'chain intact' : 'CHAIN BROKEN'})`,
      );
    if (r.million.allowRps1m !== null)
      lines.push(
        `  - allow path on the 1,000,000-action store: ${f0(r.million.allowRps1m)} req/s vs ${f0(r.million.allowRpsEmpty)} req/s on a fresh store`,
      );
  }
  lines.push('');
  lines.push('| target (2-core machine) | measured | met |');
  lines.push('|---|---|---|');
  for (const c of r.checks)
    lines.push(`| ${c.target} | ${c.measured} | ${c.met === null ? 'not run' : c.met ? 'met' : 'not met'} |`);
  lines.push('');
  lines.push(`The run took ${Math.round(r.durationSeconds)} s.`);
  return `${lines.join('\n')}\n`;
}

/** Two bar charts side by side: max throughput, and p99 at each fixed rate, per target. */
export function svg(r: SuiteReport): string {
  const targets = [...r.targets, ...(r.decisions ? [r.decisions] : [])];
  const W = 920;
  // Room for one labelled bar per fixed rate in each row.
  const rowH = Math.max(26, 8 + r.config.rates.length * 11);
  const top = 56;
  const H = top + targets.length * rowH + 56;
  const colors = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#e45756', '#72b7b2'];
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(
    `<text x="12" y="20" font-size="14" font-weight="bold">Airlock benchmark, ${esc(r.at.slice(0, 10))}: median${r.config.rounds > 1 ? `s of ${r.config.rounds} rounds` : ' of 1 round'} on ${r.machine.cpus} cores</text>`,
  );
  const labelW = 215;
  const panelW = (W - labelW - 40) / 2;
  // Left: requests per second at max load.
  const maxRps = Math.max(1, ...targets.map((t) => t.modes['max']?.rps ?? 0));
  const x0 = labelW;
  out.push(`<text x="${x0}" y="${top - 14}" font-weight="bold">max throughput, req/s</text>`);
  for (const [i, t] of targets.entries()) {
    const y = top + i * rowH;
    out.push(`<text x="${labelW - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${esc(t.label)}</text>`);
    const v = t.modes['max']?.rps ?? 0;
    const w = (v / maxRps) * (panelW - 70);
    out.push(
      `<rect x="${x0}" y="${y + rowH / 2 - 9}" width="${w.toFixed(1)}" height="18" fill="${colors[0]}"/>`,
    );
    out.push(`<text x="${x0 + w + 4}" y="${y + rowH / 2 + 4}">${f0(v)}</text>`);
  }
  // Right: p99 at each fixed rate, on a log scale so the baselines' sub-millisecond bars stay visible.
  const x1 = labelW + panelW + 30;
  const rates = r.config.rates;
  const p99s = targets.flatMap((t) => rates.map((x) => t.modes[`rate:${x}`]?.p99 ?? 0)).filter((v) => v > 0);
  const hi = Math.max(10, ...p99s);
  const lo = 0.1;
  const scale = (v: number) =>
    ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (panelW - 70);
  out.push(
    `<text x="${x1}" y="${top - 14}" font-weight="bold">p99 latency at a fixed rate, ms (log scale)</text>`,
  );
  const barH = (rowH - 8) / Math.max(1, rates.length);
  for (const [i, t] of targets.entries()) {
    const y = top + i * rowH;
    for (const [k, x] of rates.entries()) {
      const s = t.modes[`rate:${x}`];
      if (!s) continue;
      const w = scale(s.p99);
      const yy = y + 3 + k * barH;
      out.push(
        `<rect x="${x1}" y="${yy.toFixed(1)}" width="${w.toFixed(1)}" height="${(barH - 1).toFixed(1)}" fill="${colors[(k + 1) % colors.length]}"/>`,
      );
      out.push(
        `<text x="${x1 + w + 4}" y="${(yy + barH - 2).toFixed(1)}" font-size="10">${f2(s.p99)}${s.sustained ? '' : '*'}</text>`,
      );
    }
  }
  const ly = H - 24;
  out.push(`<text x="${x0}" y="${ly}">max: ${r.config.connections} connections, as fast as answered</text>`);
  for (const [k, x] of rates.entries()) {
    const lx = x1 + k * 112;
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${colors[(k + 1) % colors.length]}"/>`,
    );
    out.push(`<text x="${lx + 14}" y="${ly}">p99 @ ${x}/s</text>`);
  }
  out.push(`<text x="${x1}" y="${ly + 16}" font-size="10">* the target did not keep up with the rate</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export const MARK_START = '<!-- bench:results:start -->';
export const MARK_END = '<!-- bench:results:end -->';

/** Replaces the text between the markers of docs/PERFORMANCE.md with this run's table. */
export function replaceBetweenMarkers(doc: string, table: string): string {
  const a = doc.indexOf(MARK_START);
  const b = doc.indexOf(MARK_END);
  if (a < 0 || b < a) throw new Error(`docs/PERFORMANCE.md has no ${MARK_START} … ${MARK_END} section`);
  return `${doc.slice(0, a + MARK_START.length)}\n${table}\n![Benchmark chart](bench.svg)\n${doc.slice(b)}`;
}

/** Writes a standalone run (bench:peer, bench:busy, bench:phases) as the suite writes its own. */
export function saveRun(root: string, name: string, data: unknown, table: string): string {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(dir, `${stamp}-${name}.json`), `${JSON.stringify(data, null, 2)}\n`);
  writeFileSync(join(dir, `latest-${name}.md`), table);
  return `bench/results/${stamp}-${name}.json and bench/results/latest-${name}.md`;
}

/** Milliseconds with two decimals under 10, one above: the suite's style. */
export const ms = f2;
export const whole = f0;
