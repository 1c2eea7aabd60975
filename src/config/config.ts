import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AirlockError } from '../errors.ts';

const DispatchSchema = z
  .object({
    max_attempts: z.coerce.number().int().min(1).max(100).default(6),
    backoff_ms: z.coerce.number().int().min(1).default(250),
    max_backoff_ms: z.coerce.number().int().min(1).default(10_000),
    lease_ms: z.coerce.number().int().min(1000).default(60_000),
    poll_ms: z.coerce.number().int().min(10).default(500),
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

const UpstreamHostSchema = z
  .object({
    host: z.string().min(1),
    allow_private: z.boolean().default(false),
    headers: z.record(z.string(), z.string()).default({}),
  })
  .strict();

/** Lists may also come from the environment as JSON. */
const jsonList = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (typeof v === 'string' ? JSON.parse(v) : v), z.array(item));

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
      .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
      .transform((v) => v === true || v === 'true' || v === '1')
      .default(false),
  })
  .strict();

export const ConfigSchema = z
  .object({
    port: z.coerce.number().int().min(0).max(65535).default(4700),
    host: z.string().min(1).default('127.0.0.1'),
    data: z.string().min(1).default('./data/airlock.db'),
    database_url: z.string().optional(),
    policy: z.string().optional(),
    stripe_secret_key: z.string().optional(),
    stripe_api_base: z.url().optional(),
    sandbox_port: z.coerce.number().int().min(0).max(65535).default(4701),
    body_limit_bytes: z.coerce
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    dispatch: DispatchSchema.default(DispatchSchema.parse({})),
    /** Where reviewers reach the dashboard, used in email and Slack links; defaults to the listening address. */
    public_url: z.url().optional(),
    review: ReviewSchema.default(ReviewSchema.parse({})),
    smtp: SmtpSchema.optional(),
    slack_webhook_url: z.url().optional(),
    /** Hosts the actions API may call, with the credentials Airlock adds for each. */
    http_upstreams: jsonList(UpstreamHostSchema).default([]),
    callbacks: CallbacksSchema.default(CallbacksSchema.parse({})),
  })
  .strict();

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
  AIRLOCK_SANDBOX_PORT: ['sandbox_port'],
  AIRLOCK_LOG_LEVEL: ['log_level'],
  AIRLOCK_DISPATCH_MAX_ATTEMPTS: ['dispatch', 'max_attempts'],
  AIRLOCK_DISPATCH_BACKOFF_MS: ['dispatch', 'backoff_ms'],
  AIRLOCK_DISPATCH_MAX_BACKOFF_MS: ['dispatch', 'max_backoff_ms'],
  AIRLOCK_DISPATCH_POLL_MS: ['dispatch', 'poll_ms'],
  AIRLOCK_UPSTREAM_TIMEOUT_MS: ['dispatch', 'upstream_timeout_ms'],
  AIRLOCK_PUBLIC_URL: ['public_url'],
  SMTP_HOST: ['smtp', 'host'],
  SMTP_PORT: ['smtp', 'port'],
  SMTP_USER: ['smtp', 'user'],
  SMTP_PASS: ['smtp', 'pass'],
  SMTP_FROM: ['smtp', 'from'],
  SLACK_WEBHOOK_URL: ['slack_webhook_url'],
  AIRLOCK_HTTP_UPSTREAMS: ['http_upstreams'],
  AIRLOCK_CALLBACK_SECRET: ['callbacks', 'secret'],
  AIRLOCK_CALLBACK_MAX_ATTEMPTS: ['callbacks', 'max_attempts'],
  AIRLOCK_CALLBACK_BACKOFF_MS: ['callbacks', 'backoff_ms'],
  AIRLOCK_CALLBACK_POLL_MS: ['callbacks', 'poll_ms'],
  AIRLOCK_CALLBACK_ALLOW_PRIVATE: ['callbacks', 'allow_private'],
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
      const key = i.path.join('.');
      const envName = Object.entries(ENV).find(([, p]) => p.join('.') === key)?.[0];
      const source =
        envName && env[envName] !== undefined ? `environment variable ${envName}` : (file ?? 'defaults');
      return `${key || '(root)'} (from ${source}): ${i.message}`;
    });
    throw new AirlockError('config_invalid', `Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}
