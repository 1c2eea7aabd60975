import type { AttributeRegistry, AttrType } from './attributes.ts';
import { RuleError } from './errors.ts';
import type { Expr, LiteralNode, StringNode } from './parser.ts';
import type { CompiledRule, CustomerNotice, EvalInput, Outcome, Policy, PolicyDecision } from './types.ts';

/** A value at decision time; `undefined` is "missing" (absent, null, or of the wrong runtime type). */
type Value = number | string | boolean | readonly string[] | undefined;
type ValueFn = (input: EvalInput) => Value;
type NumberFn = (input: EvalInput) => number | undefined;
type StringFn = (input: EvalInput) => string | undefined;
export type ConditionFn = (input: EvalInput) => boolean;

/** 'meta' is a metadata string: compared as a string, or as a number when it is next to one. */
type StaticType = AttrType | 'meta';
interface Typed {
  type: StaticType;
  fn: ValueFn;
}

export interface CompileContext {
  /** The rule's text, for quoting operands in error messages. */
  text: string;
  attributes: AttributeRegistry;
  lists: Readonly<Record<string, readonly string[]>>;
  /** Filled with every attribute name the condition reads. */
  referenced: Set<string>;
}

const OPERATOR_HINT = 'an operator such as =, <, IN';
const TYPE_NAME: Record<StaticType, string> = {
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean',
  'string[]': 'a list of strings',
  meta: 'a metadata string',
};

