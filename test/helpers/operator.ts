// What an operator sets up before running `airlock serve` as a process of its own: a Stripe to talk to, a data
// folder, the environment naming both, and credentials made with the CLI.
import { join } from 'node:path';
import { type Sandbox, startSandbox } from '../../src/stripe/sandbox/index.ts';
import { cli } from './process.ts';
import { tempDir } from './stack.ts';

/** A Stripe sandbox and an empty data folder, and the environment that points the server and the CLI at both. */
export async function prepareServe(
  env: Record<string, string> = {},
): Promise<{ sandbox: Sandbox; dir: string; env: Record<string, string> }> {
  const sandbox = await startSandbox();
  const dir = tempDir();
  return {
    sandbox,
    dir,
    env: { AIRLOCK_DATA: join(dir, 'airlock.db'), STRIPE_API_BASE: sandbox.url, ...env },
  };
}

/** An agent key and a reviewer token made with the CLI. */
export async function credentialsFromCli(
  env: Record<string, string>,
  names: { agent: string; reviewer: string },
): Promise<{ agentKey: string; reviewerToken: string }> {
  const key = await cli(['keys', 'create', '--agent', names.agent, '--json'], env);
  const reviewer = await cli(['reviewers', 'create', '--email', names.reviewer, '--json'], env);
  return { agentKey: JSON.parse(key.stdout).key, reviewerToken: JSON.parse(reviewer.stdout).token };
}
