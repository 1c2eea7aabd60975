import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AirlockError } from '../errors.ts';
import { TEMPLATE_VARIABLES, unknownTemplateNames } from '../notify/template.ts';
import { isPointer, locationProblem, patternProblem, ROUTE_METHODS } from '../outbound/routes.ts';

const DispatchSchema = z
  .object({
    max_attempts: z.coerce.number().int().min(1).max(100).default(6),
    backoff_ms: z.coerce.number().int().min(1).default(250),
    max_backoff_ms: z.coerce.number().int().min(1).default(10_000),
    lease_ms: z.coerce.number().int().min(1000).default(60_000),
    poll_ms: z.coerce.number().int().min(10).default(500),
    reconcile_ms: z.coerce.number().int().min(10).default(60_000),
    upstream_timeout_ms: z.coerce.number().int().min(100).default(30_000),
  })
  .strict();

const ReviewSchema = z
  .object({
    session_ttl_ms: z.coerce
      .number()
      .int()
      .min(60_000)
      .default(12 * 3600_000),
    link_ttl_ms: z.coerce
      .number()
      .int()
      .min(60_000)
      .default(72 * 3600_000),
    /** Off: the dashboard takes no passwords, only single sign-on (`oidc:`). */
    password_login: z
      .union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')])
      .default(true),
  })
  .strict();

/** Reviewers' single sign-on by OpenID Connect (authorization code flow with PKCE); see docs/review.md. */
const OidcSchema = z
  .object({
    issuer: z.url({ error: 'expected the identity provider URL, such as https://example.okta.com' }),
    client_id: z.string().min(1),
    /** Absent for a public client: PKCE alone protects the code. */
    client_secret: z.string().min(1).optional(),
    scopes: z.string().min(1).default('openid email profile'),
    /** The claim that lists the user's groups. */
    groups_claim: z.string().min(1).default('groups'),
    /** Identity-provider group → Airlock group (`finance-team: finance`); when empty, groups pass through as named. */
    group_map: z.record(z.string().min(1), z.string().min(1)).default({}),
    /** Only members of this identity-provider group may log in. */
    required_group: z.string().min(1).optional(),
    /** The provider's name on the login button. */
    name: z.string().min(1).max(60).default('single sign-on'),
  })
  .strict();

// Email for reviewers goes through any SMTP server; unset means no email is sent.
const SmtpSchema = z
  .object({
    host: z.string().min(1),
    port: z.coerce.number().int().min(1).max(65535).default(587),
    // Implicit TLS (port 465); otherwise STARTTLS is used when the server offers it.
    secure: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
    user: z.string().optional(),
    pass: z.string().optional(),
    from: z.string().min(3).default('Airlock <airlock@localhost>'),
  })
  .strict();

/** Slack's interactive app: a bot posts each hold with Approve and Reject; Slack posts the presses back. */
const SlackAppSchema = z
  .object({
    /** The bot's token, xoxb-… (chat:write; users:read.email to link by email). */
    bot_token: z.string().min(1),
    /** The app's signing secret, which Slack signs interaction requests with. */
    signing_secret: z.string().min(1),
    /** The channel id (C…) holds are posted to. */
    channel: z.string().min(1),
    /** Slack's Web API base; only a test points it elsewhere. */
    api_url: z.url({ error: 'expected an absolute URL such as https://slack.com/api/' }).optional(),
    /** A Slack user whose confirmed Slack email is a reviewer's is linked to that reviewer on first press. */
    link_by_email: z
      .union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')])
      .default(false),
  })
  .strict();

const problem = (check: (v: string) => string | null) => (v: string, ctx: z.RefinementCtx) => {
  const message = check(v);
  if (message) ctx.addIssue({ code: 'custom', message });
};
const method = z.preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), z.enum(ROUTE_METHODS));
const bodyLocation = z.string().min(1).superRefine(problem(locationProblem));

