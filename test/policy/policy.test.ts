import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decide,
  KNOWN_ATTRIBUTES,
  loadPolicyFile,
  PolicyError,
  parsePolicy,
  STARTER_POLICY_PATH,
} from '../../src/policy/index.ts';

function errorOf(text: string): PolicyError {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('expected the policy to be rejected');
}

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function positionOf(text: string, needle: string): { line: number; column: number } {
  const index = text.indexOf(needle);
  if (index === -1) throw new Error(`${needle} not in text`);
  const before = text.slice(0, index).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1 };
}

function expectErrorAt(text: string, needle: string, expected?: RegExp): PolicyError {
  const err = errorOf(text);
  expect({ line: err.line, column: err.column }).toEqual(positionOf(text, needle));
  expect(err.message).toBe(`policy.yaml:${err.line}:${err.column}: ${err.what}; expected ${err.expected}`);
  if (expected) expect(err.expected).toMatch(expected);
  return err;
}

describe('loading a policy', () => {
  it('reads every section', () => {
    const policy = parsePolicy(
      `timezone: Europe/Paris
business_hours: { days: [mon, Tuesday, wed], from: "08:30", to: "17:15" }
default: block
mode: shadow
expires_in: 7d
currency_rates: { EUR: 1.1, xyz: 0.5 }
lists:
  vips: [cus_1, cus_2]
rules:
  - "Allow if :read:"
  - rule: "Review if :customer: IN @vips"
    name: vip_review
    approvals: 2
    reviewers: [finance]
    expires_in: 24h
    notify: [email:finance@example.com]
    mode: shadow
    customer_notice: with_note
`,
      'p.yaml',
    );
    expect(policy).toMatchObject({
      file: 'p.yaml',
      timezone: 'Europe/Paris',
      businessHours: { days: [1, 2, 3], fromMinutes: 510, toMinutes: 1035 },
      default: 'block',
      mode: 'shadow',
      defaultExpiresInMs: 7 * 86_400_000,
      lists: { vips: ['cus_1', 'cus_2'] },
    });
    expect(policy.currencyRates).toMatchObject({ eur: 1.1, xyz: 0.5, usd: 1, gbp: expect.any(Number) });
    expect(policy.rules.map((r) => [r.id, r.outcome, r.line, r.column])).toEqual([
      ['rule_1', 'allow', 10, 6],
      ['vip_review', 'review', 11, 12],
    ]);
    expect(policy.rules[1]!.options).toEqual({
      approvals: 2,
      expiresInMs: 86_400_000,
      notify: ['email:finance@example.com'],
      reviewers: ['finance'],
      mode: 'shadow',
      customerNotice: 'with_note',
      remindBeforeMs: null,
      escalateAfterMs: null,
      escalateTo: [],
    });
    expect([...policy.referencedAttributes].sort()).toEqual(['customer', 'read']);
  });

  it('fills in defaults for a policy with only rules', () => {
    const policy = parsePolicy('rules:\n  - "Allow if :read:"\n', 'p.yaml');
    expect(policy).toMatchObject({
      default: 'review',
      mode: 'enforce',
      timezone: 'UTC',
      defaultExpiresInMs: 72 * 3_600_000,
      businessHours: { days: [1, 2, 3, 4, 5], fromMinutes: 540, toMinutes: 1080 },
    });
    expect(policy.rules[0]!.options).toEqual({
      approvals: 1,
      expiresInMs: null,
      notify: [],
      reviewers: [],
      mode: 'enforce',
      customerNotice: 'none',
      remindBeforeMs: null,
      escalateAfterMs: null,
      escalateTo: [],
    });
  });

  it("accepts the README's unquoted rules, though ': ' in them is YAML mapping syntax", () => {
    const text = `rules:
  - Allow if :read:
  - Review if :kind: = 'refund.create' and :amount_in_usd: > 500   # large refunds
  - rule: Review if :kind: IN ('transfer.create', 'payout.create')
    approvals: 2
    notify: [email:finance@example.com]
  - Review if :kind: = 'refund.create'
      and :agent: = 'bot'
`;
    const policy = parsePolicy(text, 'p.yaml');
    expect(policy.rules.map((r) => r.text)).toEqual([
      'Allow if :read:',
      "Review if :kind: = 'refund.create' and :amount_in_usd: > 500",
      "Review if :kind: IN ('transfer.create', 'payout.create')",
      "Review if :kind: = 'refund.create' and :agent: = 'bot'",
    ]);
    expect(policy.rules[2]!.options.approvals).toBe(2);
    expect(policy.rules.map((r) => [r.line, r.column])).toEqual([
      [2, 5],
      [3, 5],
      [4, 11],
      [7, 5],
    ]);
  });

  it('names the version after the text, so any edit changes it', () => {
    const a = parsePolicy('rules:\n  - "Review if :amount: > 500"\n', 'p.yaml');
    const b = parsePolicy('rules:\n  - "Review if :amount: > 501"\n', 'p.yaml');
    const again = parsePolicy('rules:\n  - "Review if :amount: > 500"\n', 'other.yaml');
    expect(a.version).toMatch(/^pol_[0-9a-f]{16}$/);
    expect(b.version).not.toBe(a.version);
    expect(again.version).toBe(a.version);
  });

  it('loads a policy file from disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-policy-'));
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, 'default: block\nrules: []\n');
    expect(loadPolicyFile(file)).toMatchObject({ file, default: 'block', rules: [] });
  });

  it('reports a missing file as a policy error naming it', () => {
    const err = (() => {
      try {
        loadPolicyFile('/nonexistent/policy.yaml');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).message).toMatch(
      /^\/nonexistent\/policy\.yaml:1:1: cannot read the policy file \(ENOENT\)/,
    );
  });

  it('loads the bundled starter policy without a path', () => {
    expect(loadPolicyFile().file).toBe(STARTER_POLICY_PATH);
  });
});

