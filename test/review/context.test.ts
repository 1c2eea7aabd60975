// Context to decide in five seconds (issue 19, section 5): the receipt shows who is being refunded, the charge and
// what is already refunded, the agent's stated reason, the rule by name, and the customer's earlier refunds and
// disputes through Airlock and at Stripe. Real Airlock, real SQLite, the Stripe sandbox behind a recording hop.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from '../helpers/stack.ts';
import { type Recorder, startRecorder } from '../helpers/upstream-recorder.ts';
import {
  agentKeyOf,
  holdWithReason,
  proxyCall,
  REASON,
  RULE_NAME,
  type SeededCustomer,
  seedCustomer,
  startContextStack,
} from './context-seed.ts';
import { FormClient, type ReviewStack } from './helpers.ts';

let upstream: Recorder;
let stack: ReviewStack;
let reviewer: FormClient;
let jane: SeededCustomer;
let held: string;

beforeAll(async () => {
  upstream = await startRecorder();
  stack = await startContextStack({ STRIPE_API_BASE: upstream.url });
  upstream.target = stack.sandbox.url;
  jane = await seedCustomer(stack);
  held = await holdWithReason(stack, jane);
  reviewer = new FormClient(stack.airlock.url);
  expect(await reviewer.logIn('alice@example.com')).toBe(303);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
});

