// The SDK as a dependent gets it: `airlock/sdk` resolved by plain Node through package.json's exports (not by
// vitest's resolver), which must be the compiled entry in dist/ with its declarations, working against a real server.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIONS_POLICY, type Stack, startStackWithPolicy } from '../helpers/stack.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `code` as an ES module in a fresh `node` inside the package, where `airlock/sdk` is a self-reference. */
async function node(code: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  return stdout;
}

let stack: Stack;
beforeAll(async () => {
  stack = await startStackWithPolicy(ACTIONS_POLICY);
});
afterAll(async () => {
  await stack?.close();
});

describe('airlock/sdk from the package', () => {
  it('resolves to the compiled dist/sdk/index.js, and its types entry is a built declaration file', async () => {
    const resolved = await node("process.stdout.write(import.meta.resolve('airlock/sdk'))");
    expect(fileURLToPath(resolved)).toBe(join(ROOT, 'dist', 'sdk', 'index.js'));

    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const types = join(ROOT, pkg.exports['./sdk'].types);
    expect(types).toBe(join(ROOT, 'dist', 'sdk', 'index.d.ts'));
    expect(readFileSync(types, 'utf8')).toMatch(/export \{[^}]*\bAirlockClient\b/);
  });

  it('holds a $600 refund intent for review and reports the approval, compiled client against a real Airlock', async () => {
    const out = await node(
      `
      const { AirlockApiError, AirlockClient } = await import('airlock/sdk');
      const { URL, AGENT, REVIEWER } = process.env;
      const agent = new AirlockClient({ baseUrl: URL, apiKey: AGENT });
      const reviewer = new AirlockClient({ baseUrl: URL, apiKey: REVIEWER });
      const held = await agent.decisions.create({ intent: { kind: 'refund.create', amount: 60000, currency: 'usd' } });
      await reviewer.reviews.approve(held.id, { note: 'checked' });
      const decided = await agent.decisions.get(held.id);
      const refused = await new AirlockClient({ baseUrl: URL, apiKey: 'ak_not_a_key' })
        .decisions.get(held.id)
        .catch((err) => ({ apiError: err instanceof AirlockApiError, status: err.status }));
      process.stdout.write(JSON.stringify({ held: held.outcome, decided: decided.status, refused }));
      `,
      { URL: stack.airlock.url, AGENT: stack.agentKey, REVIEWER: stack.reviewerToken },
    );
    expect(JSON.parse(out)).toEqual({
      held: 'review',
      decided: 'approved',
      refused: { apiError: true, status: 401 },
    });
  });
});