describe('rule errors point at the line and column in the YAML file', () => {
  it('in an unquoted rule', () => {
    const text = "default: review\nrules:\n  - Allow if :read:\n  - Review if :kind: 'refund.create'\n";
    expectErrorAt(text, "'refund.create'", /an operator such as =, <, IN/);
  });

  it('in a double-quoted rule', () => {
    const text = 'rules:\n  - "Review if (:amount: > 5 or :read:"\n  - "Allow if :read:"\n';
    const err = expectErrorAt(text, '"\n', /^'\)'$/);
    expect([err.line, err.column]).toEqual([2, 39]);
  });

  it("in a single-quoted rule with '' escapes", () => {
    const text = "rules:\n  - 'Review if :kind: = ''a'' and :kind: ''b'''\n";
    expectErrorAt(text, "''b'''", /an operator/);
  });

  it('in a map-form rule, quoted or not', () => {
    const quoted = `rules:\n  - rule: "Block if :kind: = 'payout.create' and not"\n    approvals: 2\n`;
    expectErrorAt(quoted, '"\n', /a value/);
    const bare = `rules:\n  - name: payouts\n    rule: Block if :kind: = 'payout.create' and :amount: >> 5\n`;
    expectErrorAt(bare, '> 5', /a value/);
  });

  it('on the continuation line of a multi-line rule', () => {
    const text = "rules:\n  - Review if :kind: = 'refund.create'\n      and :amount: > 'x'\n";
    expectErrorAt(text, "'x'", /a number/);
  });

  it('in a folded block scalar', () => {
    const text = "rules:\n  - rule: >-\n      Review if :kind: = 'refund.create'\n      and :amout: > 5\n";
    expectErrorAt(text, ':amout:');
  });

  it('for an unknown attribute', () => {
    const text = `rules:\n  - "Review if :kind: = 'refund.create' and :amount_usd: > 500"\n`;
    const err = expectErrorAt(text, ':amount_usd:', /:amount_in_usd:/);
    expect(err.what).toBe('unknown attribute :amount_usd:');
    expect(err.code).toBe('policy_invalid');
  });

  it('for an unknown list', () => {
    const text = `lists:\n  vips: [cus_1]\nrules:\n  - "Allow if :customer: IN @vip"\n`;
    const err = expectErrorAt(text, '@vip"', /@vips/);
    expect(err.what).toBe('unknown list @vip');
  });

  it('for a type mismatch', () => {
    expectErrorAt(`rules:\n  - "Review if :amount: > 'abc'"\n`, "'abc'", /a number/);
    expectErrorAt(`rules:\n  - "Review if :amount: = 'abc'"\n`, "'abc'", /a number/);
    expectErrorAt(`rules:\n  - "Review if :kind: + 1 > 2"\n`, ':kind:', /a number/);
    expectErrorAt(`rules:\n  - "Review if :kind: IN ('a', 2)"\n`, '2)', /one type/);
    expectErrorAt(`rules:\n  - "Review if :amount: LIKE '5%'"\n`, ':amount:', /a string/);
    expectErrorAt(`rules:\n  - "Review if :kind: INCLUDES 'x'"\n`, ':kind:', /list attribute/);
  });

  it('for a value used as a condition', () => {
    const err = expectErrorAt(`rules:\n  - "Allow if :kind:"\n`, ':kind:', /an operator/);
    expect(err.what).toBe(':kind: is a string, not a condition');
  });
});

