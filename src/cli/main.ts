import { Command, Option } from 'commander';
import { createAgentKey, createReviewer } from '../auth/credentials.ts';
import { hashPassword } from '../auth/password.ts';
import { type Config, loadConfig } from '../config/config.ts';
import { Engine } from '../engine/engine.ts';
import { verifyLedger } from '../engine/ledger.ts';
import { STATUSES } from '../engine/status.ts';
import { toActionObject } from '../engine/view.ts';
import { AirlockError } from '../errors.ts';
import { loadPolicyFile, PolicyError } from '../policy/index.ts';
import { createLogger, openStore, startAirlock } from '../server.ts';
import type { Store } from '../store/store.ts';

const program = new Command()
  .name('airlock')
  .description('Approval gateway between AI agents and the Stripe API')
  .option('-c, --config <file>', 'YAML config file (environment variables win over it)');

function config(): Config {
  const file = program.opts<{ config?: string }>().config;
  return loadConfig(process.env, file ?? process.env['AIRLOCK_CONFIG']);
}

async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config());
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

program
  .command('serve')
  .description('start the Airlock server')
  .action(async () => {
    const cfg = config();
    const log = createLogger(cfg);
    const running = await startAirlock(cfg, log);
    const stop = async (signal: string) => {
      log.info({ signal }, 'shutting down');
      await running.close();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    if (running.sandbox) {
      process.stdout.write(
        `\nAirlock ${running.url}  (Stripe sandbox: ${running.sandbox.url})\n` +
          'Create an agent key with:  npx airlock keys create --agent my-agent\n' +
          'Then: new Stripe(agentKey, { host: "127.0.0.1", port: ' +
          `${running.port}, protocol: "http" })\n\n`,
      );
    }
  });

const keys = program.command('keys').description('agent keys');
keys
  .command('create')
  .description('create an agent key; the key is shown once')
  .requiredOption('--agent <name>', 'agent name')
  .option('--json', 'print JSON')
  .action(async (o: { agent: string; json?: boolean }) => {
    const created = await withStore((s) => createAgentKey(s, o.agent));
    print(Boolean(o.json), created, () => `Agent key for ${o.agent} (shown once):\n${created.key}`);
  });

const reviewers = program.command('reviewers').description('reviewer accounts');
reviewers
  .command('create')
  .description('create a reviewer (or add a token to an existing one); prints an API token')
  .requiredOption('--email <email>', 'reviewer email')
  .option('--password <password>', 'dashboard password')
  .addOption(new Option('--group <group...>', 'groups the reviewer belongs to').default([]))
  .option('--json', 'print JSON')
  .action(async (o: { email: string; password?: string; group: string[]; json?: boolean }) => {
    const passwordHash = o.password ? await hashPassword(o.password) : null;
    const created = await withStore((s) => createReviewer(s, o.email, { passwordHash, groups: o.group }));
    print(
      Boolean(o.json),
      created,
      () => `Reviewer ${created.email} (${created.id}); API token (shown once):\n${created.token}`,
    );
  });

const actions = program.command('actions').description('list, show and decide actions');
actions
  .command('list')
  .addOption(new Option('--status <status>', 'only this status').choices(STATUSES))
  .option('--limit <n>', 'how many', '20')
  .option('--json', 'print JSON')
  .action(async (o: { status?: string; limit: string; json?: boolean }) => {
    await withStore(async (store) => {
      const { rows, hasMore } = await store.listActions({ status: o.status, limit: Number(o.limit) });
      const data = await Promise.all(rows.map((r) => render(store, r.id)));
      print(Boolean(o.json), { object: 'list', data, has_more: hasMore }, () =>
        data.length === 0
          ? 'No actions.'
          : data
              .map(
                (a) =>
                  `${a.id}  ${a.status.padEnd(17)} ${a.kind.padEnd(22)} ${money(a.amount, a.currency).padStart(12)}  ${a.agent?.name ?? ''}  ${a.created_at}`,
              )
              .join('\n'),
      );
    });
  });

actions
  .command('show <id>')
  .option('--json', 'print JSON')
  .action(async (id: string, o: { json?: boolean }) => {
    await withStore(async (store) => {
      const a = await render(store, id);
      print(Boolean(o.json), a, () => JSON.stringify(a, null, 2));
    });
  });

for (const verb of ['approve', 'reject'] as const) {
  actions
    .command(`${verb} <id>`)
    .description(`${verb} a held action as a reviewer`)
    .requiredOption('--reviewer <email>', 'the deciding reviewer (must exist)')
    .option('--note <note>', 'a note for the record')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { reviewer: string; note?: string; json?: boolean }) => {
      await withStore(async (store) => {
        const reviewer = await store.findReviewerByEmail(o.reviewer);
        if (!reviewer) throw new AirlockError('resource_missing', `No reviewer with email ${o.reviewer}`);
        const engine = new Engine({ store, policy: loadPolicyFile(config().policy) });
        const row =
          verb === 'approve'
            ? await engine.approve(id, reviewer, o.note ?? null)
            : await engine.reject(id, reviewer, o.note ?? null);
        const a = await render(store, row.id);
        print(Boolean(o.json), a, () => `${a.id} is now ${a.status}`);
      });
    });
}

const audit = program.command('audit').description('the ledger');
audit
  .command('verify')
  .description('check the hash chain; exits 1 and names each edited or missing event')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => {
    const report = await withStore((s) => verifyLedger(s));
    print(Boolean(o.json), report, () =>
      report.ok
        ? `Ledger OK: ${report.events} events, chain intact.`
        : `Ledger FAILED verification (${report.problems.length} problem(s)):\n${report.problems
            .map(
              (p) =>
                `  event ${p.seq}${p.type ? ` (${p.type}${p.actionId ? ` of ${p.actionId}` : ''})` : ''}: ${p.problem}`,
            )
            .join('\n')}`,
    );
    if (!report.ok) process.exitCode = 1;
  });

async function render(store: Store, id: string) {
  const row = await store.getAction(id);
  if (!row) throw new AirlockError('resource_missing', `No such action: '${id}'`);
  const [approvals, agent] = await Promise.all([
    store.listApprovals(id),
    row.agent_id ? store.getAgent(row.agent_id) : Promise.resolve(undefined),
  ]);
  return toActionObject(row, approvals, agent ?? null);
}

function money(amount: number | null, currency: string | null): string {
  return amount === null ? '' : `${amount} ${currency ?? ''}`.trim();
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof PolicyError || err instanceof AirlockError) {
    process.stderr.write(`airlock: ${err.message}\n`);
  } else {
    process.stderr.write(`airlock: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
}