/** The receipt's context panel as text, one `label: value` a line. */
async function contextOf(actionId: string): Promise<{ page: string; facts: Record<string, string> }> {
  const res = await reviewer.request(`/review/actions/${actionId}`);
  expect(res.status).toBe(200);
  const facts: Record<string, string> = {};
  for (const m of res.text.matchAll(
    /<div class="fact[^"]*" data-fact="([^"]+)"><dt>[^<]*<\/dt><dd>(.*?)<\/dd><\/div>/g,
  ))
    facts[m[1]!] = m[2]!
      .replace(/&amp;/g, '&')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&#39;/g, "'")
      .replace(/&quot;/g, '"');
  return { page: res.text, facts };
}

describe('the receipt', () => {
  it('shows who is refunded, the charge and what is refunded already, the stated reason, the rule by name, and the history', async () => {
    const actionsBefore = (await stack.airlock.store.listActions({ limit: 500 })).rows.length;
    const { page, facts } = await contextOf(held);
    expect(facts['Customer']).toMatch(
      /^Jane Doe <jane@example\.com> · customer for 2 years \(since \d{4}-\d{2}-\d{2}\)$/,
    );
    expect(facts['Charge']).toMatch(/^\$700\.00 on \d{4}-\d{2}-\d{2} · \$100\.00 already refunded$/);
    expect(facts['Stated reason']).toBe(`“${REASON}” (Airlock-Reason)`);
    expect(facts['Held by']).toBe(RULE_NAME);
    expect(facts['Before, in Airlock']).toBe('1 earlier refund: 1 completed ($50.00) · no disputes');
    expect(facts['Before, in Stripe']).toBe('refunds on 2 of 3 charges ($150.00) · 1 disputed charge');
    // The rule's name in the why panel, with its text beside it.
    expect(page).toContain(`<b class="rule-name">${RULE_NAME.replace('$', '$')}</b>`);
    expect(page).toContain(':amount_in_usd: &gt; 500');
    // Reading the context recorded nothing and sent nothing but reads.
    expect((await stack.airlock.store.listActions({ limit: 500 })).rows.length).toBe(actionsBefore);
  });

  it('reads each Stripe object once a minute, with GETs only: a reload is served from the cache', async () => {
    await contextOf(held);
    const before = upstream.seen.length;
    const again = await contextOf(held);
    expect(again.facts['Customer']).toContain('Jane Doe');
    expect(upstream.seen.slice(before)).toEqual([]);
    const fresh = await seedCustomer(stack, { name: 'Ann Other', email: 'ann@example.com' });
    const id = await holdWithReason(stack, fresh, 'Damaged on arrival');
    const from = upstream.seen.length;
    await contextOf(id);
    const looked = upstream.seen.slice(from);
    expect(looked.length).toBeGreaterThan(0);
    expect(looked.every((r) => r.method === 'GET')).toBe(true);
    expect(looked.map((r) => r.path.split('?')[0])).toEqual(
      expect.arrayContaining([
        `/v1/charges/${fresh.charge}`,
        `/v1/customers/${fresh.customer}`,
        '/v1/charges',
      ]),
    );
  });

  it('says which look-up failed when Stripe answers 500 for customers, and still shows the request', async () => {
    const other = await seedCustomer(stack, { name: 'Bo Failing', email: 'bo@example.com' });
    const id = await holdWithReason(stack, other, 'Wrong size');
    stack.sandbox.setFaults({ failNext: 1000, failStatus: 500, pathPrefix: '/v1/customers' });
    try {
      const { page, facts } = await contextOf(id);
      expect(facts['Customer']).toMatch(
        new RegExp(`^${other.customer} · Could not load the customer from Stripe: Stripe answered 500`),
      );
      expect(page).toMatch(/<div class="fact failed" data-fact="Customer">/);
      // The charge still loaded, and everything else of the receipt is there.
      expect(facts['Charge']).toContain('$700.00');
      expect(facts['Stated reason']).toBe('“Wrong size” (Airlock-Reason)');
      expect(page).toContain('Request</h2>');
      expect(page).toMatch(/<th>amount<\/th><td><code>60000 \(\$600\.00\)<\/code>/);
      expect(page).toContain('id="approve-form"');
    } finally {
      stack.sandbox.clearFaults();
    }
  });

  it('says Stripe could not be reached when the sandbox drops every connection, and still shows the request', async () => {
    const other = await seedCustomer(stack, { name: 'Cy Down', email: 'cy@example.com' });
    const id = await holdWithReason(stack, other, 'Duplicate order');
    stack.sandbox.setFaults({ down: true });
    try {
      const { page, facts } = await contextOf(id);
      expect(facts['Charge']).toMatch(/^Could not load the charge from Stripe: Stripe could not be reached/);
      expect(page).toContain('Request</h2>');
      expect(page).toContain('id="approve-form"');
      expect(facts['Stated reason']).toBe('“Duplicate order” (Airlock-Reason)');
    } finally {
      stack.sandbox.clearFaults();
    }
  });
});

describe('the stated reason', () => {
  it("is the decisions API's justification, with the customer and charge from its context", async () => {
    const res = await fetch(`${stack.airlock.url}/api/decisions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await agentKeyOf(stack)}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        intent: { kind: 'refund.create', amount: 60_000, currency: 'usd' },
        context: { customer: jane.customer, charge: jane.charge },
        justification: 'Customer was charged twice for order 42',
      }),
    });
    const decision = (await res.json()) as { id: string; status: string };
    expect(decision.status).toBe('awaiting_approval');
    const { facts } = await contextOf(decision.id);
    expect(facts['Stated reason']).toBe('“Customer was charged twice for order 42” (justification)');
    expect(facts['Customer']).toContain('Jane Doe');
    expect(facts['Charge']).toContain('$100.00 already refunded');
  });

  it('is metadata[reason] from the official client, which cannot send headers, and then description', async () => {
    const ch = await stack.direct.charges.create({ amount: 90_000, currency: 'usd', source: 'tok_visa' });
    const err = await rejection(
      stack.agent.refunds.create({
        charge: ch.id,
        amount: 60_000,
        metadata: { reason: 'Subscription cancelled within the trial' },
      }),
    );
    expect(err.code).toBe('approval_required');
    const { facts } = await contextOf(err.raw.airlock_action);
    expect(facts['Stated reason']).toBe('“Subscription cancelled within the trial” (metadata[reason])');
    // No customer on the charge: no customer lines, and the charge still shown.
    expect(facts['Customer']).toBeUndefined();
    expect(facts['Charge']).toMatch(/^\$900\.00 on .* · nothing refunded yet$/);
  });

  it('finds the charge and the customer of a refund that names a payment intent', async () => {
    const pi = await stack.direct.paymentIntents.create({
      amount: 80_000,
      currency: 'usd',
      customer: jane.customer,
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const res = await proxyCall(
      stack,
      '/v1/refunds',
      { payment_intent: pi.id, amount: '60000' },
      { 'Airlock-Reason': 'Order cancelled before shipping' },
    );
    expect(res.body.error.code).toBe('approval_required');
    const { facts } = await contextOf(res.action!);
    expect(facts['Charge']).toMatch(/^\$800\.00 on .* · nothing refunded yet$/);
    expect(facts['Customer']).toContain('Jane Doe');
  });

  it('is shown as text, never as markup', async () => {
    const id = await holdWithReason(stack, jane, '<script>alert(1)</script><b>urgent</b>');
    const { page, facts } = await contextOf(id);
    expect(page).not.toContain('<script>alert(1)');
    expect(page).not.toContain('<b>urgent</b>');
    expect(facts['Stated reason']).toBe('“<script>alert(1)</script><b>urgent</b>” (Airlock-Reason)');
  });
});

describe('the Airlock-Reason header', () => {
  it('is stored on the action and never reaches Stripe', async () => {
    const ch = await stack.direct.charges.create({ amount: 9_000, currency: 'usd', source: 'tok_visa' });
    const from = upstream.seen.length;
    const res = await proxyCall(
      stack,
      '/v1/refunds',
      { charge: ch.id, amount: '2000' },
      { 'Airlock-Reason': 'Late delivery credit' },
    );
    expect(res.status).toBe(200);
    expect(res.body.object).toBe('refund');
    const row = await stack.airlock.engine.get(res.action!);
    expect(row.status).toBe('completed');
    expect(JSON.parse(row.details ?? '{}')).toEqual({ reason: 'Late delivery credit' });
    const sent = upstream.seen.slice(from);
    expect(sent.some((r) => r.method === 'POST' && r.path.startsWith('/v1/refunds'))).toBe(true);
    for (const r of sent) {
      expect(r.headers['airlock-reason']).toBeUndefined();
      expect(JSON.stringify(r.headers)).not.toContain('Late delivery credit');
    }
  });

  it('takes percent-encoded UTF-8, and refuses a reason over 500 characters or over one line with a 400, recording nothing', async () => {
    const ch = await stack.direct.charges.create({ amount: 90_000, currency: 'usd', source: 'tok_visa' });
    const ok = await proxyCall(
      stack,
      '/v1/refunds',
      { charge: ch.id, amount: '60000' },
      {
        'Airlock-Reason': encodeURIComponent('Colis jamais arrivé — remboursé'),
      },
    );
    expect(ok.body.error.code).toBe('approval_required');
    expect(JSON.parse((await stack.airlock.engine.get(ok.action!)).details ?? '{}')).toEqual({
      reason: 'Colis jamais arrivé — remboursé',
    });
    const count = (await stack.airlock.store.listActions({ limit: 500 })).rows.length;
    for (const bad of ['x'.repeat(501), encodeURIComponent('two\nlines')]) {
      const res = await proxyCall(
        stack,
        '/v1/refunds',
        { charge: ch.id, amount: '100' },
        { 'Airlock-Reason': bad },
      );
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param: 'Airlock-Reason' });
    }
    expect((await stack.airlock.store.listActions({ limit: 500 })).rows.length).toBe(count);
  });

  it('for any header value, either keeps the trimmed text exactly or answers 400 naming the header: never a crash', async () => {
    const ch = await stack.direct.charges.create({ amount: 9_000_000, currency: 'usd', source: 'tok_visa' });
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 520 }), async (text) => {
        const res = await proxyCall(
          stack,
          '/v1/refunds',
          { charge: ch.id, amount: '60000' },
          { 'Airlock-Reason': encodeURIComponent(text) },
        );
        const trimmed = text.trim();
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
        if (trimmed.length > 500 || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(trimmed)) {
          expect(res.status).toBe(400);
          expect(res.body.error.param).toBe('Airlock-Reason');
          return;
        }
        expect(res.body.error.code).toBe('approval_required');
        const details = JSON.parse((await stack.airlock.engine.get(res.action!)).details ?? 'null');
        expect(details).toEqual(trimmed ? { reason: trimmed } : null);
      }),
      { numRuns: 30 },
    );
  });
});