describe('policy file errors', () => {
  it('turns YAML syntax errors into positioned policy errors', () => {
    const err = errorOf('default: review\nrules:\n  - "Allow if :read:\n');
    expect(err.line).toBeGreaterThanOrEqual(3);
    expect(err.what).toMatch(/^invalid YAML/);
    const dup = errorOf('default: review\ndefault: block\n');
    expect(dup.line).toBe(2);
  });

  it('rejects unknown keys where they are', () => {
    expectErrorAt('default: review\ndefualt: block\n', 'defualt', /default/);
    expectErrorAt('rules:\n  - rule: "Allow if :read:"\n    aprovals: 2\n', 'aprovals', /approvals/);
    expectErrorAt('business_hours: { days: [mon], start: "09:00" }\n', 'start', /from/);
  });

  it('rejects bad values with what was expected', () => {
    expectErrorAt('default: maybe\n', 'maybe', /allow, review, block/);
    expectErrorAt('mode: loud\n', 'loud', /enforce, shadow/);
    expectErrorAt('expires_in: 3 days\n', '3 days', /30m, 24h or 7d/);
    expectErrorAt('expires_in: 0h\n', '0h', /duration/);
    expectErrorAt('rules:\n  - rule: "Allow if :read:"\n    expires_in: 90\n', '90', /duration/);
    expectErrorAt('rules:\n  - rule: "Allow if :read:"\n    approvals: 0\n', '0\n', /whole number/);
    expectErrorAt('timezone: Mars/Olympus\n', 'Mars', /IANA timezone/);
    expectErrorAt('business_hours: { days: [mon, funday] }\n', 'funday', /mon, tue/);
    expectErrorAt('business_hours: { from: "9am" }\n', '"9am"', /24-hour/);
    expectErrorAt('business_hours: { from: "18:00", to: "09:00" }\n', '"09:00"', /later than/);
    expectErrorAt('currency_rates: { eur: -1 }\n', '-1', /positive/);
    expectErrorAt('currency_rates: { euro: 1 }\n', 'euro', /three-letter/);
    expectErrorAt('rules:\n  - 42\n', '42', /rule/);
    expectErrorAt('rules:\n  - name: x\n', 'name', /rule:/);
    expectErrorAt(
      'rules:\n  - rule: "Allow if :read:"\n    customer_notice: loudly\n',
      'loudly',
      /true, false, with_note/,
    );
  });

  it('rejects two rules with the same name', () => {
    const text =
      'rules:\n  - rule: "Allow if :read:"\n    name: a\n  - rule: "Review if :read:"\n    name: a\n';
    const err = errorOf(text);
    expect([err.line, err.column, err.what]).toEqual([5, 11, "duplicate rule name 'a'"]);
  });
});

describe('rule names', () => {
  const named = (name: string) =>
    `rules:\n  - name: ${JSON.stringify(name)}\n    rule: "Review if :kind: = 'refund.create'"\n`;

  it('keeps a readable name a reviewer can read, and decisions name the rule by it', () => {
    const p = parsePolicy(named('Large refund, new customer (over $500)'), 'policy.yaml');
    expect(p.rules[0]).toMatchObject({
      id: 'Large refund, new customer (over $500)',
      name: 'Large refund, new customer (over $500)',
    });
    const d = decide(p, { attributes: { kind: 'refund.create' }, metadata: {} });
    expect(d.matched.map((r) => r.name)).toEqual(['Large refund, new customer (over $500)']);
    expect(parsePolicy('rules:\n  - "Allow if :read:"\n', 'p.yaml').rules[0]?.name).toBeNull();
  });

  it('refuses names with markup, control characters, doubled or edge spaces, or over 80 characters', () => {
    for (const bad of [
      '<b>x</b>',
      'a\tb',
      'two  spaces',
      ' lead',
      'trail ',
      'x'.repeat(81),
      'say "hi"',
      '',
    ]) {
      const err = errorOf(named(bad));
      expect(err.what, bad).toMatch(/invalid rule name|rule name/);
    }
  });

  it('accepts every name of words and the allowed punctuation, and refuses every name with a character outside it', () => {
    const word = fc.stringMatching(/^[A-Za-z0-9éü]{1,8}$/);
    fc.assert(
      fc.property(
        fc.array(word, { minLength: 1, maxLength: 6 }),
        fc.constantFrom(' ', ', ', ' - ', ' & '),
        (words, sep) => {
          const name = words.join(sep);
          fc.pre(name.length <= 80);
          expect(parsePolicy(named(name), 'p.yaml').rules[0]?.name).toBe(name);
        },
      ),
    );
    fc.assert(
      fc.property(
        word,
        fc.constantFrom('<', '>', '"', '`', '\\', '{', '}', ';', '*', '\u0000', '\u007f', '\n'),
        (w, bad) => {
          expect(() => parsePolicy(named(`${w}${bad}${w}`), 'p.yaml')).toThrow(PolicyError);
        },
      ),
    );
  });
});

