import { RuleError } from './errors.ts';
import { type Token, tokenize } from './lexer.ts';
import type { Outcome } from './outcome.ts';

/** Character offsets into the rule's text: [start, end). */
export interface Span {
  start: number;
  end: number;
}

export type CompareOp = '=' | '!=' | '<' | '>' | '<=' | '>=';
export type ArithOp = '+' | '-' | '*' | '/';

export type AttrNode = Span & { kind: 'attr'; name: string };
export type MetaNode = Span & { kind: 'meta'; key: string };
export type NumberNode = Span & { kind: 'number'; value: number };
export type StringNode = Span & { kind: 'string'; value: string };
export type LiteralNode = NumberNode | StringNode;

export type Expr =
  | AttrNode
  | MetaNode
  | NumberNode
  | StringNode
  | (Span & { kind: 'boolean'; value: boolean })
  | (Span & { kind: 'arith'; op: ArithOp; left: Expr; right: Expr })
  | (Span & { kind: 'negate'; operand: Expr })
  | (Span & { kind: 'compare'; op: CompareOp; left: Expr; right: Expr; opStart: number })
  | (Span & { kind: 'in'; left: Expr; values: LiteralNode[]; negated: boolean })
  | (Span & { kind: 'in_list'; left: Expr; list: string; listSpan: Span; negated: boolean })
  | (Span & { kind: 'includes'; left: Expr; value: Expr; negated: boolean })
  | (Span & { kind: 'like'; left: Expr; pattern: StringNode; negated: boolean })
  | (Span & { kind: 'and' | 'or'; left: Expr; right: Expr })
  | (Span & { kind: 'not'; operand: Expr })
  | (Span & { kind: 'is_missing'; operand: AttrNode | MetaNode });

export interface RuleAst {
  outcome: Outcome;
  condition: Expr;
}

const OUTCOMES: Record<string, Outcome> = { allow: 'allow', review: 'review', block: 'block' };
const COMPARE_OPS = new Set(['=', '!=', '<', '>', '<=', '>=']);
const RESERVED = new Set(['and', 'or', 'not', 'in', 'includes', 'like', 'if']);
const OPERATOR_HINT = 'an operator such as =, <, IN';

function describe(t: Token): string {
  if (t.type === 'eof') return 'end of rule';
  return t.type === 'string' ? `string ${t.raw}` : `'${t.raw}'`;
}

/**
 * Recursive descent over Radar's grammar, lowest precedence first:
 *   rule    := (Allow|Review|Block) IF or EOF
 *   or      := and (OR and)*
 *   and     := not (AND not)*
 *   not     := NOT not | compare
 *   compare := sum [ cmp sum | [NOT] IN (list | @name) | [NOT] INCLUDES sum | [NOT] LIKE 'pattern' ]
 *   sum     := product (('+'|'-') product)*
 *   product := unary (('*'|'/') unary)*
 *   unary   := '-' unary | primary
 *   primary := number | 'string' | :attr: | ::meta:: | true | false | is_missing(:attr:) | '(' or ')'
 * Types (is this a condition or a value?) are checked afterwards, in evaluate.ts.
 */
