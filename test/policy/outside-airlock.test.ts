// The policy's `outside_airlock:` section: which money events are expected outside Airlock (recorded, not alerted),
// and who hears of the rest. A mistake stops the load at its line, as every other policy mistake does.
import { describe, expect, it } from 'vitest';
import { PolicyError, parsePolicy } from '../../src/policy/index.ts';

function errorOf(text: string): PolicyError {
  try {
    parsePolicy(text, 'policy.yaml');
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('expected the policy to be rejected');
}

describe('outside_airlock', () => {
  it('reads expected kinds, with or without a source, and the alert recipients', () => {
    const p = parsePolicy(
      [
        'default: review',
        'outside_airlock:',
        '  expected:',
        '    - payout.created',
        '    - { type: refund.created, source: automation }',
        '  notify: [email:finance@example.com]',
      ].join('\n'),
      'policy.yaml',
    );
    expect(p.outsideAirlock).toEqual({
      expected: [
        { type: 'payout.created', source: null },
        { type: 'refund.created', source: 'automation' },
      ],
      notify: ['email:finance@example.com'],
    });
  });

  it('expects nothing and alerts every reviewer when the section is absent', () => {
    expect(parsePolicy('default: review', 'policy.yaml').outsideAirlock).toEqual({
      expected: [],
      notify: [],
    });
  });

  it('refuses an event Airlock does not watch, an unknown source or key, and a recipient that is not an email', () => {
    const cases: [string, RegExp][] = [
      ['outside_airlock:\n  expected: [charge.succeeded]', /not an event Airlock watches/],
      [
        'outside_airlock:\n  expected:\n    - { type: payout.created, source: dashboard }',
        /invalid source 'dashboard'/,
      ],
      ['outside_airlock:\n  expected:\n    - { source: automation }', /no type/],
      ['outside_airlock:\n  surprise: true', /unknown key 'surprise'/],
      ['outside_airlock:\n  notify: [slack:#finance]', /invalid recipient 'slack:#finance'/],
      ['outside_airlock: payout.created', /not a mapping/],
    ];
    for (const [text, what] of cases) {
      const err = errorOf(`default: review\n${text}`);
      expect(err.message).toMatch(what);
      expect(err.line).toBeGreaterThan(1);
    }
  });
});
