// Issue 15: what moves is what was decided. Each test drives Airlock with the official `stripe` client (or raw
// bytes, where the attack is in the bytes) against the built-in sandbox, and checks what the sandbox received.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReviewer } from '../../src/auth/credentials.ts';
import { charge, rejection, type Stack, startStackWithPolicy } from '../helpers/stack.ts';

const REFUNDS_UP_TO_500 = [
  'default: review',
  'rules:',
  '  - "Allow if :read:"',
  `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
  `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
];

/** What the sandbox received for one action: Airlock sends it under `Idempotency-Key: airlock-<id>`. */
function received(stack: Stack, id: string) {
  return stack.sandbox.requests().filter((r) => r.idempotencyKey === `airlock-${id}` && !r.faulted);
}

describe('a full refund is valued at what it will move, and sent with that amount', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStackWithPolicy(REFUNDS_UP_TO_500);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('values a full refund of a $1,000 charge captured for $600 at $600, holds it, and sends amount=60000', async () => {
    const ch = await stack.direct.charges.create({
      amount: 100_000,
      currency: 'usd',
      source: 'tok_visa',
      capture: false,
    });
    await stack.direct.charges.capture(ch.id, { amount: 60_000 });
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id }));
    expect(err.code).toBe('approval_required');
    const id: string = err.raw.airlock_action;
    const held = (await stack.api(`/api/actions/${id}`)).body;
    expect(held.status).toBe('awaiting_approval');
    expect(held.amount).toBe(60_000);
    expect(held.params.amount).toBe('60000');
    expect(held.derived).toMatchObject({ amount: 60_000, field: 'amount' });
    const done = (await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: { note: 'ok' } }))
      .body;
    expect(['pending', 'completed']).toContain(done.status);
    const final = (await stack.api(`/api/actions/${id}?wait=10`)).body;
    expect(final.status).toBe('completed');
    const [sent] = received(stack, id);
    expect(sent?.rawBody).toContain('amount=60000');
    expect(sent?.params['amount']).toBe('60000');
    expect(final.response_body.amount).toBe(60_000);
  });

  it('values a second full refund at what remains after a partial refund made in between', async () => {
    const ch = await charge(stack, 70_000);
    // The first call is a partial refund Airlock allows ($300); the charge changes between the two calls.
    const first = await stack.agent.refunds.create({ charge: ch.id, amount: 30_000 });
    expect(first.amount).toBe(30_000);
    // Now $400 remains: a full refund is $400, allowed, and must be sent as exactly that.
    const second = await stack.agent.refunds.create({ charge: ch.id });
    expect(second.amount).toBe(40_000);
    const actions = (await stack.api('/api/actions?limit=10')).body.data as any[];
    const action = actions.find((a) => a.response_body?.id === second.id);
    expect(action.amount).toBe(40_000);
    expect(received(stack, action.id)[0]?.rawBody).toContain('amount=40000');
  });

  it('values a full refund at the charge as it is now, not as an earlier look-up saw it', async () => {
    const ch = await stack.direct.charges.create({
      amount: 90_000,
      currency: 'usd',
      source: 'tok_visa',
      capture: false,
    });
    // Uncaptured: a refund would release the authorisation, valued at all of it and held.
    const before = await rejection(stack.agent.refunds.create({ charge: ch.id }));
    expect(before.code).toBe('approval_required');
    // Captured for $200 behind Airlock's back, at once: the next full refund is worth $200 and is allowed.
    await stack.direct.charges.capture(ch.id, { amount: 20_000 });
    const refund = await stack.agent.refunds.create({ charge: ch.id });
    expect(refund.amount).toBe(20_000);
  });
});