// What a generic call to this host is, and where its amount sits in the body: the operator says, not the caller.
const RouteSchema = z
  .object({
    method: z.union([method, z.array(method).min(1)]).transform((m) => (Array.isArray(m) ? m : [m])),
    path: z.string().superRefine(problem(patternProblem)),
    kind: z
      .string()
      .regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/, 'expected a dotted lower-case name such as refund.create')
      .max(64),
    amount: bodyLocation.optional(),
    currency: z
      .union([
        bodyLocation,
        z
          .object({ value: z.string().regex(/^[A-Za-z]{3}$/, 'expected a three-letter ISO currency code') })
          .strict(),
      ])
      .optional(),
  })
  .strict()
  .superRefine((route, ctx) => {
    const where = route.currency;
    if (where === undefined || route.amount === undefined) {
      if (where !== undefined)
        ctx.addIssue({ code: 'custom', path: ['currency'], message: 'a currency needs an amount' });
      return;
    }
    if (typeof where === 'string' && isPointer(where) !== isPointer(route.amount)) {
      ctx.addIssue({
        code: 'custom',
        path: ['currency'],
        message: 'read the currency the way the amount is read: both JSON pointers or both form keys',
      });
    }
  });

const UpstreamHostSchema = z
  .object({
    host: z.string().min(1),
    allow_private: z.boolean().default(false),
    headers: z.record(z.string(), z.string()).default({}),
    /** Declared routes: the first that matches a call's method and path gives its kind and amount. */
    routes: z.array(RouteSchema).default([]),
  })
  .strict();

/** Lists may also come from the environment as JSON. */
const jsonList = <T extends z.ZodType>(item: T) =>
  z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON list' });
      return z.NEVER;
    }
  }, z.array(item));

const NoticeTemplateSchema = z
  .object({
    subject: z.string().min(1).max(500).superRefine(problem(templateProblem)),
    text: z.string().min(1).max(20_000).superRefine(problem(templateProblem)),
  })
  .strict();

/** Emails to the customer when their action completes or is rejected (needs `smtp:`); see docs/review.md. */
const CustomerNoticesSchema = z
  .object({
    /** Kinds whose customers hear every outcome; a rule's `customer_notice:` adds the actions it decides. */
    kinds: jsonList(z.string().min(1)).default([]),
    /** Whether notices for those kinds carry the reviewers' notes. */
    note: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
    /** Where an agent may name the customer's address: `metadata[<key>]`; else the Stripe customer's email. */
    email_metadata_key: z.string().min(1).max(40).default('customer_email'),
    /** The sender; defaults to `smtp.from`. */
    from: z.string().min(3).optional(),
    templates: z
      .object({ completed: NoticeTemplateSchema.optional(), rejected: NoticeTemplateSchema.optional() })
      .strict()
      .default({}),
  })
  .strict();

function templateProblem(v: string): string | null {
  try {
    const unknown = unknownTemplateNames(v);
    return unknown.length
      ? `unknown template name ${unknown.map((n) => `{{${n}}}`).join(', ')}; expected ${TEMPLATE_VARIABLES.map((n) => `{{${n}}}`).join(', ')}`
      : null;
  } catch (err) {
    return `unreadable template: ${(err as Error).message}`;
  }
}

// Backoff doubles from 1 s to an hour, so 35 attempts span about a day.
const CallbacksSchema = z
  .object({
    secret: z.string().min(16).optional(),
    max_attempts: z.coerce.number().int().min(1).max(100).default(35),
    backoff_ms: z.coerce.number().int().min(1).default(1000),
    max_backoff_ms: z.coerce.number().int().min(1).default(3_600_000),
    poll_ms: z.coerce.number().int().min(10).default(500),
    timeout_ms: z.coerce.number().int().min(100).default(10_000),
    allow_private: z
      .union([z.boolean(), z.enum(['true', 'false', '1', '0'])], { error: 'expected true or false' })
      .transform((v) => v === true || v === 'true' || v === '1')
      .default(false),
  })
  .strict();

// Metrics on the main port at `path`, or on their own `port` (and `host`) so they can stay private.
const MetricsSchema = z
  .object({
    enabled: z
      .union([z.boolean(), z.enum(['true', 'false', '1', '0'])], { error: 'expected true or false' })
      .transform((v) => v === true || v === 'true' || v === '1')
      .default(true),
    path: z.string().startsWith('/', { message: 'expected a path starting with /' }).default('/metrics'),
    port: z.coerce.number().int().min(0).max(65535).optional(),
    host: z.string().min(1).default('127.0.0.1'),
  })
  .strict();

