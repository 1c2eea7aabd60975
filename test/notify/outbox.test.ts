// A crash between the commit of a hold and the reviewer's email: the real `airlock serve` is SIGKILLed while its
// SMTP server has the message but has not accepted it. After a restart the reviewer gets it exactly once, from a
// real SMTP server in the test, and the receipt says so.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort, type ServeProcess, spawnServe } from '../../harness/serve-process.ts';
import type { Sandbox } from '../../src/stripe/sandbox/index.ts';
import { prepareServe } from '../helpers/operator.ts';
import { cli } from '../helpers/process.ts';
import { rejection, stripeAt } from '../helpers/stack.ts';
import { FormClient } from '../review/helpers.ts';
import { type ControlledMailbox, recipientOf, startControlledMailbox } from './mailbox.ts';

const PASSWORD = 'a long passphrase for ops';

let sandbox: Sandbox;
let smtp: ControlledMailbox;
let env: Record<string, string>;
let port: number;
const servers: ServeProcess[] = [];

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function serve(): Promise<ServeProcess> {
  // The same port every time, as in production: the links composed before the crash must work after it.
  const s = await spawnServe({ env, port });
  servers.push(s);
  return s;
}

beforeAll(async () => {
  smtp = await startControlledMailbox();
  ({ sandbox, env } = await prepareServe({
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtp.port),
    SMTP_FROM: 'Airlock <airlock@example.com>',
  }));
  port = await freePort();
});

afterAll(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  await smtp.down();
  await sandbox.close();
});

it('delivers the reviewer’s email exactly once when the server is SIGKILLed after the hold commits and before the send completes', async () => {
  const key = await cli(['keys', 'create', '--agent', 'notify-bot', '--json'], env);
  const reviewer = await cli(
    ['reviewers', 'create', '--email', 'ops@example.com', '--password', PASSWORD, '--json'],
    env,
  );
  expect(reviewer.code).toBe(0);
  const agentKey: string = JSON.parse(key.stdout).key;

  // The SMTP server reads each message but never answers it: the sender is stuck mid-send.
  smtp.stall = true;
  const first = await serve();
  const direct = stripeAt('sk_test_direct', sandbox.port);
  const ch = await direct.charges.create({ amount: 75_000, currency: 'usd', source: 'tok_visa' });
  const err = await rejection(
    stripeAt(agentKey, first.port).refunds.create({ charge: ch.id, amount: 75_000 }),
  );
  expect(err.code).toBe('approval_required'); // the hold has committed
  const actionId: string = err.raw.airlock_action;

  await until(() => smtp.unanswered.some((m) => m.subject?.includes(actionId)), 10_000, 'the send to start');
  await first.stop('SIGKILL');
  expect(smtp.acceptedWith(actionId)).toHaveLength(0); // never delivered: the old notifier lost it here

  smtp.stall = false;
  const second = await serve();
  await until(() => smtp.acceptedWith(actionId).length > 0, 15_000, 'the email after the restart');
  // Several sweeps later (one every 500 ms), still one.
  await new Promise((r) => setTimeout(r, 2_000));
  const mails = smtp.acceptedWith(actionId);
  expect(mails).toHaveLength(1);
  const mail = mails[0]!;
  expect(recipientOf(mail)).toBe('ops@example.com');
  expect(mail.subject).toContain('Refund $750.00 by agent notify-bot');

  // Its link, made before the crash, works after it, and decides nothing when opened.
  const approve = /Approve: (\S+)/.exec(mail.text ?? '')?.[1];
  expect(approve).toMatch(new RegExp(`^${second.url}/review/links/lnk_`));
  expect((await fetch(approve!)).status).toBe(200);

  // The receipt shows the delivery: one attempt, the one after the restart (the killed one recorded nothing).
  const ops = new FormClient(second.url);
  expect(await ops.logIn('ops@example.com', PASSWORD)).toBe(303);
  const receipt = await ops.request(`/review/actions/${actionId}`);
  expect(receipt.status).toBe(200);
  expect(receipt.text).toMatch(
    /<th>email<\/th><td>ops@example\.com<div class="sub">sent [^<]* · 1 attempt · last answer 250/,
  );
  expect(receipt.text).toContain('Notified ops@example.com by email');
  expect(receipt.text).toContain('awaiting');

  // Acknowledged once, never again: another restart sends nothing more.
  await second.stop('SIGKILL');
  await serve();
  await new Promise((r) => setTimeout(r, 2_000));
  expect(smtp.acceptedWith(actionId)).toHaveLength(1);
  expect(smtp.unanswered.filter((m) => m.subject?.includes(actionId))).toHaveLength(1);

  const verify = await cli(['audit', 'verify'], env);
  expect(verify.code).toBe(0);
}, 180_000);