describe('a held action approved after a stricter policy loads', () => {
  let stack: Stack;
  let policyFile: string;
  beforeAll(async () => {
    stack = await startStackWithPolicy(REFUNDS_UP_TO_500);
    policyFile = join(stack.dir, 'policy.yaml');
  });
  afterAll(async () => {
    await stack.close();
  });

  it('is blocked at approval, never sent, and the receipt and ledger show both decisions', async () => {
    const ch = await charge(stack, 90_000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 80_000 }));
    const id: string = err.raw.airlock_action;
    writeFileSync(
      policyFile,
      [...REFUNDS_UP_TO_500, `  - "Block if :kind: = 'refund.create' and :amount_in_usd: > 700"`].join('\n'),
    );
    const reloaded = await stack.airlock.reloadPolicy();
    expect(reloaded.ok).toBe(true);
    const answer = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: { note: 'fine' } });
    expect(answer.body.status).toBe('blocked');
    expect(answer.body.decision.outcome).toBe('review');
    expect(answer.body.decision.at_approval.outcome).toBe('block');
    await new Promise((r) => setTimeout(r, 200));
    expect(received(stack, id)).toHaveLength(0);
    expect(stack.sandbox.list('refund').filter((r) => r['charge'] === ch.id)).toHaveLength(0);
    const events = (await stack.api(`/api/actions/${id}/events`)).body.data as any[];
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['action.redecided', 'action.blocked']));
  });

  it('waits for the larger quorum the policy now asks for', async () => {
    writeFileSync(
      policyFile,
      [
        'default: review',
        'rules:',
        `  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"`,
        `  - "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
      ].join('\n'),
    );
    await stack.airlock.reloadPolicy();
    const ch = await charge(stack, 90_000);
    const err = await rejection(stack.agent.refunds.create({ charge: ch.id, amount: 70_000 }));
    const id: string = err.raw.airlock_action;
    writeFileSync(
      policyFile,
      [
        'default: review',
        'rules:',
        `  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"`,
        '    approvals: 2',
      ].join('\n'),
    );
    await stack.airlock.reloadPolicy();
    const answer = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    expect(answer.body.status).toBe('awaiting_approval');
    expect(answer.body.approvals_required).toBe(2);
    expect(received(stack, id)).toHaveLength(0);
  });
});

describe('Connect context', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStackWithPolicy([
      ...REFUNDS_UP_TO_500,
      `  - "Review if :stripe_account: = 'acct_held'"`,
    ]);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('forwards Stripe-Account as sent and binds it into the request hash', async () => {
    const ch = await stack.direct.charges.create(
      { amount: 5_000, currency: 'usd', source: 'tok_visa' },
      { stripeAccount: 'acct_open' },
    );
    const refund = await stack.agent.refunds.create(
      { charge: ch.id, amount: 1_000 },
      { stripeAccount: 'acct_open' },
    );
    expect(refund.amount).toBe(1_000);
    const action = ((await stack.api('/api/actions?limit=5')).body.data as any[]).find(
      (a) => a.response_body?.id === refund.id,
    );
    expect(action.stripe_account).toBe('acct_open');
    expect(received(stack, action.id)[0]?.stripeAccount).toBe('acct_open');
  });

  it('forwards Stripe-Context as sent, and the policy holds a call by the account the context names', async () => {
    const ch = await stack.direct.charges.create(
      { amount: 5_000, currency: 'usd', source: 'tok_visa' },
      { stripeAccount: 'acct_held' },
    );
    const err = await rejection(
      stack.agent.refunds.create({ charge: ch.id, amount: 1_000 }, { stripeContext: 'acct_held' }),
    );
    expect(err.code).toBe('approval_required');
    const id: string = err.raw.airlock_action;
    const held = (await stack.api(`/api/actions/${id}`)).body;
    expect(held.stripe_context).toBe('acct_held');
    expect(held.decision.rules.join(' ')).toContain('acct_held');
    await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    const done = (await stack.api(`/api/actions/${id}?wait=10`)).body;
    expect(done.status).toBe('completed');
    const [sent] = received(stack, id);
    expect(sent?.stripeContext).toBe('acct_held');
    // It ran on the connected account: the platform cannot see the refund.
    expect(sent?.account).toBe('acct_held');
  });

  it('scopes an Idempotency-Key to the account a Stripe-Context names, so one key on two accounts is two refunds', async () => {
    const key = `ctx-${Date.now()}`;
    const made = [];
    for (const account of ['acct_ctxOne', 'acct_ctxTwo']) {
      const ch = await stack.direct.charges.create(
        { amount: 5_000, currency: 'usd', source: 'tok_visa' },
        { stripeAccount: account },
      );
      const refund = await stack.agent.refunds.create(
        { charge: ch.id, amount: 1_000 },
        { idempotencyKey: key, stripeContext: `acct_platform/${account}` },
      );
      expect(refund.charge).toBe(ch.id);
      made.push(refund.metadata?.['airlock_action']);
    }
    expect(new Set(made).size).toBe(2);
    expect(received(stack, made[0]!).map((r) => r.account)).toEqual(['acct_ctxOne']);
    expect(received(stack, made[1]!).map((r) => r.account)).toEqual(['acct_ctxTwo']);
  });

  it('looks up a full refund on the account the call acts on', async () => {
    const ch = await stack.direct.charges.create(
      { amount: 30_000, currency: 'usd', source: 'tok_visa' },
      { stripeAccount: 'acct_open' },
    );
    const refund = await stack.agent.refunds.create({ charge: ch.id }, { stripeAccount: 'acct_open' });
    expect(refund.amount).toBe(30_000);
  });
});

