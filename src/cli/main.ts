import { createWriteStream } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatReport, verifyExport, verifyStore } from '../audit/audit.ts';
import { type ExportFormat, exportAudit } from '../audit/export.ts';
import { loadSigningKey, writeSigningKeyPair } from '../audit/keys.ts';
import {
  type CredentialListing,
  createAdminToken,
  createAgentKey,
  createReviewer,
  expiresAtFrom,
  listAdminTokens,
  listAgentKeys,
  revokeAdminToken,
  revokeReviewerToken,
} from '../auth/credentials.ts';
import { hashPassword } from '../auth/password.ts';
import { linkSlackUser } from '../auth/slack-users.ts';
import { superviseWorkers, workerSlot } from '../cluster.ts';
import { type Config, loadConfig } from '../config/config.ts';
import { Engine } from '../engine/engine.ts';
import { STATUSES, type Status } from '../engine/status.ts';
import { toActionObject } from '../engine/view.ts';
import { AirlockError } from '../errors.ts';
import { callbackSecret } from '../outbound/callbacks.ts';
import { loadPolicyFile, PolicyError } from '../policy/index.ts';
import { createLogger, openStore, startAirlock } from '../server.ts';
import type { Store } from '../store/store.ts';
import { registerFreezeCommands, registerRevoke } from './freeze.ts';
import { registerInitCommand } from './init.ts';
import { registerPolicyCommands } from './policy.ts';
import { registerStripeCommands } from './stripe.ts';

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
  .option(
    '--workers <n>',
    'processes serving the one port (node:cluster), each an instance on the same database: PostgreSQL only ' +
      '(DATABASE_URL; on SQLite one process owns the file). A primary migrates once, restarts a worker that dies ' +
      'and stops them all on SIGTERM; it exits 1 if a worker keeps dying. Needs STRIPE_SECRET_KEY or ' +
      'STRIPE_API_BASE (the built-in sandbox lives in one process)',
    positiveInteger('--workers'),
    1,
  )
  .action(async (o: { workers: number }) => {
    const cfg = config();
    const slot = workerSlot();
    if (slot === null && o.workers > 1) {
      process.exitCode = await supervise(cfg, o.workers);
      return;
    }
    const log =
      slot === null ? createLogger(cfg) : createLogger(cfg).child({ worker: slot, pid: process.pid });
    const running = await startAirlock(cfg, log, slot === null ? {} : { worker: slot, migrate: false });
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

/** The cluster primary of `serve --workers N`: checks the setup, migrates once, then runs the workers. */
async function supervise(cfg: Config, workers: number): Promise<number> {
  if (!cfg.database_url) {
    throw new AirlockError(
      'config_invalid',
      `--workers ${workers} needs PostgreSQL (DATABASE_URL). On SQLite one process owns the database file: ` +
        "its group commit batches every write through that process's one connection (a second process waiting " +
        'for the write lock would stall its whole event loop in the synchronous driver, up to the 5 s busy ' +
        'timeout), its velocity windows are kept in the memory of that one process, and start-up releases every dispatch ' +
        'lease, which would free actions other live workers are sending to Stripe. Run one process ' +
        '(--workers 1), or see docs/postgres.md.',
    );
  }
  if (!cfg.stripe_secret_key && !cfg.stripe_api_base) {
    throw new AirlockError(
      'config_invalid',
      `--workers ${workers} needs one upstream for every worker: set STRIPE_SECRET_KEY (or STRIPE_API_BASE). ` +
        'The built-in Stripe sandbox runs inside one process.',
    );
  }
  const log = createLogger(cfg).child({ role: 'primary', pid: process.pid });
  // Once per database, before any worker starts; workers then open the store without migrating.
  const store = await openStore(cfg, { log });
  await store.close();
  return superviseWorkers({ workers, log });
}

function positiveInteger(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${option}: expected a whole number of at least 1, got '${value}'`);
    }
    return n;
  };
}

program
  .command('mcp')
  .description('run an MCP server on stdio whose tools call a running Airlock with an agent key')
  .option('--url <url>', 'Airlock base URL (env AIRLOCK_URL)')
  .option('--key <key>', 'agent key ak_… (env AIRLOCK_AGENT_KEY)')
  .action(async (o: { url?: string; key?: string }) => {
    const url = o.url ?? process.env['AIRLOCK_URL'] ?? 'http://127.0.0.1:4700';
    const agentKey = o.key ?? process.env['AIRLOCK_AGENT_KEY'];
    if (!agentKey?.startsWith('ak_')) {
      throw new AirlockError(
        'authentication_required',
        'Give an agent key (ak_…) with --key or AIRLOCK_AGENT_KEY',
      );
    }
    const { runStdioMcp } = await import('../mcp/stdio.ts');
    await runStdioMcp({ url, agentKey });
  });

const keys = program.command('keys').description('agent keys');
const EXPIRES_IN = 'refuse the credential after this long: 90m, 12h, 30d, 4w (default: never)';

keys
  .command('create [agent]')
  .description('create an agent key; the key is shown once')
  .option('--agent <name>', 'agent name (or give it as the argument)')
  .option('--expires-in <duration>', EXPIRES_IN)
  .option('--json', 'print JSON')
  .action(async (name: string | undefined, o: { agent?: string; expiresIn?: string; json?: boolean }) => {
    const agent = o.agent ?? name;
    if (!agent)
      throw new AirlockError('parameter_missing', 'Name the agent: airlock keys create --agent NAME');
    const expiresAt = expiresAtFrom(o.expiresIn);
    const created = await withStore((s) => createAgentKey(s, agent, { expiresAt }));
    print(
      Boolean(o.json),
      created,
      () => `Agent key for ${agent}${until(expiresAt)} (shown once):\n${created.key}`,
    );
  });

keys
  .command('list')
  .description('list agent keys (never the keys themselves): id, agent, prefix, expiry, revocation')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => {
    const rows = await withStore(listAgentKeys);
    print(Boolean(o.json), { object: 'list', data: rows }, () => listing(rows, 'No agent keys.'));
  });

function until(expiresAt: string | null): string {
  return expiresAt ? `, valid until ${expiresAt}` : '';
}

function listing(rows: CredentialListing[], empty: string): string {
  if (rows.length === 0) return empty;
  const now = new Date().toISOString();
  return rows
    .map((r) => {
      const state = r.revoked_at
        ? `revoked ${r.revoked_at}`
        : r.expires_at && r.expires_at <= now
          ? `expired ${r.expires_at}`
          : r.expires_at
            ? `expires ${r.expires_at}`
            : 'active';
      return `${r.id}  ${r.owner.padEnd(20)} ${r.prefix}…  created ${r.created_at}  ${state}`;
    })
    .join('\n');
}

const reviewers = program.command('reviewers').description('reviewer accounts');
reviewers
  .command('create')
  .description('create a reviewer (or add a token to an existing one); prints an API token')
  .requiredOption('--email <email>', 'reviewer email')
  .option('--password <password>', 'dashboard password')
  .addOption(
    new Option(
      '--group <group...>',
      'groups the reviewer belongs to (group "admins" sees the kill switch in the dashboard)',
    ).default([]),
  )
  .option('--expires-in <duration>', `for the API token: ${EXPIRES_IN}`)
  .option('--json', 'print JSON')
  .action(
    async (o: { email: string; password?: string; group: string[]; expiresIn?: string; json?: boolean }) => {
      const expiresAt = expiresAtFrom(o.expiresIn);
      const passwordHash = o.password ? await hashPassword(o.password) : null;
      const created = await withStore((s) =>
        createReviewer(s, o.email, { passwordHash, groups: o.group, expiresAt }),
      );
      print(
        Boolean(o.json),
        created,
        () =>
          `Reviewer ${created.email} (${created.id}); API token ${created.token_id}${until(expiresAt)} (shown once):\n${created.token}`,
      );
    },
  );

reviewers
  .command('link-slack')
  .description(
    "link a Slack user (U…) to a reviewer: their presses on a hold's Slack message count as that reviewer's votes",
  )
  .requiredOption('--email <email>', 'the reviewer')
  .requiredOption('--slack-user <id>', 'the Slack user id, U0123ABCD (Slack: profile → ⋮ → Copy member ID)')
  .option('--json', 'print JSON')
  .action(async (o: { email: string; slackUser: string; json?: boolean }) => {
    const linked = await withStore((s) => linkSlackUser(s, o.email, o.slackUser, 'cli'));
    print(Boolean(o.json), linked, () => `Slack user ${linked.slack_user_id} now votes as ${linked.email}`);
  });

registerRevoke(reviewers, withStore, {
  command: 'revoke-token <token-id>',
  description: 'revoke a reviewer API token (rtk_…, printed when it was created)',
  what: 'reviewer token',
  revoke: revokeReviewerToken,
});

const admins = program
  .command('admins')
  .description('admin tokens (adm_…) for the admin API: freeze, unfreeze, revoke agent keys');
admins
  .command('create <name>')
  .description('create an admin token; it is shown once')
  .option('--expires-in <duration>', EXPIRES_IN)
  .option('--json', 'print JSON')
  .action(async (name: string, o: { expiresIn?: string; json?: boolean }) => {
    const expiresAt = expiresAtFrom(o.expiresIn);
    const created = await withStore((s) => createAdminToken(s, name, { expiresAt }));
    print(
      Boolean(o.json),
      created,
      () => `Admin token ${created.id} for ${name}${until(expiresAt)} (shown once):\n${created.token}`,
    );
  });
admins
  .command('list')
  .description('list admin tokens (never the tokens themselves)')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => {
    const rows = await withStore(listAdminTokens);
    print(Boolean(o.json), { object: 'list', data: rows }, () => listing(rows, 'No admin tokens.'));
  });
registerRevoke(admins, withStore, {
  command: 'revoke <id>',
  description: 'revoke an admin token by its id (atk_…)',
  what: 'admin token',
  revoke: revokeAdminToken,
});

const actions = program.command('actions').description('list, show and decide actions');
actions
  .command('list')
  .addOption(new Option('--status <status>', 'only this status').choices(STATUSES))
  .option('--limit <n>', 'how many', '20')
  .option('--json', 'print JSON')
  .action(async (o: { status?: Status; limit: string; json?: boolean }) => {
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

program
  .command('migrate')
  .description('apply pending database migrations (run once before starting upgraded instances)')
  .option('--dry-run', 'list pending migrations without applying them')
  .option('--json', 'print JSON')
  .action(async (o: { dryRun?: boolean; json?: boolean }) => {
    const cfg = config();
    const store = await openStore(cfg, { migrate: false });
    try {
      const names = o.dryRun ? await store.pendingMigrations() : await store.migrate();
      const result = { dialect: store.dialect, [o.dryRun ? 'pending' : 'applied']: names };
      print(Boolean(o.json), result, () =>
        names.length === 0
          ? `${store.dialect}: the schema is up to date.`
          : `${store.dialect}: ${o.dryRun ? 'pending' : 'applied'} ${names.join(', ')}`,
      );
    } finally {
      await store.close();
    }
  });

program
  .command('callbacks')
  .description('callback signing')
  .command('secret')
  .description('print the secret that signs callbacks (Airlock-Signature)')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => {
    const secret = await withStore((s) => callbackSecret(s, config().callbacks.secret));
    print(Boolean(o.json), { secret }, () => secret);
  });

registerPolicyCommands(program, config);
registerStripeCommands(program, config);
registerInitCommand(program);
registerFreezeCommands(program, keys, withStore);

const audit = program
  .command('audit')
  .description('the ledger: verify it, export it, and the key that signs its digests (docs/audit.md)');
const repeatable = (value: string, previous: string[]) => [...previous, value];
audit
  .command('verify')
  .description(
    'check the hash chain, and against signed digests with --digests and --public-key; exits 1 naming each problem',
  )
  .option('--digests <file>', 'a digest file (JSON lines); repeat for several instances', repeatable, [])
  .option(
    '--public-key <file>',
    'a public key that signed digests (PEM); repeat for rotated keys',
    repeatable,
    [],
  )
  .option('--export <file>', 'verify an export (airlock audit export) offline, without the database')
  .option('--json', 'print JSON')
  .action(async (o: { digests: string[]; publicKey: string[]; export?: string; json?: boolean }) => {
    if ((o.digests.length > 0 || o.export) && o.publicKey.length === 0) {
      throw new AirlockError(
        'parameter_missing',
        'Give the public key that signed the digests: --public-key KEY (airlock audit public-key prints it)',
      );
    }
    const opts = { digestFiles: o.digests, publicKeys: o.publicKey };
    const report = o.export
      ? await verifyExport(o.export, opts)
      : await withStore((s) => verifyStore(s, opts));
    print(Boolean(o.json), report, () => formatReport(report));
    if (!report.ok) process.exitCode = 1;
  });

audit
  .command('export')
  .description('stream ledger events, actions and signed digests for a SIEM (Splunk, Datadog, Elastic)')
  .requiredOption('--since <time>', 'ISO 8601 time: events and actions from then on')
  .addOption(new Option('--format <format>', 'record format').choices(['jsonl', 'csv']).default('jsonl'))
  .option('--out <file>', 'write to this file instead of standard output')
  .option(
    '--digests-out <file>',
    'also write the digests as digest-file lines (a CSV export keeps them only there)',
  )
  .option('--json', 'print the summary as JSON')
  .action(
    async (o: { since: string; format: ExportFormat; out?: string; digestsOut?: string; json?: boolean }) => {
      const at = Date.parse(o.since);
      if (Number.isNaN(at)) {
        throw new AirlockError('parameter_invalid', `--since ${o.since}: expected an ISO 8601 time`);
      }
      const since = new Date(at).toISOString();
      const out = o.out ? createWriteStream(o.out) : process.stdout;
      const digestsOut = o.digestsOut ? createWriteStream(o.digestsOut) : null;
      const summary = await withStore((store) =>
        exportAudit(store, { since, format: o.format, out, digestsOut }),
      );
      for (const stream of [o.out ? out : null, digestsOut]) {
        if (stream)
          await new Promise<void>((resolve, reject) =>
            stream.end((err?: Error | null) => (err ? reject(err) : resolve())),
          );
      }
      const text = `Exported ${summary.events} events (${summary.from_seq}..${summary.to_seq}), ${summary.digests} digests, ${summary.actions} actions.`;
      // On standard output the records are the output; the summary goes to standard error.
      if (o.out) print(Boolean(o.json), summary, () => text);
      else process.stderr.write(`${text}\n`);
    },
  );

audit
  .command('keygen')
  .description('write a new Ed25519 key pair for signing ledger digests (to rotate keys: docs/audit.md)')
  .requiredOption(
    '--out <file>',
    'the private key (PEM, readable by its owner only); the public key goes beside it',
  )
  .option('--json', 'print JSON')
  .action((o: { out: string; json?: boolean }) => {
    const written = writeSigningKeyPair(o.out);
    const result = { private_key: o.out, public_key: written.publicPath, key_id: written.keyId };
    print(
      Boolean(o.json),
      result,
      () =>
        `Signing key ${written.keyId}: ${o.out} (keep it off the database host's backups)\nPublic key for verifiers: ${written.publicPath}`,
    );
  });

audit
  .command('public-key')
  .description('print the public key of the configured ledger signing key, for verifiers')
  .option('--json', 'print JSON')
  .action((o: { json?: boolean }) => {
    const key = loadSigningKey(config().ledger);
    if (!key) {
      throw new AirlockError(
        'config_invalid',
        'No ledger signing key is configured (ledger.signing_key_file or AIRLOCK_LEDGER_SIGNING_KEY)',
      );
    }
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    print(
      Boolean(o.json),
      { key_id: key.keyId, public_key: pem },
      () => `${pem.trimEnd()}\n# key id ${key.keyId}`,
    );
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
