import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { publicKeyPathFor, writeSigningKeyPair } from '../audit/keys.ts';
import { createAgentKey, createReviewer } from '../auth/credentials.ts';
import { hashPassword } from '../auth/password.ts';
import { loadConfig } from '../config/config.ts';
import { AirlockError } from '../errors.ts';
import { STARTER_POLICY_PATH } from '../policy/index.ts';
import { openStore } from '../server.ts';

const CONFIG = `# Airlock configuration. Environment variables override these (PORT, AIRLOCK_DATA, STRIPE_SECRET_KEY, …).
# Paths are relative to this file.

port: 4700
host: 127.0.0.1

# The action store and ledger. For several instances, set database_url: postgres://… instead.
data: ./data/airlock.db

# The policy: who may do what without a person. Test it with: npx airlock policy test policy.yaml
policy: ./policy.yaml

# Without a Stripe key, Airlock runs against its built-in Stripe sandbox (test data only).
# To front real Stripe, set STRIPE_SECRET_KEY in the environment rather than here.
# stripe_secret_key: sk_live_…

# Hosts the generic actions API may call, with the credentials Airlock adds (agents never hold them).
# http_upstreams:
#   - host: api.shop.example
#     headers: { authorization: "Bearer \${SHOP_API_TOKEN}" }

# Logs: JSON when piped, readable on a terminal (auto | json | pretty); extra fields to redact.
# log_format: auto
# log_redact: ["card.number"]

# Prometheus metrics; give them their own port to keep them off the port agents reach.
# metrics:
#   path: /metrics
#   port: 9464

# Signed digests of the ledger (docs/audit.md). The private key never goes into the database: keep it, and the
# digest file, off the database's backups. Verifiers need only keys/ledger-signing.pub.pem.
ledger:
  signing_key_file: ./keys/ledger-signing.pem
  digest_file: ./data/ledger-digests.jsonl
  # digest_interval_ms: 60000
  # digest_webhook_url: https://audit.example.com/airlock/digests
`;

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description(
      'write a starter config, policy and policy tests, and create the first agent key and reviewer',
    )
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--agent <name>', 'name of the first agent', 'my-agent')
    .option('--reviewer <email>', 'email of the first reviewer', 'reviewer@example.com')
    .option('--password <password>', 'dashboard password for the reviewer')
    .option('--force', 'overwrite existing files')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        dir: string;
        agent: string;
        reviewer: string;
        password?: string;
        force?: boolean;
        json?: boolean;
      }) => {
        const dir = resolve(o.dir);
        mkdirSync(dir, { recursive: true });
        const files = {
          config: join(dir, 'airlock.yaml'),
          policy: join(dir, 'policy.yaml'),
          tests: join(dir, 'policy.test.yaml'),
        };
        const existing = Object.values(files).filter((f) => existsSync(f));
        if (existing.length && !o.force) {
          throw new AirlockError(
            'config_invalid',
            `Refusing to overwrite ${existing.join(', ')} (use --force)`,
          );
        }
        // A signing key is never replaced, even with --force: digests it signed could no longer be verified.
        const signingKey = join(dir, 'keys', 'ledger-signing.pem');
        const keyExisted = existsSync(signingKey);
        const publicKey = publicKeyPathFor(signingKey);
        const keyId = keyExisted ? null : writeSigningKeyPair(signingKey).keyId;
        writeFileSync(files.config, CONFIG);
        copyFileSync(STARTER_POLICY_PATH, files.policy);
        const starterTests = STARTER_POLICY_PATH.replace(/\.yaml$/, '.test.yaml');
        writeFileSync(
          files.tests,
          readFileSync(starterTests, 'utf8').replace(/^policy: .*$/m, 'policy: policy.yaml'),
        );

        const config = loadConfig({ ...process.env, AIRLOCK_DATA: '', AIRLOCK_POLICY: '' }, files.config);
        const store = await openStore(config);
        try {
          const agent = await createAgentKey(store, o.agent);
          const passwordHash = o.password ? await hashPassword(o.password) : null;
          const reviewer = await createReviewer(store, o.reviewer, { passwordHash });
          const out = {
            config: files.config,
            policy: files.policy,
            policy_tests: files.tests,
            data: config.data,
            ledger: {
              signing_key: signingKey,
              public_key: publicKey,
              key_id: keyId,
              kept_existing: keyExisted,
            },
            agent: { name: o.agent, key: agent.key },
            reviewer: { email: o.reviewer, token: reviewer.token },
            start: `npx airlock --config ${files.config} serve`,
          };
          if (o.json) {
            process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
            return;
          }
          process.stdout.write(
            [
              `Airlock is set up in ${dir}`,
              '',
              `  config        ${files.config}`,
              `  policy        ${files.policy}  (tests: ${files.tests})`,
              `  store         ${config.data}`,
              `  ledger key    ${signingKey}${keyExisted ? ' (kept)' : ''}  (public: ${publicKey})`,
              '',
              'Start it:',
              `  ${out.start}`,
              '',
              `Paste into your agent (the key is shown only now):`,
              `  const stripe = new Stripe('${agent.key}', { host: '127.0.0.1', port: ${config.port}, protocol: 'http' });`,
              '',
              `Reviewer ${o.reviewer}: API token (shown only now) ${reviewer.token}`,
              `  curl -X POST http://127.0.0.1:${config.port}/api/actions/act_…/approve -H 'Authorization: Bearer ${reviewer.token}'`,
              '',
              'Verify the ledger against its signed digests:',
              `  npx airlock --config ${files.config} audit verify --digests ${config.ledger.digest_file} --public-key ${publicKey}`,
              '',
            ].join('\n'),
          );
        } finally {
          await store.close();
        }
      },
    );
}
