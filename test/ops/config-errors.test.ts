import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { AirlockError } from '../../src/errors.ts';
import { cli } from '../helpers/process.ts';
import { tempDir } from '../helpers/stack.ts';

function messageOf(env: Record<string, string>, yaml?: string): { message: string; file: string } {
  let file = '';
  if (yaml !== undefined) {
    file = join(tempDir(), 'airlock.yaml');
    writeFileSync(file, yaml);
  }
  try {
    loadConfig(env, file || undefined);
  } catch (err) {
    expect(err).toBeInstanceOf(AirlockError);
    expect((err as AirlockError).code).toBe('config_invalid');
    return { message: (err as Error).message, file };
  }
  throw new Error('expected the configuration to be refused');
}

// Each bad value: where it is set, and the line the operator must see (key, source, what was expected).
const fromEnv: [string, Record<string, string>, string][] = [
  [
    'a port that is not a number',
    { PORT: 'abc' },
    'port (from environment variable PORT): Invalid input: expected number',
  ],
  [
    'a port out of range',
    { PORT: '70000' },
    'port (from environment variable PORT): Too big: expected number to be <=65535',
  ],
  [
    'an unknown log level',
    { AIRLOCK_LOG_LEVEL: 'loud' },
    'log_level (from environment variable AIRLOCK_LOG_LEVEL): Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"',
  ],
  [
    'an unknown log format',
    { AIRLOCK_LOG_FORMAT: 'xml' },
    'log_format (from environment variable AIRLOCK_LOG_FORMAT): Invalid option: expected one of "auto"|"json"|"pretty"',
  ],
  [
    'an upstream base that is not a URL',
    { STRIPE_API_BASE: 'api.stripe.com' },
    'stripe_api_base (from environment variable STRIPE_API_BASE): expected an absolute URL such as https://host/path',
  ],
  [
    'a public URL that is not a URL',
    { AIRLOCK_PUBLIC_URL: 'example.com' },
    'public_url (from environment variable AIRLOCK_PUBLIC_URL): expected an absolute URL',
  ],
  [
    'zero dispatch attempts',
    { AIRLOCK_DISPATCH_MAX_ATTEMPTS: '0' },
    'dispatch.max_attempts (from environment variable AIRLOCK_DISPATCH_MAX_ATTEMPTS): Too small: expected number to be >=1',
  ],
  [
    'a short callback secret',
    { AIRLOCK_CALLBACK_SECRET: 'short' },
    'callbacks.secret (from environment variable AIRLOCK_CALLBACK_SECRET): Too small: expected string to have >=16 characters',
  ],
  [
    'a callback switch that is not a boolean',
    { AIRLOCK_CALLBACK_ALLOW_PRIVATE: 'maybe' },
    'callbacks.allow_private (from environment variable AIRLOCK_CALLBACK_ALLOW_PRIVATE): expected true or false',
  ],
  [
    'upstream hosts that are not JSON',
    { AIRLOCK_HTTP_UPSTREAMS: 'api.shop.example' },
    'http_upstreams (from environment variable AIRLOCK_HTTP_UPSTREAMS): expected a JSON list',
  ],
  [
    'an upstream host entry without its host',
    { AIRLOCK_HTTP_UPSTREAMS: '[{"hots":"api.shop.example"}]' },
    'http_upstreams.0.hots (from environment variable AIRLOCK_HTTP_UPSTREAMS): unknown setting',
  ],
  [
    'a negative metrics port',
    { AIRLOCK_METRICS_PORT: '-1' },
    'metrics.port (from environment variable AIRLOCK_METRICS_PORT): Too small: expected number to be >=0',
  ],
  [
    'a metrics switch that is not a boolean',
    { AIRLOCK_METRICS_ENABLED: 'maybe' },
    'metrics.enabled (from environment variable AIRLOCK_METRICS_ENABLED): expected true or false',
  ],
  [
    'a metrics path without a leading slash',
    { AIRLOCK_METRICS_PATH: 'metrics' },
    'metrics.path (from environment variable AIRLOCK_METRICS_PATH): expected a path starting with /',
  ],
  [
    'an SMTP port without an SMTP host',
    { SMTP_PORT: '25' },
    'smtp.host (from environment variables SMTP_PORT; set SMTP_HOST): Invalid input: expected string',
  ],
];

describe('configuration errors name the key, the source and what was expected', () => {
  it.each(fromEnv)('%s', (_name, env, line) => {
    expect(messageOf(env).message).toContain(line);
  });

  it('reports every bad value of a file at once, each with the file and its key', () => {
    const { message, file } = messageOf(
      {},
      [
        'port: 70000',
        'log_level: loud',
        'prot: 4700',
        'dispatch:',
        '  max_attempts: 0',
        'smtp:',
        '  port: 25',
      ].join('\n'),
    );
    expect(message).toContain(`port (from ${file}): Too big: expected number to be <=65535`);
    expect(message).toContain(`log_level (from ${file}): Invalid option: expected one of`);
    expect(message).toContain(`prot (from ${file}): unknown setting`);
    expect(message).toContain(`dispatch.max_attempts (from ${file}): Too small: expected number to be >=1`);
    expect(message).toContain(`smtp.host (from ${file}): Invalid input: expected string`);
    expect(message.split('\n')).toHaveLength(6);
  });

  it('names the environment variable when it overrides a good value in the file', () => {
    const { message, file } = messageOf({ PORT: 'x' }, 'port: 4700\n');
    expect(message).toContain('port (from environment variable PORT)');
    expect(message).not.toContain(file);
  });

  it('gives the file, line and column of a YAML syntax error', () => {
    const { message, file } = messageOf({}, 'port: 4700\nhost: [1\n');
    expect(message).toContain(`${file}:`);
    expect(message).toMatch(/at line \d+, column \d+/);
  });

  it('refuses a file that is not a mapping of settings', () => {
    const { message, file } = messageOf({}, '- port\n- host\n');
    expect(message).toBe(`${file}: the file must hold a mapping of settings`);
  });

  it('names a config file that does not exist', () => {
    const missing = join(tempDir(), 'nope.yaml');
    expect(() => loadConfig({}, missing)).toThrow(`${missing}: ENOENT`);
  });

  it('stops `airlock serve` with exit code 1 and the message on stderr', async () => {
    const r = await cli(['serve'], { PORT: 'abc', AIRLOCK_METRICS_PORT: '99999' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('port (from environment variable PORT): Invalid input: expected number');
    expect(r.stderr).toContain('metrics.port (from environment variable AIRLOCK_METRICS_PORT): Too big');
  });
});