describe('attribute registry', () => {
  it('accepts attribute families registered by pattern, such as velocity counters', () => {
    const velocity = /^agent_[a-z_]+_(usd|count)_\d+[hd]$/;
    const attributes = KNOWN_ATTRIBUTES.with({}, [
      {
        pattern: velocity,
        spec: { type: 'number', source: 'velocity', description: 'sliding-window total' },
      },
    ]);
    const text = 'rules:\n  - "Review if :agent_refunds_usd_1h: + :amount_in_usd: > 2000"\n';
    const policy = parsePolicy(text, 'p.yaml', { attributes });
    expect([...policy.referencedAttributes].sort()).toEqual(['agent_refunds_usd_1h', 'amount_in_usd']);
    const d = decide(policy, {
      attributes: { agent_refunds_usd_1h: 1900, amount_in_usd: 150 },
      metadata: {},
    });
    expect(d.outcome).toBe('review');
    // An attribute no name or pattern covers is refused where it is written.
    expectErrorAt(
      'rules:\n  - "Review if :agent_refunds_eur_1h: > 5"\n',
      ':agent_refunds_eur_1h:',
      /known attribute/,
    );
  });

  it('knows velocity attributes per agent, customer and account, with windows up to 90 days', () => {
    for (const name of [
      'agent_refunds_usd_1h',
      'customer_refunds_count_24h',
      'account_payouts_usd_7d',
      'agent_kind_count_30m',
      'agent_writes_usd_90d',
    ]) {
      expect(KNOWN_ATTRIBUTES.lookup(name)?.source, name).toBe('velocity');
    }
    for (const name of [
      'agent_refunds_usd_91d',
      'agent_refund_usd_1h',
      'team_refunds_usd_1h',
      'agent_refunds_usd_0h',
    ]) {
      expect(KNOWN_ATTRIBUTES.has(name), name).toBe(false);
    }
  });
});

describe('rules that can never match', () => {
  it('are refused at load time, pointing at the contradicting part', () => {
    const both = "rules:\n  - \"Review if :kind: = 'refund.create' and :kind: = 'payout.create'\"\n";
    expect(expectErrorAt(both, ":kind: = 'payout.create'").what).toMatch(/can never match/);
    const range = 'rules:\n  - "Review if :amount_in_usd: > 500 and :amount_in_usd: < 100"\n';
    expect(expectErrorAt(range, ':amount_in_usd: < 100').what).toBe(
      'this rule can never match: no value of :amount_in_usd: is > 500 and < 100',
    );
    const edge = 'rules:\n  - "Review if :amount: >= 5 and :amount: < 5"\n';
    expect(expectErrorAt(edge, ':amount: < 5').what).toMatch(/can never match/);
    const notIn =
      "rules:\n  - \"Review if :kind: = 'refund.create' and :kind: IN ('payout.create', 'transfer.create')\"\n";
    expect(expectErrorAt(notIn, ':kind: IN').what).toMatch(/can never match/);
  });

  it('leave satisfiable ranges and OR alternatives alone', () => {
    for (const rule of [
      'Review if :amount: >= 5 and :amount: <= 5',
      "Review if :kind: = 'refund.create' or :kind: = 'payout.create'",
      "Review if :kind: IN ('refund.create', 'payout.create') and :kind: = 'payout.create'",
      'Review if :amount_in_usd: > 100 and :amount_in_usd: < 500',
    ]) {
      expect(() => parsePolicy(`rules:\n  - ${JSON.stringify(rule)}\n`, 'p.yaml'), rule).not.toThrow();
    }
  });
});