function numberFromMeta(s: Value): number | undefined {
  if (typeof s !== 'string' || s.trim() === '') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** A LIKE pattern as an anchored RegExp, built once at load time: % is any run, _ one character. */
export function likeToRegExp(pattern: string): RegExp {
  let source = '';
  for (const c of pattern) {
    if (c === '%') source += '.*';
    else if (c === '_') source += '.';
    else source += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

class Compiler {
  constructor(private readonly ctx: CompileContext) {}

  private quote(e: Expr): string {
    return this.ctx.text.slice(e.start, e.end);
  }

  private mismatch(e: Expr, type: StaticType, expected: string): never {
    throw new RuleError(e.start, `${this.quote(e)} is ${TYPE_NAME[type]}`, expected);
  }

  condition(e: Expr): ConditionFn {
    switch (e.kind) {
      case 'and': {
        const l = this.condition(e.left);
        const r = this.condition(e.right);
        return (i) => l(i) && r(i);
      }
      case 'or': {
        const l = this.condition(e.left);
        const r = this.condition(e.right);
        return (i) => l(i) || r(i);
      }
      case 'not': {
        const c = this.condition(e.operand);
        return (i) => !c(i);
      }
      case 'boolean': {
        const v = e.value;
        return () => v;
      }
      case 'compare':
        return this.compare(e.op, e.left, e.right);
      case 'in':
        return this.inValues(e.left, e.values, e.negated);
      case 'in_list': {
        const list = this.ctx.lists[e.list];
        if (!list) {
          const defined = Object.keys(this.ctx.lists);
          throw new RuleError(
            e.listSpan.start,
            `unknown list @${e.list}`,
            defined.length
              ? `a list defined under lists: (${defined.map((n) => `@${n}`).join(', ')})`
              : 'a list defined under lists:',
          );
        }
        const left = this.stringOperand(e.left, 'a string before IN @list');
        return this.membership(left, new Set(list), e.negated);
      }
      case 'includes': {
        const left = this.value(e.left);
        if (left.type !== 'string[]') this.mismatch(e.left, left.type, 'a list attribute before INCLUDES');
        const arr = left.fn;
        const item = this.stringOperand(e.value, 'a string after INCLUDES');
        const negated = e.negated;
        return (i) => {
          const a = arr(i);
          const v = item(i);
          if (!Array.isArray(a) || v === undefined) return false;
          return a.includes(v) !== negated;
        };
      }
      case 'like': {
        const left = this.stringOperand(e.left, 'a string before LIKE');
        const re = likeToRegExp(e.pattern.value);
        const negated = e.negated;
        return (i) => {
          const v = left(i);
          return v !== undefined && re.test(v) !== negated;
        };
      }
      case 'is_missing': {
        const v = this.value(e.operand).fn;
        return (i) => v(i) === undefined;
      }
      default: {
        // A value used as a condition: only booleans qualify ("Allow if :read:").
        const v = this.value(e);
        if (v.type !== 'boolean') {
          throw new RuleError(
            e.start,
            `${this.quote(e)} is ${TYPE_NAME[v.type]}, not a condition`,
            OPERATOR_HINT,
          );
        }
        const fn = v.fn;
        return (i) => fn(i) === true;
      }
    }
  }

  private value(e: Expr): Typed {
    switch (e.kind) {
      case 'number': {
        const v = e.value;
        return { type: 'number', fn: () => v };
      }
      case 'string': {
        const v = e.value;
        return { type: 'string', fn: () => v };
      }
      case 'boolean': {
        const v = e.value;
        return { type: 'boolean', fn: () => v };
      }
      case 'attr':
        return this.attribute(e.name, e.start);
      case 'meta': {
        const key = e.key;
        return {
          type: 'meta',
          fn: (i) => {
            const v = Object.hasOwn(i.metadata, key) ? i.metadata[key] : undefined;
            return typeof v === 'string' ? v : undefined;
          },
        };
      }
      case 'negate': {
        const n = this.numberOperand(e.operand);
        return {
          type: 'number',
          fn: (i) => {
            const v = n(i);
            return v === undefined ? undefined : -v;
          },
        };
      }
      case 'arith': {
        const l = this.numberOperand(e.left);
        const r = this.numberOperand(e.right);
        return { type: 'number', fn: arithmetic(e.op, l, r) };
      }
      default: {
        // A condition in a value position, e.g. "(:amount: > 5) = true".
        const c = this.condition(e);
        return { type: 'boolean', fn: c };
      }
    }
  }

  private attribute(name: string, offset: number): Typed {
    const spec = this.ctx.attributes.lookup(name);
    if (!spec) {
      const known = this.ctx.attributes
        .names()
        .map((n) => `:${n}:`)
        .join(', ');
      throw new RuleError(offset, `unknown attribute :${name}:`, `a known attribute (${known})`);
    }
    this.ctx.referenced.add(name);
    // The caller's values are checked at run time too: a value of the wrong type is treated as missing.
    switch (spec.type) {
      case 'number':
        return {
          type: 'number',
          fn: (i) => {
            const v = i.attributes[name];
            return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
          },
        };
      case 'string':
        return {
          type: 'string',
          fn: (i) => {
            const v = i.attributes[name];
            return typeof v === 'string' ? v : undefined;
          },
        };
      case 'boolean':
        return {
          type: 'boolean',
          fn: (i) => {
            const v = i.attributes[name];
            return typeof v === 'boolean' ? v : undefined;
          },
        };
      case 'string[]':
        return {
          type: 'string[]',
          fn: (i) => {
            const v = i.attributes[name];
            return Array.isArray(v) ? v : undefined;
          },
        };
    }
  }

  private numberOperand(e: Expr): NumberFn {
    const t = this.value(e);
    if (t.type === 'number') return t.fn as NumberFn;
    if (t.type === 'meta') {
      const fn = t.fn;
      return (i) => numberFromMeta(fn(i));
    }
    return this.mismatch(e, t.type, 'a number');
  }

  private stringOperand(e: Expr, expected: string): StringFn {
    const t = this.value(e);
    if (t.type === 'string' || t.type === 'meta') return t.fn as StringFn;
    return this.mismatch(e, t.type, expected);
  }

  private compare(op: string, left: Expr, right: Expr): ConditionFn {
    const l = this.value(left);
    const r = this.value(right);
    const ordering = op !== '=' && op !== '!=';
    const numeric =
      (l.type === 'number' && (r.type === 'number' || r.type === 'meta')) ||
      (r.type === 'number' && l.type === 'meta') ||
      (ordering && l.type === 'meta' && r.type === 'meta');
    if (numeric) {
      return compareWith(op, this.numberOperand(left), this.numberOperand(right));
    }
    if (ordering) {
      if (l.type !== 'number' && l.type !== 'meta')
        this.mismatch(left, l.type, `a number on both sides of ${op}`);
      this.mismatch(right, r.type, `a number on both sides of ${op}`);
    }
    const stringy = (t: StaticType) => t === 'string' || t === 'meta';
    if ((stringy(l.type) && stringy(r.type)) || (l.type === 'boolean' && r.type === 'boolean')) {
      return compareWith(op, l.fn as StringFn, r.fn as StringFn);
    }
    if (l.type === 'string[]') this.mismatch(left, l.type, `INCLUDES instead of ${op}`);
    throw new RuleError(
      right.start,
      `cannot compare ${this.quote(left)} (${TYPE_NAME[l.type]}) with ${this.quote(right)} (${TYPE_NAME[r.type]})`,
      TYPE_NAME[l.type === 'meta' ? r.type : l.type],
    );
  }

  private inValues(left: Expr, values: LiteralNode[], negated: boolean): ConditionFn {
    const l = this.value(left);
    const first = values[0]!;
    const wanted: StaticType = l.type === 'meta' ? first.kind : l.type;
    if (wanted !== 'number' && wanted !== 'string')
      this.mismatch(left, l.type, 'a number or a string before IN');
    for (const v of values) {
      if (v.kind !== wanted) {
        throw new RuleError(
          v.start,
          `${this.quote(v)} is ${TYPE_NAME[v.kind]} but ${this.quote(left)} is ${TYPE_NAME[l.type]}`,
          `IN values of one type (${TYPE_NAME[wanted]})`,
        );
      }
    }
    if (wanted === 'number') {
      const set = new Set((values as LiteralNode[]).map((v) => v.value as number));
      return this.membership(this.numberOperand(left), set, negated);
    }
    const set = new Set((values as StringNode[]).map((v) => v.value));
    return this.membership(l.fn as StringFn, set, negated);
  }

  private membership<T>(
    fn: (i: EvalInput) => T | undefined,
    set: ReadonlySet<T>,
    negated: boolean,
  ): ConditionFn {
    return (i) => {
      const v = fn(i);
      return v !== undefined && set.has(v) !== negated;
    };
  }
}

function arithmetic(op: string, l: NumberFn, r: NumberFn): NumberFn {
  const apply =
    op === '+'
      ? (a: number, b: number) => a + b
      : op === '-'
        ? (a: number, b: number) => a - b
        : op === '*'
          ? (a: number, b: number) => a * b
          : (a: number, b: number) => (b === 0 ? undefined : a / b);
  return (i) => {
    const a = l(i);
    if (a === undefined) return undefined;
    const b = r(i);
    return b === undefined ? undefined : apply(a, b);
  };
}

/** Any comparison with a missing side is false, whatever the operator (so `!=` too). */
function compareWith<T extends number | string | boolean>(
  op: string,
  l: (i: EvalInput) => T | undefined,
  r: (i: EvalInput) => T | undefined,
): ConditionFn {
  const test =
    op === '='
      ? (a: T, b: T) => a === b
      : op === '!='
        ? (a: T, b: T) => a !== b
        : op === '<'
          ? (a: T, b: T) => a < b
          : op === '>'
            ? (a: T, b: T) => a > b
            : op === '<='
              ? (a: T, b: T) => a <= b
              : (a: T, b: T) => a >= b;
  return (i) => {
    const a = l(i);
    if (a === undefined) return false;
    const b = r(i);
    return b !== undefined && test(a, b);
  };
}

/** Type-checks a parsed condition and turns it into a closure. Throws RuleError (offset into ctx.text). */
export function compileCondition(expr: Expr, ctx: CompileContext): ConditionFn {
  return new Compiler(ctx).condition(expr);
}

const RANK: Record<Outcome, number> = { allow: 0, review: 1, block: 2 };
const BY_RANK: readonly Outcome[] = ['allow', 'review', 'block'];
const CAPITAL: Record<Outcome, string> = { allow: 'Allow', review: 'Review', block: 'Block' };

function cite(rules: readonly CompiledRule[]): string {
  return rules.map((r) => `${r.id}: ${r.text}`).join('; ');
}

function union(lists: Iterable<readonly string[]>): string[] {
  const out = new Set<string>();
  for (const list of lists) for (const x of list) out.add(x);
  return [...out];
}

/**
 * Decides one request. The most restrictive matching enforce-mode rule wins; with no match, reads are
 * allowed and writes get the policy default. Shadow-mode rules (or the whole policy in shadow mode) are
 * recorded as what would have happened, and never hold anything.
 */
export function decide(policy: Policy, input: EvalInput): PolicyDecision {
  const globalShadow = policy.mode === 'shadow';
  const matched: CompiledRule[] = [];
  let enforcedRank = -1;
  let allRank = -1;
  let shadowMatched = false;
  for (const rule of policy.rules) {
    if (!rule.test(input)) continue;
    matched.push(rule);
    const rank = RANK[rule.outcome];
    if (rank > allRank) allRank = rank;
    if (globalShadow || rule.options.mode === 'shadow') shadowMatched = true;
    else if (rank > enforcedRank) enforcedRank = rank;
  }

  const fallback: Outcome = input.attributes.read === true ? 'allow' : policy.default;
  const wouldBe: Outcome = allRank >= 0 ? BY_RANK[allRank]! : fallback;
  let outcome: Outcome;
  if (globalShadow) outcome = 'allow';
  else if (enforcedRank >= 0) outcome = BY_RANK[enforcedRank]!;
  // Only shadow rules matched: the request was covered by a rule, so the default does not apply.
  else if (matched.length > 0) outcome = 'allow';
  else outcome = fallback;

  const shadowOutcome = globalShadow || shadowMatched ? wouldBe : null;
  const deciding = globalShadow
    ? []
    : matched.filter((r) => r.options.mode === 'enforce' && r.outcome === outcome);

  let approvalsRequired = 1;
  let expiresInMs: number | null = null;
  let remindBeforeMs: number | null = null;
  let escalateAfterMs: number | null = null;
  for (const r of deciding) {
    approvalsRequired = Math.max(approvalsRequired, r.options.approvals);
    const e = r.options.expiresInMs;
    if (e !== null && (expiresInMs === null || e < expiresInMs)) expiresInMs = e;
    const remind = r.options.remindBeforeMs;
    if (remind !== null && (remindBeforeMs === null || remind > remindBeforeMs)) remindBeforeMs = remind;
    const escalate = r.options.escalateAfterMs;
    if (escalate !== null && (escalateAfterMs === null || escalate < escalateAfterMs))
      escalateAfterMs = escalate;
  }

  let reason: string;
  if (globalShadow) {
    const why = matched.length
      ? cite(matched.filter((r) => r.outcome === wouldBe))
      : `no rule matched; ${fallback === 'allow' && input.attributes.read === true ? 'reads are allowed' : `policy default is ${fallback}`}`;
    reason = `Shadow mode: would ${wouldBe} (${why}); allowed`;
  } else if (deciding.length > 0) {
    reason = `${CAPITAL[outcome]} (${cite(deciding)})`;
  } else if (matched.length > 0) {
    reason = `Allow: only shadow-mode rules matched; they would ${wouldBe} (${cite(matched.filter((r) => r.outcome === wouldBe))})`;
  } else {
    reason =
      input.attributes.read === true
        ? 'No rule matched; reads are allowed'
        : `No rule matched; policy default is ${policy.default}`;
  }

  return {
    outcome,
    rules: matched.map((r) => r.text),
    matched,
    reason,
    approvalsRequired,
    expiresInMs: expiresInMs ?? policy.defaultExpiresInMs,
    notify: union(deciding.map((r) => r.options.notify)),
    reviewers: union(deciding.map((r) => r.options.reviewers)),
    remindBeforeMs,
    escalateAfterMs,
    escalateTo: union(deciding.map((r) => r.options.escalateTo)),
    customerNotice: customerNoticeOf(deciding),
    shadow: shadowOutcome !== null && RANK[shadowOutcome] > RANK[outcome],
    shadowOutcome,
  };
}

/** Any deciding rule may ask for a notice; the notes go only if every rule that asks allows them. */
function customerNoticeOf(deciding: readonly CompiledRule[]): CustomerNotice {
  const asking = deciding.filter((r) => r.options.customerNotice !== 'none');
  if (asking.length === 0) return 'none';
  return asking.every((r) => r.options.customerNotice === 'with_note') ? 'with_note' : 'plain';
}
