import { describe, expect, it } from 'vitest';
import { decideWith, holds } from './helpers.ts';

describe('operators', () => {
  it('compares numbers with = != < > <= >=', () => {
    const a = { amount: 500 };
    expect([
      holds(':amount: = 500', a),
      holds(':amount: != 500', a),
      holds(':amount: < 500', a),
      holds(':amount: > 499.5', a),
      holds(':amount: <= 500', a),
      holds(':amount: >= 501', a),
    ]).toEqual([true, false, false, true, true, false]);
  });

  it('compares strings and booleans for equality', () => {
    expect(holds(":kind: = 'refund.create'", { kind: 'refund.create' })).toBe(true);
    expect(holds(":kind: = 'Refund.create'", { kind: 'refund.create' })).toBe(false);
    expect(holds(":kind: != 'refund.create'", { kind: 'payout.create' })).toBe(true);
    expect(holds(':read: = false', { read: false })).toBe(true);
  });

  it('tests membership with IN and NOT IN, for strings and numbers', () => {
    expect(holds(":kind: IN ('payout.create', 'transfer.create')", { kind: 'transfer.create' })).toBe(true);
    expect(holds(":kind: IN ('payout.create', 'transfer.create')", { kind: 'refund.create' })).toBe(false);
    expect(holds(":kind: NOT IN ('payout.create')", { kind: 'refund.create' })).toBe(true);
    expect(holds(':hour: IN (22, 23, 0)', { hour: 23 })).toBe(true);
    expect(holds(':hour: IN (-1, 5)', { hour: -1 })).toBe(true);
  });

  it('tests membership in a named list', () => {
    expect(holds(':customer: IN @vips', { customer: 'cus_gold' })).toBe(true);
    expect(holds(':customer: IN @vips', { customer: 'cus_new' })).toBe(false);
    expect(holds(':customer: NOT IN @vips', { customer: 'cus_new' })).toBe(true);
  });

  it('tests whether a list attribute INCLUDES a value', () => {
    expect(holds(":tags: INCLUDES 'fraud'", { tags: ['vip', 'fraud'] })).toBe(true);
    expect(holds(":tags: INCLUDES 'fraud'", { tags: ['vip'] })).toBe(false);
    expect(holds(":tags: NOT INCLUDES 'fraud'", { tags: ['vip'] })).toBe(true);
    expect(holds(':tags: INCLUDES :agent:', { tags: ['bot'], agent: 'bot' })).toBe(true);
  });

  it('matches LIKE patterns with % and _, anchored at both ends', () => {
    expect(holds(":path: LIKE '/v1/refunds%'", { path: '/v1/refunds/re_1' })).toBe(true);
    expect(holds(":path: LIKE '/v1/refunds'", { path: '/v1/refunds/re_1' })).toBe(false);
    expect(holds(":agent: LIKE 'bot_'", { agent: 'bot7' })).toBe(true);
    expect(holds(":agent: LIKE 'bot_'", { agent: 'bot77' })).toBe(false);
    expect(holds(":agent: LIKE 'a.c'", { agent: 'abc' })).toBe(false);
    expect(holds(":agent: NOT LIKE '%test%'", { agent: 'prod-bot' })).toBe(true);
  });

  it('reads metadata as strings, and as numbers next to a number', () => {
    expect(holds("::channel:: = 'email'", {}, { channel: 'email' })).toBe(true);
    expect(holds('::score:: > 80', {}, { score: '91' })).toBe(true);
    expect(holds('::score:: > 80', {}, { score: 'high' })).toBe(false);
    expect(holds(":amount: > 100 and ::order:: LIKE 'ord_%'", { amount: 101 }, { order: 'ord_9' })).toBe(
      true,
    );
  });

  it('uses a bare boolean attribute as a predicate', () => {
    expect(holds(':read:', { read: true })).toBe(true);
    expect(holds(':read:', { read: false })).toBe(false);
    expect(holds('not :business_hours:', { business_hours: false })).toBe(true);
    expect(holds('true')).toBe(true);
    expect(holds('false')).toBe(false);
  });
});