const RateLimitSchema = z.object({ per_minute: z.coerce.number().int().min(1).default(100) }).strict();

// While the store cannot be reached, writes are always refused; reads (not recorded in the store) are refused too
// unless the operator chooses to forward them.
const StoreOutageSchema = z.object({ reads: z.enum(['refuse', 'forward']).default('refuse') }).strict();

// Signed digests of the ledger head (docs/audit.md). The key is a file or the PEM itself, never the database;
// without one, digests are off and a rewrite by someone who can write the database goes unnoticed.
const LedgerSchema = z
  .object({
    signing_key_file: z.string().min(1).optional(),
    signing_key: z.string().min(1).optional(),
    /** The append-only JSON-lines copy of the digests; by default ledger-digests.jsonl beside the SQLite file. */
    digest_file: z.string().min(1).optional(),
    digest_interval_ms: z.coerce.number().int().min(100).default(60_000),
    /** A digest even when nothing changed, so a gap in the digests means something. */
    digest_idle_interval_ms: z.coerce.number().int().min(1000).default(3_600_000),
    digest_webhook_url: z.url({ error: 'expected an absolute URL such as https://host/path' }).optional(),
  })
  .strict()
  .refine((l) => !(l.signing_key && l.signing_key_file), {
    message: 'give signing_key_file or signing_key, not both',
    path: ['signing_key'],
  });

export const ConfigSchema = z
  .object({
    port: z.coerce.number().int().min(0).max(65535).default(4700),
    host: z.string().min(1).default('127.0.0.1'),
    data: z.string().min(1).default('./data/airlock.db'),
    database_url: z.string().optional(),
    policy: z.string().optional(),
    stripe_secret_key: z.string().optional(),
    stripe_api_base: z.url({ error: 'expected an absolute URL such as https://host/path' }).optional(),
    stripe_webhook_secret: z.string().optional(),
    stripe_webhook_path: z.string().startsWith('/').default('/stripe/webhooks'),
    /** Unset: the port after `port` (4701 beside 4700), or a free one when that is taken. 0: always a free one. */
    sandbox_port: z.coerce.number().int().min(0).max(65535).optional(),
    body_limit_bytes: z.coerce
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** auto: readable lines on a terminal, JSON otherwise. */
    log_format: z.enum(['auto', 'json', 'pretty']).default('auto'),
    /** Extra pino redaction paths (`req.body.card`, `*.api_key`) on top of the built-in credentials. */
    log_redact: jsonList(z.string().min(1)).default([]),
    metrics: MetricsSchema.default(MetricsSchema.parse({})),
    dispatch: DispatchSchema.default(DispatchSchema.parse({})),
    /** Where reviewers reach the dashboard, used in email and Slack links; defaults to the listening address. */
    public_url: z.url({ error: 'expected an absolute URL such as https://host/path' }).optional(),
    review: ReviewSchema.default(ReviewSchema.parse({})),
    oidc: OidcSchema.optional(),
    smtp: SmtpSchema.optional(),
    slack_webhook_url: z.url({ error: 'expected an absolute URL such as https://host/path' }).optional(),
    /** A Teams incoming webhook or Workflows URL; holds are posted there as Adaptive Cards. */
    teams_webhook_url: z.url({ error: 'expected an absolute URL such as https://host/path' }).optional(),
    customer_notices: CustomerNoticesSchema.optional(),
    slack: SlackAppSchema.optional(),
    /** Hosts the actions API may call, with the credentials Airlock adds for each. */
    http_upstreams: jsonList(UpstreamHostSchema).default([]),
    callbacks: CallbacksSchema.default(CallbacksSchema.parse({})),
    /** Requests per minute per agent key on the proxy and the agent APIs; in memory on each instance. */
    rate_limit: RateLimitSchema.default(RateLimitSchema.parse({})),
    store_outage: StoreOutageSchema.default(StoreOutageSchema.parse({})),
    ledger: LedgerSchema.default(LedgerSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.customer_notices && !c.smtp)
      ctx.addIssue({
        code: 'custom',
        path: ['customer_notices'],
        message: 'customer notices are sent by email: configure smtp as well',
      });
    if (!c.review.password_login && !c.oidc)
      ctx.addIssue({
        code: 'custom',
        path: ['review', 'password_login'],
        message: 'with password login off, reviewers need single sign-on: configure oidc as well',
      });
  });

