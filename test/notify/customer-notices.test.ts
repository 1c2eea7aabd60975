// Customer notices (issue 19, section 6): the customer hears by email, through a real SMTP server, when their refund
// completes or is rejected, with the reviewer's note where the rule allows; never for blocked or shadow-passed ones.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParsedMail } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import type { Reviewer } from '../../src/engine/engine.ts';
import { type Mailbox, startMailbox } from '../helpers/smtp.ts';
import { rejection, tempDir } from '../helpers/stack.ts';
import { FormClient, type ReviewStack, startReviewStack } from '../review/helpers.ts';

const POLICY = `
timezone: UTC
default: review
rules:
  - "Allow if :read:"
  - rule: "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
    customer_notice: true
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 400 and :amount_in_usd: <= 500"
    mode: shadow
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
    customer_notice: with_note
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 3000"
    customer_notice: true
  - "Block if :kind: = 'refund.create' and :amount_in_usd: > 9000"
`;

const CONFIG = `
customer_notices:
  from: Example Shop <support@shop.example>
  templates:
    rejected:
      subject: "Your refund request {{reference}}"
      text: |
        Dear {{customer_name}}, we could not refund {{amount}} on {{charge}}.
        {{#note}}Our team says: {{note}}{{/note}}
`;

let smtp: Mailbox;
let stack: ReviewStack;
let alice: Reviewer;
let bob: Reviewer;

beforeAll(async () => {
  smtp = await startMailbox();
  const dir = tempDir();
  const configFile = join(dir, 'airlock.yaml');
  writeFileSync(configFile, CONFIG);
  stack = await startReviewStack({
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtp.port),
    SMTP_FROM: 'Airlock <airlock@example.com>',
    AIRLOCK_CONFIG: configFile,
  });
  writeFileSync(join(stack.dir, 'policy.yaml'), POLICY);
  await stack.airlock.reloadPolicy();
  alice = { ...stack.reviewers.alice, groups: ['finance'] };
  bob = { ...stack.reviewers.bob, groups: ['finance'] };
});

afterAll(async () => {
  await stack?.close();
  await smtp?.close();
});

let customers = 0;
/** A charge of `amount` cents to a new customer with an email address; returns the charge and the address. */
async function chargeToCustomer(
  amount: number,
  name = 'Dana Shopper',
): Promise<{ charge: string; email: string }> {
  const email = `shopper${++customers}-${Date.now()}@customer.example`;
  const customer = await stack.direct.customers.create({ email, name });
  const charge = await stack.direct.charges.create({
    amount,
    currency: 'usd',
    source: 'tok_visa',
    customer: customer.id,
  });
  return { charge: charge.id, email };
}

function to(m: ParsedMail): string {
  const t = Array.isArray(m.to) ? m.to[0] : m.to;
  return t?.value[0]?.address ?? '';
}

async function mailTo(address: string): Promise<ParsedMail> {
  await expect.poll(() => smtp.inbox.some((m) => to(m) === address), { timeout: 10_000 }).toBe(true);
  return smtp.inbox.find((m) => to(m) === address)!;
}

async function hold(charge: string, amount: number): Promise<string> {
  const err = await rejection(stack.agent.refunds.create({ charge, amount }));
  expect(err.code).toBe('approval_required');
  return err.raw.airlock_action as string;
}

/** Notices for an action, from the outbox, once none is still queued. */
async function noticesFor(actionId: string) {
  let rows: Awaited<ReturnType<typeof stack.airlock.store.outbox.notificationsFor>> = [];
  await expect
    .poll(async () => {
      rows = (await stack.airlock.store.outbox.notificationsFor(actionId)).filter(
        (n) => n.event === 'customer_notice',
      );
      return rows.every((n) => n.status !== 'queued');
    })
    .toBe(true);
  return rows;
}

