import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config/config.ts';
import { policyResolvers } from '../engine/resolvers/index.ts';
import { AirlockError } from '../errors.ts';
import { loadPolicyFile, STARTER_POLICY_PATH } from '../policy/index.ts';
import { casesFileFor, runCasesFile } from '../policy-tools/cases.ts';
import {
  fetchHistory,
  formatUsd,
  replayChartSvg,
  replayHistory,
  replaySummary,
} from '../policy-tools/replay.ts';
import { OUTCOMES, simulate } from '../policy-tools/simulate.ts';
import { openStore } from '../server.ts';
import { StripeUpstream } from '../stripe/upstream.ts';
import { parseDuration } from '../time.ts';

// Only ever sent to the built-in sandbox or a Stripe-compatible server given without a key (as the server does).
const SANDBOX_KEY = 'sk_test_airlock_sandbox';

function out(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

function parseSince(raw: string): number {
  const ms = parseDuration(raw, ['m', 'h', 'd']);
  if (ms === null) {
    throw new AirlockError('parameter_invalid', `--since ${raw}: expected a duration such as 12h, 30d`);
  }
  return ms;
}

/** A progress bar on stderr, redrawn in place; at most every 100 ms, and always at the end. */
export function progressBar(label: string): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 100) return;
    last = now;
    const width = 30;
    const filled = total === 0 ? width : Math.round((done / total) * width);
    const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
    process.stderr.write(
      `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${done}/${total}`,
    );
    if (done >= total) process.stderr.write('\n');
  };
}