export type Config = z.infer<typeof ConfigSchema>;

/** Environment variables and the config keys they set. The environment wins over the file. */
const ENV: Record<string, string[]> = {
  PORT: ['port'],
  HOST: ['host'],
  AIRLOCK_DATA: ['data'],
  DATABASE_URL: ['database_url'],
  AIRLOCK_POLICY: ['policy'],
  STRIPE_SECRET_KEY: ['stripe_secret_key'],
  STRIPE_API_BASE: ['stripe_api_base'],
  STRIPE_WEBHOOK_SECRET: ['stripe_webhook_secret'],
  AIRLOCK_STRIPE_WEBHOOK_PATH: ['stripe_webhook_path'],
  AIRLOCK_SANDBOX_PORT: ['sandbox_port'],
  AIRLOCK_LOG_LEVEL: ['log_level'],
  AIRLOCK_RATE_LIMIT_PER_MINUTE: ['rate_limit', 'per_minute'],
  AIRLOCK_STORE_OUTAGE_READS: ['store_outage', 'reads'],
  AIRLOCK_LOG_FORMAT: ['log_format'],
  AIRLOCK_LOG_REDACT: ['log_redact'],
  AIRLOCK_METRICS_ENABLED: ['metrics', 'enabled'],
  AIRLOCK_METRICS_PATH: ['metrics', 'path'],
  AIRLOCK_METRICS_PORT: ['metrics', 'port'],
  AIRLOCK_METRICS_HOST: ['metrics', 'host'],
  AIRLOCK_DISPATCH_MAX_ATTEMPTS: ['dispatch', 'max_attempts'],
  AIRLOCK_DISPATCH_BACKOFF_MS: ['dispatch', 'backoff_ms'],
  AIRLOCK_DISPATCH_MAX_BACKOFF_MS: ['dispatch', 'max_backoff_ms'],
  AIRLOCK_DISPATCH_POLL_MS: ['dispatch', 'poll_ms'],
  AIRLOCK_DISPATCH_RECONCILE_MS: ['dispatch', 'reconcile_ms'],
  AIRLOCK_UPSTREAM_TIMEOUT_MS: ['dispatch', 'upstream_timeout_ms'],
  AIRLOCK_PUBLIC_URL: ['public_url'],
  SMTP_HOST: ['smtp', 'host'],
  SMTP_PORT: ['smtp', 'port'],
  SMTP_USER: ['smtp', 'user'],
  SMTP_PASS: ['smtp', 'pass'],
  SMTP_FROM: ['smtp', 'from'],
  SLACK_WEBHOOK_URL: ['slack_webhook_url'],
  TEAMS_WEBHOOK_URL: ['teams_webhook_url'],
  AIRLOCK_PASSWORD_LOGIN: ['review', 'password_login'],
  AIRLOCK_OIDC_ISSUER: ['oidc', 'issuer'],
  AIRLOCK_OIDC_CLIENT_ID: ['oidc', 'client_id'],
  AIRLOCK_OIDC_CLIENT_SECRET: ['oidc', 'client_secret'],
  AIRLOCK_OIDC_GROUPS_CLAIM: ['oidc', 'groups_claim'],
  AIRLOCK_OIDC_NAME: ['oidc', 'name'],
  SLACK_BOT_TOKEN: ['slack', 'bot_token'],
  SLACK_SIGNING_SECRET: ['slack', 'signing_secret'],
  AIRLOCK_SLACK_CHANNEL: ['slack', 'channel'],
  AIRLOCK_SLACK_API_URL: ['slack', 'api_url'],
  AIRLOCK_SLACK_LINK_BY_EMAIL: ['slack', 'link_by_email'],
  AIRLOCK_HTTP_UPSTREAMS: ['http_upstreams'],
  AIRLOCK_CALLBACK_SECRET: ['callbacks', 'secret'],
  AIRLOCK_CALLBACK_MAX_ATTEMPTS: ['callbacks', 'max_attempts'],
  AIRLOCK_CALLBACK_BACKOFF_MS: ['callbacks', 'backoff_ms'],
  AIRLOCK_CALLBACK_POLL_MS: ['callbacks', 'poll_ms'],
  AIRLOCK_CALLBACK_ALLOW_PRIVATE: ['callbacks', 'allow_private'],
  AIRLOCK_LEDGER_SIGNING_KEY_FILE: ['ledger', 'signing_key_file'],
  AIRLOCK_LEDGER_SIGNING_KEY: ['ledger', 'signing_key'],
  AIRLOCK_LEDGER_DIGEST_FILE: ['ledger', 'digest_file'],
  AIRLOCK_LEDGER_DIGEST_INTERVAL_MS: ['ledger', 'digest_interval_ms'],
  AIRLOCK_LEDGER_DIGEST_IDLE_INTERVAL_MS: ['ledger', 'digest_idle_interval_ms'],
  AIRLOCK_LEDGER_DIGEST_WEBHOOK_URL: ['ledger', 'digest_webhook_url'],
};