describe('customer notices', () => {
  it('emails the customer the rejection with the reviewer note, from the configured template and sender', async () => {
    const { charge, email } = await chargeToCustomer(200_000);
    const id = await hold(charge, 60_000);
    await stack.airlock.engine.reject(id, alice, 'This order was already refunded as store credit.');
    const mail = await mailTo(email);
    expect(mail.from?.value[0]).toMatchObject({ name: 'Example Shop', address: 'support@shop.example' });
    expect(mail.subject).toBe(`Your refund request ${id}`);
    expect(mail.text).toContain(`Dear Dana Shopper, we could not refund $600.00 on ${charge}.`);
    expect(mail.text).toContain('Our team says: This order was already refunded as store credit.');
    const [notice] = await noticesFor(id);
    expect(notice).toMatchObject({
      channel: 'customer_email',
      recipient: expect.stringMatching(/^customer:cus_/),
    });
    expect(notice?.status).toBe('sent');
    const events = await stack.airlock.store.ledgerForAction(id);
    expect(events.map((e) => e.type)).toContain('notification.sent');
    const reviewer = new FormClient(stack.airlock.url);
    await reviewer.logIn(alice.email);
    const receipt = await reviewer.request(`/review/actions/${id}`);
    expect(receipt.text).toMatch(/<th>customer_email<\/th><td>customer:cus_\w+/);
  });

  it('emails the completion with the approving note when the rule says with_note', async () => {
    const { charge, email } = await chargeToCustomer(200_000);
    const id = await hold(charge, 70_000);
    await stack.airlock.engine.approve(id, alice, 'Approved: damaged on arrival.');
    await stack.airlock.engine.waitFor(id, (s) => s === 'completed', 10_000, 20);
    const mail = await mailTo(email);
    expect(mail.subject).toBe('Your refund of $700.00 has been processed');
    expect(mail.text).toContain('Hello Dana Shopper,');
    expect(mail.text).toContain('A note from our team: Approved: damaged on arrival.');
    expect(mail.text).toContain(`Reference: ${id}`);
  });

  it('leaves the note out when any rule that decided allows only a plain notice', async () => {
    const { charge, email } = await chargeToCustomer(600_000);
    const id = await hold(charge, 350_000);
    await stack.airlock.engine.approve(id, bob, 'Internal: customer is a reseller, watch them.');
    await stack.airlock.engine.waitFor(id, (s) => s === 'completed', 10_000, 20);
    const mail = await mailTo(email);
    expect(mail.subject).toBe('Your refund of $3,500.00 has been processed');
    expect(mail.text).not.toContain('reseller');
    expect(mail.text).not.toContain('A note from our team');
  });

  it('writes to the address the agent named in metadata for an allowed refund, without a note', async () => {
    const { charge, email } = await chargeToCustomer(50_000);
    const named = `named-${Date.now()}@customer.example`;
    const refund = await stack.agent.refunds.create({
      charge,
      amount: 20_000,
      metadata: { customer_email: named },
    });
    const mail = await mailTo(named);
    expect(mail.subject).toBe('Your refund of $200.00 has been processed');
    expect(mail.text).not.toContain('A note from our team');
    expect(smtp.inbox.some((m) => to(m) === email)).toBe(false);
    expect(refund.metadata?.['airlock_action']).toBeTruthy();
  });

  it('sends nothing for a blocked refund, a shadow-passed one, or one still held', async () => {
    const blocked = await chargeToCustomer(2_000_000);
    const err = await rejection(stack.agent.refunds.create({ charge: blocked.charge, amount: 950_000 }));
    expect(err.code).toBe('action_blocked');
    const shadow = await chargeToCustomer(100_000);
    const passed = await stack.agent.refunds.create({ charge: shadow.charge, amount: 45_000 });
    const shadowId = passed.metadata?.['airlock_action'] as string;
    expect((await stack.airlock.engine.get(shadowId)).shadow).toBe(1);
    const held = await chargeToCustomer(200_000);
    const heldId = await hold(held.charge, 80_000);

    // A later notice that does go out shows the sweeps ran past these.
    const later = await chargeToCustomer(50_000);
    await stack.agent.refunds.create({ charge: later.charge, amount: 1_000 });
    await mailTo(later.email);
    for (const c of [blocked, shadow, held]) expect(smtp.inbox.some((m) => to(m) === c.email)).toBe(false);
    expect(await noticesFor(shadowId)).toEqual([]);
    expect(await noticesFor(heldId)).toEqual([]);
  });
});

describe('customer notice configuration', () => {
  const base = { PORT: '0', STRIPE_API_BASE: 'http://127.0.0.1:1' };

  it('refuses a template naming something Airlock does not fill, and names it', () => {
    const file = join(tempDir(), 'airlock.yaml');
    writeFileSync(
      file,
      'smtp: { host: 127.0.0.1 }\ncustomer_notices:\n  templates:\n    completed: { subject: "Hi {{frist_name}}", text: "ok" }\n',
    );
    expect(() => loadConfig({ ...base, AIRLOCK_CONFIG: file })).toThrow(/\{\{frist_name\}\}/);
  });

  it('refuses customer notices without smtp', () => {
    const file = join(tempDir(), 'airlock.yaml');
    writeFileSync(file, 'customer_notices:\n  kinds: [refund.create]\n');
    expect(() => loadConfig({ ...base, AIRLOCK_CONFIG: file })).toThrow(/configure smtp as well/);
  });
});
