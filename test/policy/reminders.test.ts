// A rule's reminder and escalation (remind_before, escalate_after, escalate_to): read, combined across rules, and
// refused with the rule and the field named when they could never fire or name nobody.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { followUpsFor } from '../../src/engine/follow-ups.ts';
import { decide, PolicyError, parsePolicy } from '../../src/policy/index.ts';

function errorOf(text: string): PolicyError {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('expected the policy to be rejected');
}

const refund = (amount: number) => ({
  attributes: { kind: 'refund.create', amount_in_usd: amount, read: false },
  metadata: {},
});

const POLICY = `
expires_in: 24h
rules:
  - name: big
    rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 500"
    expires_in: 4h
    remind_before: 1h
    escalate_after: 2h
    escalate_to: [group:managers, alice@example.com]
  - name: huge
    rule: "Review if :kind: = 'refund.create' and :amount_in_usd: > 5000"
    remind_before: 90m
    escalate_after: 3h
    escalate_to: [cfo@example.com]
`;

describe('reminders and escalation in a policy', () => {
  it('reads remind_before, escalate_after and escalate_to on a rule', () => {
    const policy = parsePolicy(POLICY, 'p.yaml');
    expect(policy.rules[0]!.options).toMatchObject({
      expiresInMs: 4 * 3_600_000,
      remindBeforeMs: 3_600_000,
      escalateAfterMs: 2 * 3_600_000,
      escalateTo: ['group:managers', 'alice@example.com'],
    });
  });

  it('takes the earliest reminder and escalation of the rules that held it, and everyone they escalate to', () => {
    const policy = parsePolicy(POLICY, 'p.yaml');
    expect(decide(policy, refund(600))).toMatchObject({
      outcome: 'review',
      remindBeforeMs: 3_600_000,
      escalateAfterMs: 2 * 3_600_000,
      escalateTo: ['group:managers', 'alice@example.com'],
    });
    expect(decide(policy, refund(6000))).toMatchObject({
      expiresInMs: 4 * 3_600_000,
      remindBeforeMs: 90 * 60_000,
      escalateAfterMs: 2 * 3_600_000,
      escalateTo: ['group:managers', 'alice@example.com', 'cfo@example.com'],
    });
    // An allowed refund has nothing to remind anyone of.
    expect(decide(policy, refund(100))).toMatchObject({
      outcome: 'review',
      remindBeforeMs: null,
      escalateAfterMs: null,
    });
  });

  it.each([
    ['remind_before: 4h', "rule 'big': remind_before 4h is not shorter than the hold's expiry (4h)"],
    ['remind_before: 5h', "rule 'big': remind_before 5h is not shorter than the hold's expiry (4h)"],
    ['escalate_after: 4h\n    escalate_to: [a@example.com]', "rule 'big': escalate_after 4h is not shorter"],
    ['remind_before: soon', "rule 'big': invalid remind_before 'soon'"],
    ['escalate_after: -2h\n    escalate_to: [a@example.com]', "rule 'big': invalid escalate_after '-2h'"],
    ['escalate_after: 1h\n    escalate_to: []', "rule 'big': escalate_to is empty"],
    ['escalate_after: 1h', "rule 'big': escalate_after without escalate_to"],
    ['escalate_to: [group:managers]', "rule 'big': escalate_to without escalate_after"],
    ['escalate_after: 1h\n    escalate_to: [managers]', "rule 'big': invalid escalate_to entry 'managers'"],
  ])('refuses %j, naming the rule and the field', (extra, what) => {
    const text = `rules:\n  - name: big\n    rule: "Review if :amount_in_usd: > 500"\n    expires_in: 4h\n    ${extra}\n`;
    const err = errorOf(text);
    expect(err.what).toContain(what);
    expect(err.line).toBeGreaterThan(1);
  });

  it("measures against the policy's expires_in when the rule has none, and names an unnamed rule by its id", () => {
    const err = errorOf(
      'expires_in: 2h\nrules:\n  - "Allow if :read:"\n  - rule: "Review if :amount_in_usd: > 500"\n    remind_before: 3h\n',
    );
    expect(err.what).toBe("rule 'rule_2': remind_before 3h is not shorter than the hold's expiry (2h)");
    expect(err.line).toBe(5);
  });

  it('refuses a reminder on a rule that never holds', () => {
    const err = errorOf('rules:\n  - rule: "Block if :amount_in_usd: > 500"\n    remind_before: 1h\n');
    expect(err.what).toBe("rule 'rule_1': remind_before on a block rule");
  });

  it('accepts any reminder and escalation inside the hold, and refuses any at or past its end', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 1, max: 600 }), (expires, before) => {
        const text = `rules:\n  - rule: "Review if :amount_in_usd: > 500"\n    expires_in: ${expires}m\n    remind_before: ${before}m\n    escalate_after: ${before}m\n    escalate_to: [group:managers]\n`;
        if (before < expires) {
          const rule = parsePolicy(text, 'p.yaml').rules[0]!;
          expect(rule.options.remindBeforeMs).toBe(before * 60_000);
          expect(rule.options.escalateAfterMs).toBe(before * 60_000);
        } else {
          expect(errorOf(text).what).toMatch(/^rule 'rule_1': remind_before \d+m is not shorter/);
        }
      }),
    );
  });
});

describe('when a hold is reminded and escalated', () => {
  const start = '2026-01-01T00:00:00.000Z';
  const hold = (decision: Record<string, unknown>, hours = 4) => ({
    decision: JSON.stringify(decision),
    expires_at: new Date(Date.parse(start) + hours * 3_600_000).toISOString(),
  });

  it('reminds remind_before ahead of the expiry and escalates escalate_after past the start', () => {
    expect(
      followUpsFor(
        hold({ remind_before_ms: 3_600_000, escalate_after_ms: 7_200_000, escalate_to: ['group:managers'] }),
        start,
      ),
    ).toEqual([
      { kind: 'escalate', at: '2026-01-01T02:00:00.000Z' },
      { kind: 'remind', at: '2026-01-01T03:00:00.000Z' },
    ]);
  });

  it('schedules nothing outside the hold (a shorter expiry from another rule) and nothing without a plan', () => {
    expect(
      followUpsFor(
        hold(
          {
            remind_before_ms: 3 * 3_600_000,
            escalate_after_ms: 3 * 3_600_000,
            escalate_to: ['x@example.com'],
          },
          2,
        ),
        start,
      ),
    ).toEqual([]);
    expect(followUpsFor(hold({}), start)).toEqual([]);
    expect(followUpsFor({ decision: '{}', expires_at: null }, start)).toEqual([]);
  });
});