/** Parses configuration once: the YAML file (AIRLOCK_CONFIG or --config), then the environment on top. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, file = env['AIRLOCK_CONFIG']): Config {
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      const parsed = parseYaml(readFileSync(file, 'utf8')) as unknown;
      if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
        throw new Error('the file must hold a mapping of settings');
      }
      raw = (parsed as Record<string, unknown>) ?? {};
      // Paths in the file are relative to the file, so a config works from any working directory.
      for (const key of ['data', 'policy']) {
        const v = raw[key];
        if (typeof v === 'string' && v !== ':memory:' && !isAbsolute(v)) raw[key] = resolve(dirname(file), v);
      }
      const ledger = raw['ledger'];
      if (ledger && typeof ledger === 'object') {
        const l = { ...(ledger as Record<string, unknown>) };
        for (const key of ['signing_key_file', 'digest_file']) {
          const v = l[key];
          if (typeof v === 'string' && !isAbsolute(v)) l[key] = resolve(dirname(file), v);
        }
        raw['ledger'] = l;
      }
    } catch (err) {
      throw new AirlockError('config_invalid', `${file}: ${(err as Error).message}`);
    }
  }
  for (const [name, path] of Object.entries(ENV)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let target = raw;
    for (const key of path.slice(0, -1)) {
      target[key] = { ...((target[key] as Record<string, unknown>) ?? {}) };
      target = target[key] as Record<string, unknown>;
    }
    target[path[path.length - 1]!] = value;
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const path = i.path.map(String);
      // An unknown key is reported at its parent; name the key itself.
      if (i.code === 'unrecognized_keys') path.push(...i.keys);
      const key = path.join('.');
      const message = i.code === 'unrecognized_keys' ? 'unknown setting' : i.message;
      return `${key || '(root)'} (from ${sourceOf(path, env, file)}): ${message}`;
    });
    throw new AirlockError('config_invalid', `Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}

/**
 * Where a bad value came from: the environment variable that set it (or the list holding it), else the file, else
 * the variables that started a section whose required key is missing (`SMTP_PORT` without `SMTP_HOST`).
 */
function sourceOf(path: string[], env: NodeJS.ProcessEnv, file: string | undefined): string {
  const isSet = (name: string) => Boolean(env[name]);
  const covering = Object.entries(ENV)
    .filter(([name, p]) => isSet(name) && p.every((k, n) => path[n] === k))
    .map(([name]) => name);
  if (covering.length) return `environment variable ${covering[0]}`;
  if (file) return file;
  const section = path.slice(0, -1).join('.');
  const siblings = Object.entries(ENV)
    .filter(([name, p]) => isSet(name) && section && p.slice(0, -1).join('.') === section)
    .map(([name]) => name);
  const own = Object.entries(ENV).find(([, p]) => p.join('.') === path.join('.'))?.[0];
  if (siblings.length) return `environment variables ${siblings.join(', ')}${own ? `; set ${own}` : ''}`;
  return 'defaults';
}
