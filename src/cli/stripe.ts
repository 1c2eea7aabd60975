import type { Command } from 'commander';
import type { Config } from '../config/config.ts';
import { Engine } from '../engine/engine.ts';
import { type BackfillProgress, backfillEvents, stripeClientFor } from '../engine/stripe-backfill.ts';
import { StripeEventIngest } from '../engine/stripe-events.ts';
import { AirlockError } from '../errors.ts';
import { loadPolicyFile } from '../policy/index.ts';
import { openStore } from '../server.ts';

// Used only against the built-in sandbox or a Stripe-compatible server given without a key; never real Stripe.
const SANDBOX_KEY = 'sk_test_airlock_sandbox';

/** `airlock stripe backfill`: the account's recent Stripe Events into the store (docs/stripe-events.md). */
export function registerStripeCommands(program: Command, config: () => Config): void {
  const stripe = program
    .command('stripe')
    .description('Stripe events: history and money moved outside Airlock');
  stripe
    .command('backfill')
    .description(
      "store the account's recent Stripe Events (resumable), so velocity windows and the Outside Airlock view start from real history",
    )
    .option('--days <n>', 'how far back: Stripe keeps 30 days of events', '30')
    .option('--restart', 'forget an unfinished run and start again from the newest event')
    .action(async (o: { days: string; restart?: boolean }) => {
      const days = Number(o.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650)
        throw new AirlockError(
          'parameter_invalid',
          `--days ${o.days}: expected a whole number of days, 1 to 3650`,
        );
      const cfg = config();
      if (!cfg.stripe_secret_key && !cfg.stripe_api_base)
        throw new AirlockError(
          'config_invalid',
          'backfill reads the Stripe account: set STRIPE_SECRET_KEY, or STRIPE_API_BASE (the built-in sandbox: http://127.0.0.1:4701)',
        );
      const client = stripeClientFor(
        cfg.stripe_api_base ?? 'https://api.stripe.com',
        cfg.stripe_secret_key ?? SANDBOX_KEY,
        cfg.dispatch.upstream_timeout_ms,
      );
      const store = await openStore(cfg);
      try {
        const ingest = new StripeEventIngest(new Engine({ store, policy: loadPolicyFile(cfg.policy) }));
        // History is recorded (ledger, velocity, the Outside Airlock view), not alerted: it is not news.
        ingest.alerts = null;
        const report = process.stderr.isTTY ? bar() : line;
        const done = await backfillEvents({
          stripe: client,
          ingest,
          since: new Date(Date.now() - days * 86_400_000),
          restart: Boolean(o.restart),
          onPage: report,
          onSkipped: (id, why) => process.stderr.write(`backfill: skipped ${id}: ${why}\n`),
        });
        process.stdout.write(
          `Backfill complete: ${done.seen} event(s) read, ${done.stored} new, back to ${when(done.reached)}\n`,
        );
      } finally {
        await store.close();
      }
    });
}

function when(s: number | null): string {
  return s === null ? 'nothing' : new Date(s * 1000).toISOString();
}

/** One log line per page, for logs and pipes. */
function line(p: BackfillProgress): void {
  process.stderr.write(
    `backfill: ${p.seen} event(s) read, ${p.stored} new, back to ${when(p.reached)} (${Math.floor(p.fraction * 100)}% of the window)${p.done ? ', done' : ''}\n`,
  );
}

/** A bar redrawn in place on a terminal, by how far back the events read reach. */
function bar(): (p: BackfillProgress) => void {
  return (p) => {
    const width = 30;
    const filled = Math.round(p.fraction * width);
    process.stderr.write(
      `\rBackfill [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(p.fraction * 100)).padStart(3)}% ${p.seen} read, ${p.stored} new`,
    );
    if (p.done) process.stderr.write('\n');
  };
}