describe('missing attributes', () => {
  it('makes every comparison false, != and NOT IN included', () => {
    for (const condition of [
      ':amount: > 5',
      ':amount: <= 5',
      ':amount: = 0',
      ':amount: != 5',
      ":currency: NOT IN ('usd')",
      ':customer: NOT IN @vips',
      ":agent: NOT LIKE 'x%'",
      ":tags: NOT INCLUDES 'x'",
      '::tier:: != 1',
      ':amount: = :amount:',
    ]) {
      expect({ condition, holds: holds(condition, {}) }).toEqual({ condition, holds: false });
    }
  });

  it('treats null and wrongly typed values as missing', () => {
    expect(holds(':amount: >= 0', { amount: null })).toBe(false);
    expect(holds(':amount: >= 0', { amount: '100' })).toBe(false);
    expect(holds(':amount: >= 0', { amount: Number.NaN })).toBe(false);
    expect(holds('is_missing(:amount:)', { amount: null })).toBe(true);
    expect(holds('is_missing(:amount:)', { amount: 0 })).toBe(false);
    expect(holds('is_missing(::order::)', {}, {})).toBe(true);
    expect(holds('is_missing(::order::)', {}, { order: '' })).toBe(false);
  });

  it('propagates through arithmetic, and division by zero is missing', () => {
    expect(holds(':amount: + :amount_in_usd: > 0', { amount: 5 })).toBe(false);
    expect(holds(':amount: / 0 > 0', { amount: 5 })).toBe(false);
    expect(holds(':amount: / 0 <= 0', { amount: 5 })).toBe(false);
    expect(holds(':amount: / 2 = 2.5', { amount: 5 })).toBe(true);
  });

  it('lets NOT invert a false comparison (so rules should prefer positive forms)', () => {
    expect(holds('not (:amount: > 5)', {})).toBe(true);
    expect(holds('not :read:', {})).toBe(true);
  });
});