/** `airlock policy check|test|simulate|versions` and `airlock replay`. */
export function registerPolicyCommands(program: Command, config: () => Config): void {
  const policy = program.command('policy').description('check, test and simulate policies');

  policy
    .command('check [file]')
    .description('validate a policy file; exits 1 naming the file, line and column of the first problem')
    .option('--json', 'print JSON')
    .action((file: string | undefined, o: { json?: boolean }) => {
      const p = loadPolicyFile(file ?? config().policy);
      out(
        Boolean(o.json),
        {
          ok: true,
          file: p.file,
          version: p.version,
          rules: p.rules.length,
          lists: Object.keys(p.lists),
          mode: p.mode,
        },
        () =>
          [
            `OK ${p.file}: ${p.version}, ${p.rules.length} rule(s), mode ${p.mode}, default ${p.default}, timezone ${p.timezone}`,
            ...p.rules.map(
              (r) => `  ${r.id.padEnd(10)} ${r.options.mode === 'shadow' ? '[shadow] ' : ''}${r.text}`,
            ),
          ].join('\n'),
      );
    });

  policy
    .command('test [file]')
    .description('run the test cases beside a policy (FILE.test.yaml); exits 1 on any mismatch')
    .option('--cases <file>', 'the cases file (default: beside the policy)')
    .option('--json', 'print JSON')
    .action((file: string | undefined, o: { cases?: string; json?: boolean }) => {
      const policyFile = file ?? config().policy ?? STARTER_POLICY_PATH;
      const casesFile = o.cases ?? casesFileFor(policyFile);
      const report = runCasesFile(casesFile, o.cases && !file ? undefined : policyFile);
      out(
        Boolean(o.json),
        {
          file: report.file,
          policy: report.policy.file,
          policy_version: report.policy.version,
          passed: report.passed,
          failed: report.failed,
          results: report.results,
        },
        () =>
          [
            `${report.file} against ${report.policy.file} (${report.policy.version})`,
            ...report.results.flatMap((r) =>
              r.ok
                ? [`PASS ${r.name}`]
                : [`FAIL ${r.name} (${report.file}:${r.line})`, ...r.diffs.map((d) => `     ${d}`)],
            ),
            '-'.repeat(60),
            `${report.failed === 0 ? 'PASS' : 'FAIL'}: ${report.passed}/${report.results.length}`,
          ].join('\n'),
      );
      if (report.failed > 0) process.exitCode = 1;
    });

  policy
    .command('simulate')
    .description('re-decide the stored actions under another policy and show what would change')
    .requiredOption('--policy <file>', 'the policy to try')
    .option('--since <duration>', 'how far back, e.g. 24h or 30d', '30d')
    .option('--examples <n>', 'examples per change', '3')
    .option('--json', 'print JSON')
    .action(async (o: { policy: string; since: string; examples: string; json?: boolean }) => {
      const next = loadPolicyFile(o.policy);
      const until = new Date();
      const since = new Date(until.getTime() - parseSince(o.since));
      const store = await openStore(config());
      try {
        const r = await simulate(store, next, policyResolvers(null), {
          since,
          until,
          examples: Number(o.examples),
        });
        out(Boolean(o.json), r, () => {
          const lines = [
            `Simulated ${next.file} (${next.version}) over ${r.actions} stored write(s) since ${r.since}`,
            `  ${'outcome'.padEnd(8)} ${'before'.padStart(24)} ${'after'.padStart(24)}`,
            ...OUTCOMES.map(
              (k) =>
                `  ${k.padEnd(8)} ${`${r.before[k].count} (${formatUsd(r.before[k].usd)})`.padStart(24)} ${`${r.after[k].count} (${formatUsd(r.after[k].usd)})`.padStart(24)}`,
            ),
            r.changed === 0 ? 'No decision would change.' : `${r.changed} decision(s) would change:`,
          ];
          for (const m of r.moves.filter((x) => x.from !== x.to)) {
            lines.push(`  ${m.from} -> ${m.to}: ${m.count} (${formatUsd(m.usd)})`);
            for (const e of m.examples) {
              lines.push(
                `    ${e.id} ${e.kind} ${formatUsd(e.amount_usd ?? 0)} ${e.created_at}: ${e.reason}`,
              );
            }
          }
          return lines.join('\n');
        });
      } finally {
        await store.close();
      }
    });

  policy
    .command('versions')
    .description('the policy versions this store has run, newest first')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const store = await openStore(config());
      try {
        const rows = await store.policyVersions.list();
        out(Boolean(o.json), { object: 'list', data: rows, has_more: false }, () =>
          rows.length === 0
            ? 'No policy version recorded yet.'
            : rows.map((r) => `${r.version}  ${r.first_loaded_at}  ${r.file}`).join('\n'),
        );
      } finally {
        await store.close();
      }
    });

  program
    .command('replay')
    .description(
      "decide the upstream account's history (read-only) under a policy and report what it would hold",
    )
    .option('--days <n>', 'how many days back', '90')
    .option('--policy <file>', 'the policy (default: the configured one)')
    .option('--out <dir>', 'where to write report.json, chart.svg and report.md', 'airlock-replay')
    .option('--json', 'print the report as JSON')
    .action(async (o: { days: string; policy?: string; out: string; json?: boolean }) => {
      const days = Number(o.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650) {
        throw new AirlockError(
          'parameter_invalid',
          `--days ${o.days}: expected a whole number of days, 1 to 3650`,
        );
      }
      const cfg = config();
      const p = loadPolicyFile(o.policy ?? cfg.policy);
      if (!cfg.stripe_secret_key && !cfg.stripe_api_base) {
        throw new AirlockError(
          'config_invalid',
          'replay reads the upstream account: set STRIPE_SECRET_KEY (or STRIPE_API_BASE)',
        );
      }
      const upstream = new StripeUpstream(
        cfg.stripe_api_base ?? 'https://api.stripe.com',
        cfg.stripe_secret_key ?? SANDBOX_KEY,
        cfg.dispatch.upstream_timeout_ms,
      );
      const until = new Date();
      const since = new Date(until.getTime() - days * 86_400_000);
      try {
        process.stderr.write(`Reading ${days} days of history from ${upstream.baseUrl} …\n`);
        const history = await fetchHistory(upstream, since, (what, n) =>
          process.stderr.write(`\r  fetched ${n} action(s) (${what})        `),
        );
        process.stderr.write('\n');
        const report = await replayHistory(p, history, { since, until, onProgress: progressBar('Deciding') });
        const dir = resolve(o.out);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
        writeFileSync(join(dir, 'chart.svg'), replayChartSvg(report));
        writeFileSync(
          join(dir, 'report.md'),
          `# Airlock replay: ${report.days} days under ${report.policy_version}\n\n![USD held and blocked per day](chart.svg)\n\n\`\`\`\n${replaySummary(report)}\n\`\`\`\n\nEvery figure: report.json.\n`,
        );
        out(
          Boolean(o.json),
          report,
          () =>
            `${replaySummary(report)}\n\nReport: ${join(dir, 'report.md')} (chart: ${join(dir, 'chart.svg')})`,
        );
      } finally {
        await upstream.close();
      }
    });
}