describe('v2 money endpoints', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStackWithPolicy([
      'default: review',
      'rules:',
      `  - "Review if :kind: = 'v2.money_management.payout_intent.create' and :amount_in_usd: > 100"`,
    ]);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('holds a payout intent with its amount read from amount.value', async () => {
    const err = await rejection(
      stack.agent.rawRequest('POST', '/v2/money_management/payout_intents', {
        amount: { value: 250_000, currency: 'usd' },
        payout_method: 'bank_account_123',
      }),
    );
    const id: string = err.raw?.airlock_action ?? err.raw?.error?.airlock_action;
    expect(id).toMatch(/^act_/);
    const held = (await stack.api(`/api/actions/${id}`)).body;
    expect(held.status).toBe('awaiting_approval');
    expect(held.kind).toBe('v2.money_management.payout_intent.create');
    expect(held.amount).toBe(250_000);
    expect(held.currency).toBe('usd');
    expect(held.amount_usd).toBe(2_500);
  });
});

describe('a value the request cannot carry', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStackWithPolicy([
      'default: review',
      'rules:',
      `  - "Allow if :kind: = 'payment_intent.confirm' and :amount_in_usd: <= 100"`,
      `  - "Review if :kind: = 'payment_intent.confirm' and :amount_in_usd: > 100"`,
    ]);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('is looked up again before dispatch, and a rise sends the action back for a decision', async () => {
    const pi = await stack.direct.paymentIntents.create({
      amount: 20_000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
    });
    const err = await rejection(stack.agent.paymentIntents.confirm(pi.id));
    expect(err.code).toBe('approval_required');
    const id: string = err.raw.airlock_action;
    const held = (await stack.api(`/api/actions/${id}`)).body;
    expect(held.amount).toBe(20_000);
    expect(held.derived).toMatchObject({ amount: 20_000, field: null });
    // A reviewer approves $200; meanwhile the intent is raised to $900 behind Airlock's back.
    await stack.direct.paymentIntents.update(pi.id, { amount: 90_000 });
    await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {} });
    let after = (await stack.api(`/api/actions/${id}`)).body;
    for (let i = 0; i < 100 && after.amount !== 90_000; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = (await stack.api(`/api/actions/${id}`)).body;
    }
    expect(after.status).toBe('awaiting_approval');
    expect(after.amount).toBe(90_000);
    expect(after.derived.amount).toBe(90_000);
    expect(received(stack, id)).toHaveLength(0);
    expect((await stack.direct.paymentIntents.retrieve(pi.id)).status).not.toBe('succeeded');
    // The earlier approval was for $200: it does not count for $900. A new approval sends it.
    const { token } = await createReviewer(stack.airlock.store, 'second@example.com');
    const second = await stack.api(`/api/actions/${id}/approve`, { method: 'POST', body: {}, token });
    expect(second.status).toBe(200);
    const done = (await stack.api(`/api/actions/${id}?wait=10`)).body;
    expect(done.status).toBe('completed');
    expect(received(stack, id)).toHaveLength(1);
  });
});

describe('paying an invoice', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStackWithPolicy([
      'default: review',
      'rules:',
      `  - "Allow if :kind: = 'invoice.pay' and :amount_in_usd: <= 100"`,
    ]);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('is valued at what remains on the invoice, so a large one is held', async () => {
    const customer = await stack.direct.customers.create({ email: 'payer@example.com' });
    const invoice = await stack.direct.invoices.create({ customer: customer.id });
    await stack.direct.invoiceItems.create({
      customer: customer.id,
      invoice: invoice.id!,
      amount: 45_000,
      currency: 'usd',
    });
    await stack.direct.invoices.finalizeInvoice(invoice.id!);
    const err = await rejection(stack.agent.invoices.pay(invoice.id!));
    expect(err.code).toBe('approval_required');
    const held = (await stack.api(`/api/actions/${err.raw.airlock_action}`)).body;
    expect(held.kind).toBe('invoice.pay');
    expect(held.amount).toBe(45_000);
    expect(held.derived).toMatchObject({ amount: 45_000, field: null });
  });
});