class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.pos + ahead, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.type !== 'eof') this.pos++;
    return t;
  }

  private isWord(word: string, ahead = 0): boolean {
    const t = this.peek(ahead);
    return t.type === 'word' && t.value === word;
  }

  private fail(t: Token, expected: string): never {
    throw new RuleError(t.start, `unexpected ${describe(t)}`, expected);
  }

  private expect(type: Token['type'], expected: string): Token {
    const t = this.peek();
    if (t.type !== type) this.fail(t, expected);
    return this.next();
  }

  rule(): RuleAst {
    const first = this.peek();
    const outcome = first.type === 'word' ? OUTCOMES[first.value] : undefined;
    if (!outcome) this.fail(first, 'Allow, Review or Block');
    this.next();
    if (!this.isWord('if')) this.fail(this.peek(), "'if'");
    this.next();
    const condition = this.or();
    const end = this.peek();
    if (end.type !== 'eof') {
      this.fail(
        end,
        end.type === ')'
          ? "AND, OR or the end of the rule (unbalanced ')')"
          : 'AND, OR or the end of the rule',
      );
    }
    return { outcome, condition };
  }

  private or(): Expr {
    let left = this.and();
    while (this.isWord('or')) {
      this.next();
      const right = this.and();
      left = { kind: 'or', left, right, start: left.start, end: right.end };
    }
    return left;
  }

  private and(): Expr {
    let left = this.not();
    while (this.isWord('and')) {
      this.next();
      const right = this.not();
      left = { kind: 'and', left, right, start: left.start, end: right.end };
    }
    return left;
  }

  private not(): Expr {
    if (this.isWord('not')) {
      const t = this.next();
      const operand = this.not();
      return { kind: 'not', operand, start: t.start, end: operand.end };
    }
    return this.compare();
  }

  private compare(): Expr {
    const left = this.sum();
    const t = this.peek();
    if (t.type === 'op' && COMPARE_OPS.has(t.value)) {
      this.next();
      const right = this.sum();
      const op = t.value as CompareOp;
      return { kind: 'compare', op, left, right, opStart: t.start, start: left.start, end: right.end };
    }
    let negated = false;
    if (this.isWord('not')) {
      const after = this.peek(1);
      if (after.type !== 'word' || !['in', 'like', 'includes'].includes(after.value)) {
        this.fail(after, 'IN, LIKE or INCLUDES after NOT');
      }
      this.next();
      negated = true;
    }
    if (this.isWord('in')) {
      this.next();
      return this.inTail(left, negated);
    }
    if (this.isWord('includes')) {
      this.next();
      const value = this.sum();
      return { kind: 'includes', left, value, negated, start: left.start, end: value.end };
    }
    if (this.isWord('like')) {
      this.next();
      const p = this.expect('string', "a 'pattern' after LIKE, such as '%gift%'");
      const pattern: StringNode = { kind: 'string', value: p.value, start: p.start, end: p.end };
      return { kind: 'like', left, pattern, negated, start: left.start, end: p.end };
    }
    // A value followed by another value is a missing operator: ":kind: 'refund.create'".
    const startsValue =
      t.type === 'attr' ||
      t.type === 'meta' ||
      t.type === 'number' ||
      t.type === 'string' ||
      t.type === 'list' ||
      t.type === '(' ||
      (t.type === 'op' && !COMPARE_OPS.has(t.value)) ||
      (t.type === 'word' && !RESERVED.has(t.value));
    if (startsValue) this.fail(t, OPERATOR_HINT);
    return left;
  }

  private inTail(left: Expr, negated: boolean): Expr {
    const t = this.peek();
    if (t.type === 'list') {
      this.next();
      const listSpan = { start: t.start, end: t.end };
      return { kind: 'in_list', left, list: t.value, listSpan, negated, start: left.start, end: t.end };
    }
    this.expect('(', "'(' or an @list after IN");
    const values: LiteralNode[] = [];
    for (;;) {
      const v = this.peek();
      const negative = v.type === 'op' && v.value === '-' && this.peek(1).type === 'number';
      if (negative) {
        this.next();
        const n = this.next();
        values.push({ kind: 'number', value: -n.num, start: v.start, end: n.end });
      } else if (v.type === 'number') {
        this.next();
        values.push({ kind: 'number', value: v.num, start: v.start, end: v.end });
      } else if (v.type === 'string') {
        this.next();
        values.push({ kind: 'string', value: v.value, start: v.start, end: v.end });
      } else {
        this.fail(v, "a 'string' or a number in the IN list");
      }
      const sep = this.peek();
      if (sep.type === ',') {
        this.next();
        continue;
      }
      if (sep.type === ')') {
        this.next();
        return { kind: 'in', left, values, negated, start: left.start, end: sep.end };
      }
      this.fail(sep, "',' or ')'");
    }
  }

  private sum(): Expr {
    let left = this.product();
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op' || (t.value !== '+' && t.value !== '-')) return left;
      this.next();
      const right = this.product();
      left = { kind: 'arith', op: t.value, left, right, start: left.start, end: right.end };
    }
  }

  private product(): Expr {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op' || (t.value !== '*' && t.value !== '/')) return left;
      this.next();
      const right = this.unary();
      left = { kind: 'arith', op: t.value, left, right, start: left.start, end: right.end };
    }
  }

  private unary(): Expr {
    const t = this.peek();
    if (t.type === 'op' && t.value === '-') {
      this.next();
      const operand = this.unary();
      return { kind: 'negate', operand, start: t.start, end: operand.end };
    }
    return this.primary();
  }

  private primary(): Expr {
    const t = this.peek();
    const valueHint = "a value such as :attribute:, a number or a 'string'";
    switch (t.type) {
      case 'number':
        this.next();
        return { kind: 'number', value: t.num, start: t.start, end: t.end };
      case 'string':
        this.next();
        return { kind: 'string', value: t.value, start: t.start, end: t.end };
      case 'attr':
        this.next();
        return { kind: 'attr', name: t.value, start: t.start, end: t.end };
      case 'meta':
        this.next();
        return { kind: 'meta', key: t.value, start: t.start, end: t.end };
      case '(': {
        this.next();
        const inner = this.or();
        const close = this.expect(')', "')'");
        return { ...inner, start: t.start, end: close.end };
      }
      case 'list':
        throw new RuleError(t.start, `unexpected list ${describe(t)}`, 'an @list only after IN');
      case 'word':
        if (t.value === 'true' || t.value === 'false') {
          this.next();
          return { kind: 'boolean', value: t.value === 'true', start: t.start, end: t.end };
        }
        if (t.value === 'is_missing') {
          this.next();
          this.expect('(', "'(' after is_missing");
          const a = this.peek();
          if (a.type !== 'attr' && a.type !== 'meta')
            this.fail(a, 'an :attribute: or ::metadata:: in is_missing()');
          this.next();
          const operand: AttrNode | MetaNode =
            a.type === 'attr'
              ? { kind: 'attr', name: a.value, start: a.start, end: a.end }
              : { kind: 'meta', key: a.value, start: a.start, end: a.end };
          const close = this.expect(')', "')'");
          return { kind: 'is_missing', operand, start: t.start, end: close.end };
        }
        if (!RESERVED.has(t.value)) {
          throw new RuleError(
            t.start,
            `unknown word '${t.raw}'`,
            `${valueHint} (attributes are written :${t.raw}:)`,
          );
        }
        return this.fail(t, valueHint);
      default:
        return this.fail(t, valueHint);
    }
  }
}

/** Parses one rule's text ("Review if :amount_in_usd: > 500"). Throws RuleError with an offset into `text`. */
export function parseRule(text: string): RuleAst {
  const tokens = tokenize(text);
  // Recursive descent (and the checks after it) recurse once per level: a hostile depth would overflow the stack.
  let depth = 0;
  let prefixes = 0;
  for (const t of tokens) {
    if (t.type === '(') depth++;
    else if (t.type === ')') depth--;
    else if ((t.type === 'word' && t.value === 'not') || (t.type === 'op' && t.value === '-')) prefixes++;
    if (depth > MAX_NESTING || prefixes > MAX_NESTING) {
      throw new RuleError(t.start, 'The rule is nested too deeply', `at most ${MAX_NESTING} levels`);
    }
  }
  return new Parser(tokens).rule();
}

const MAX_NESTING = 64;
