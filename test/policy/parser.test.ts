import { describe, expect, it } from 'vitest';
import { RuleError } from '../../src/policy/errors.ts';
import { tokenize } from '../../src/policy/lexer.ts';
import { parseRule } from '../../src/policy/parser.ts';
import { holds } from './helpers.ts';

function ruleError(text: string): RuleError {
  try {
    parseRule(text);
  } catch (err) {
    if (err instanceof RuleError) return err;
    throw err;
  }
  throw new Error(`expected ${text} to be rejected`);
}

describe('lexer', () => {
  it('reads attributes, metadata, lists, numbers, strings, words and every operator', () => {
    const tokens = tokenize(":amount: ::order id:: @vips 12.5 'it\\'s' AND <= >= != = < > + - * / ( ) ,");
    expect(tokens.map((t) => [t.type, t.value])).toEqual([
      ['attr', 'amount'],
      ['meta', 'order id'],
      ['list', 'vips'],
      ['number', '12.5'],
      ['string', "it's"],
      ['word', 'and'],
      ['op', '<='],
      ['op', '>='],
      ['op', '!='],
      ['op', '='],
      ['op', '<'],
      ['op', '>'],
      ['op', '+'],
      ['op', '-'],
      ['op', '*'],
      ['op', '/'],
      ['(', '('],
      [')', ')'],
      [',', ','],
      ['eof', ''],
    ]);
    expect(tokens[3]!.num).toBe(12.5);
    expect(tokens[1]).toMatchObject({ start: 9, end: 21 });
  });

  it('rejects an unterminated string at its opening quote', () => {
    expect(() => tokenize(":kind: = 'refund")).toThrowError(/unterminated string; expected a closing '/);
    expect(ruleError("Review if :kind: = 'refund").offset).toBe(19);
  });

  it('rejects double-quoted strings, pointing at the quote', () => {
    const err = ruleError('Review if :kind: = "refund.create"');
    expect(err.offset).toBe(19);
    expect(err.expected).toBe("strings in 'single quotes'");
  });

  it('rejects a malformed attribute', () => {
    expect(ruleError('Review if :kind = 1').offset).toBe(10);
  });
});

describe('parser', () => {
  it('reads the outcome case-insensitively and requires if', () => {
    expect(parseRule('REVIEW IF :read:').outcome).toBe('review');
    expect(parseRule('block if :read:').outcome).toBe('block');
    const noIf = ruleError('Review :kind: = 1');
    expect([noIf.offset, noIf.expected]).toEqual([7, "'if'"]);
    const noOutcome = ruleError('Hold if :read:');
    expect([noOutcome.offset, noOutcome.expected]).toEqual([0, 'Allow, Review or Block']);
  });

  it('binds AND tighter than OR', () => {
    const ast = parseRule('Review if :a: = 1 or :b: = 2 and :c: = 3');
    expect(ast.condition.kind).toBe('or');
    if (ast.condition.kind !== 'or') throw new Error('unreachable');
    expect(ast.condition.right.kind).toBe('and');
    expect(holds('true or false and false')).toBe(true);
    expect(holds('(true or false) and false')).toBe(false);
  });

  it('binds NOT tighter than AND', () => {
    expect(holds('not false and false')).toBe(false);
    expect(holds('not (false and false)')).toBe(true);
  });

  it('gives * and / precedence over + and -, left to right', () => {
    expect(holds(':amount: + 2 * 3 = 7', { amount: 1 })).toBe(true);
    expect(holds('(:amount: + 2) * 3 = 9', { amount: 1 })).toBe(true);
    expect(holds(':amount: - 4 - 3 = 3', { amount: 10 })).toBe(true);
    expect(holds(':amount: / 4 / 2 = 1', { amount: 8 })).toBe(true);
    expect(holds('-:amount: * 3 = -6', { amount: 2 })).toBe(true);
  });

  it('accepts keywords in any case', () => {
    expect(holds(":kind: in ('a') AnD NoT :read: Or FALSE", { kind: 'a', read: false })).toBe(true);
    expect(holds('IS_MISSING(:amount:)', {})).toBe(true);
  });

  it('asks for an operator between two values', () => {
    const err = ruleError("Review if :kind: 'refund.create'");
    expect([err.offset, err.what, err.expected]).toEqual([
      17,
      "unexpected string 'refund.create'",
      'an operator such as =, <, IN',
    ]);
  });

  it("asks for ')' when a group is not closed", () => {
    const err = ruleError('Review if (:amount: > 1 and :read:');
    expect([err.offset, err.expected]).toEqual([34, "')'"]);
  });

  it('rejects an unbalanced closing parenthesis', () => {
    expect(ruleError('Review if :read:)').offset).toBe(16);
  });

  it('asks for a value after an operator', () => {
    const err = ruleError('Review if :amount: > and :read:');
    expect(err.offset).toBe(21);
    expect(err.expected).toMatch(/a value/);
  });

  it('checks the shape of IN lists', () => {
    expect(ruleError("Review if :kind: IN 'a'").expected).toBe("'(' or an @list after IN");
    expect(ruleError("Review if :kind: IN ('a' 'b')").offset).toBe(25);
    expect(ruleError("Review if :kind: IN ('a', :kind:)").offset).toBe(26);
  });

  it('wants IN, LIKE or INCLUDES after a postfix NOT', () => {
    expect(ruleError('Review if :kind: NOT = 1').expected).toBe('IN, LIKE or INCLUDES after NOT');
  });

  it('points a bare unknown word at the word and suggests colons', () => {
    const err = ruleError('Review if amount > 5');
    expect(err.offset).toBe(10);
    expect(err.expected).toMatch(/:amount:/);
  });
});