describe('decide', () => {
  const policy = `
default: review
expires_in: 48h
rules:
  - "Allow if :read:"
  - "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500"
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 100"
    approvals: 2
    expires_in: 30m
    notify: [email:finance@example.com]
    reviewers: [finance]
  - rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 200"
    approvals: 3
    expires_in: 2h
    notify: [slack:#refunds, email:finance@example.com]
  - name: huge_refunds
    rule: "Block if :kind: = 'refund.create' and :amount_in_usd: > 10000"
  - rule: "Block if :kind: = 'customer.delete'"
    mode: shadow
  - rule: "Review if :kind: = 'subscription.cancel'"
    mode: shadow
`;

  it('lets the most restrictive matching rule win and records every match in file order', () => {
    const d = decideWith(policy, { kind: 'refund.create', read: false, amount_in_usd: 300 });
    expect(d.outcome).toBe('review');
    expect(d.matched.map((r) => r.id)).toEqual(['rule_2', 'rule_3', 'rule_4']);
    expect(d.rules).toEqual([
      "Allow if :kind: = 'refund.create' and :amount_in_usd: <= 500",
      "Review if :kind: = 'refund.create' and :amount_in_usd: > 100",
      "Review if :kind: = 'refund.create' and :amount_in_usd: > 200",
    ]);
    expect(d.reason).toMatch(/^Review \(rule_3: Review if .*> 100; rule_4: Review if .*> 200\)$/);
  });

  it('takes the most approvals, the shortest expiry and every notify target of the deciding rules', () => {
    const d = decideWith(policy, { kind: 'refund.create', read: false, amount_in_usd: 300 });
    expect(d.approvalsRequired).toBe(3);
    expect(d.expiresInMs).toBe(30 * 60_000);
    expect(d.notify).toEqual(['email:finance@example.com', 'slack:#refunds']);
    expect(d.reviewers).toEqual(['finance']);
  });

  it('ignores the options of rules that did not decide', () => {
    const d = decideWith(policy, { kind: 'refund.create', read: false, amount_in_usd: 20_000 });
    expect(d.outcome).toBe('block');
    expect(d.matched.map((r) => r.id)).toEqual(['rule_3', 'rule_4', 'huge_refunds']);
    expect([d.approvalsRequired, d.expiresInMs, d.notify]).toEqual([1, 48 * 3_600_000, []]);
  });

  it('applies the policy default to a write no rule matches, and allows such a read', () => {
    const write = decideWith(policy, { kind: 'charge.capture', read: false });
    expect([write.outcome, write.rules, write.reason]).toEqual([
      'review',
      [],
      'No rule matched; policy default is review',
    ]);
    expect(write.expiresInMs).toBe(48 * 3_600_000);
    const blockByDefault = decideWith('default: block\nrules: []\n', { kind: 'x', read: false });
    expect(blockByDefault.outcome).toBe('block');
    const read = decideWith('default: block\nrules: []\n', { kind: 'charge.read', read: true });
    expect([read.outcome, read.reason]).toEqual(['allow', 'No rule matched; reads are allowed']);
  });

  it('lets a rule hold a read', () => {
    const d = decideWith(`rules:\n  - "Review if :read: and :path: LIKE '/v1/customers%'"\n`, {
      read: true,
      path: '/v1/customers/cus_1',
    });
    expect(d.outcome).toBe('review');
  });

  it('records a shadow rule that would have been stricter, and lets the call through', () => {
    const d = decideWith(policy, { kind: 'customer.delete', read: false });
    expect(d.outcome).toBe('allow');
    expect([d.shadow, d.shadowOutcome]).toEqual([true, 'block']);
    expect(d.rules).toEqual(["Block if :kind: = 'customer.delete'"]);
    expect(d.reason).toMatch(/only shadow-mode rules matched; they would block/);
  });

  it('does not let a shadow rule weaken an enforced one', () => {
    const text = `rules:
  - "Block if :kind: = 'payout.create'"
  - rule: "Review if :kind: = 'payout.create'"
    mode: shadow
`;
    const d = decideWith(text, { kind: 'payout.create', read: false });
    expect([d.outcome, d.shadow, d.shadowOutcome]).toEqual(['block', false, 'block']);
    expect(d.rules).toHaveLength(2);
  });

  it('reports no shadow outcome when no shadow rule took part', () => {
    const d = decideWith(policy, { kind: 'refund.create', read: false, amount_in_usd: 20 });
    expect([d.outcome, d.shadow, d.shadowOutcome]).toEqual(['allow', false, null]);
  });

  it('allows everything in global shadow mode and records what would have happened, default included', () => {
    const text = `mode: shadow\ndefault: review\nrules:\n  - "Block if :kind: = 'payout.create'"\n`;
    const payout = decideWith(text, { kind: 'payout.create', read: false });
    expect([payout.outcome, payout.shadow, payout.shadowOutcome]).toEqual(['allow', true, 'block']);
    expect(payout.rules).toEqual(["Block if :kind: = 'payout.create'"]);
    expect(payout.reason).toMatch(/^Shadow mode: would block/);
    const other = decideWith(text, { kind: 'charge.capture', read: false });
    expect([other.outcome, other.shadow, other.shadowOutcome]).toEqual(['allow', true, 'review']);
    const read = decideWith(text, { kind: 'charge.read', read: true });
    expect([read.outcome, read.shadow, read.shadowOutcome]).toEqual(['allow', false, 'allow']);
  });
});

describe('customer_notice', () => {
  const policy = `
rules:
  - rule: "Allow if :amount_in_usd: <= 100"
  - rule: "Review if :amount_in_usd: > 100"
    customer_notice: with_note
  - rule: "Review if :amount_in_usd: > 1000"
    customer_notice: true
  - rule: "Review if :amount_in_usd: > 2000"
  - rule: "Block if :amount_in_usd: > 5000"
    customer_notice: with_note
    mode: shadow
`;
  const at = (usd: number) => decideWith(policy, { kind: 'refund.create', read: false, amount_in_usd: usd });

  it('is asked for by any rule that decided, with notes only when every asking rule allows them', () => {
    expect(at(50).customerNotice).toBe('none');
    expect(at(500).customerNotice).toBe('with_note');
    expect(at(1500).customerNotice).toBe('plain');
    // A deciding rule that says nothing neither asks nor takes the notes away.
    expect(at(2500).customerNotice).toBe('plain');
  });

  it('is not asked for by a shadow rule, which decides nothing', () => {
    const d = at(6000);
    expect(d.outcome).toBe('review');
    expect(d.customerNotice).toBe('plain');
  });
});
