import type { Expr } from './parser.ts';

/**
 * Finds conditions that can never hold: within one chain of ANDs, an attribute required to equal two
 * different values, or numeric bounds that leave nothing (`:amount: > 500 and :amount: < 100`). Returns
 * a description and the offset (in the rule text) of the conjunct that contradicts an earlier one.
 */
export function neverMatches(condition: Expr): { offset: number; what: string } | null {
  const conjuncts: Expr[] = [];
  const flatten = (e: Expr) => {
    if (e.kind === 'and') {
      flatten(e.left);
      flatten(e.right);
    } else conjuncts.push(e);
  };
  flatten(condition);
  const equal = new Map<string, string | number>();
  const lower = new Map<string, { v: number; strict: boolean }>();
  const upper = new Map<string, { v: number; strict: boolean }>();
  for (const c of conjuncts) {
    let attr: string | null = null;
    let allowed: (string | number)[] | null = null;
    let op: string | null = null;
    let num: number | null = null;
    if (
      c.kind === 'compare' &&
      c.left.kind === 'attr' &&
      (c.right.kind === 'number' || c.right.kind === 'string')
    ) {
      attr = c.left.name;
      op = c.op;
      if (c.right.kind === 'number') num = c.right.value;
      if (c.op === '=') allowed = [c.right.value];
    } else if (c.kind === 'in' && !c.negated && c.left.kind === 'attr') {
      attr = c.left.name;
      allowed = c.values.map((v) => v.value);
    }
    if (attr === null) continue;
    if (allowed) {
      const prev = equal.get(attr);
      if (prev !== undefined && !allowed.includes(prev)) {
        return {
          offset: c.start,
          what: `:${attr}: cannot be both ${JSON.stringify(prev)} and ${allowed.map((a) => JSON.stringify(a)).join(' or ')}`,
        };
      }
      if (allowed.length === 1) equal.set(attr, allowed[0]!);
    }
    if (num !== null && op !== null) {
      if (op === '>' || op === '>=' || op === '=') {
        const cur = lower.get(attr);
        if (!cur || num > cur.v || (num === cur.v && op === '>'))
          lower.set(attr, { v: num, strict: op === '>' });
      }
      if (op === '<' || op === '<=' || op === '=') {
        const cur = upper.get(attr);
        if (!cur || num < cur.v || (num === cur.v && op === '<'))
          upper.set(attr, { v: num, strict: op === '<' });
      }
      const lo = lower.get(attr);
      const hi = upper.get(attr);
      if (lo && hi && (lo.v > hi.v || (lo.v === hi.v && (lo.strict || hi.strict)))) {
        return {
          offset: c.start,
          what: `no value of :${attr}: is ${lo.strict ? '>' : '>='} ${lo.v} and ${hi.strict ? '<' : '<='} ${hi.v}`,
        };
      }
    }
  }
  return null;
}
