import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { baseAttributes, KNOWN_ATTRIBUTES } from '../policy/attributes.ts';
import { PolicyError } from '../policy/errors.ts';
import { decide } from '../policy/evaluate.ts';
import { loadPolicyFile, STARTER_POLICY_PATH } from '../policy/policy.ts';
import { riskInputFromAttributes, riskScore } from '../policy/risk.ts';
import type { AttrValue, Outcome, Policy } from '../policy/types.ts';
import { classify } from '../stripe/classify.ts';
import type { Params, ParamValue } from '../stripe/params.ts';

/** When a case names no time: Tuesday 12 March 2024, 16:00 UTC (noon in New York). */
export const DEFAULT_CASE_TIME = '2024-03-12T16:00:00Z';

const attrValue = z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.string())]);

const CaseSchema = z
  .object({
    name: z.string().min(1),
    request: z.union([
      z
        .object({
          method: z.string().default('POST'),
          path: z.string().startsWith('/'),
          params: z.record(z.string(), z.unknown()).default({}),
        })
        .strict(),
      z
        .object({
          kind: z.string().min(1),
          amount: z.number().int().nullable().optional(),
          currency: z.string().length(3).optional(),
          read: z.boolean().optional(),
          customer: z.string().optional(),
          destination: z.string().optional(),
        })
        .strict(),
    ]),
    context: z
      .object({
        at: z.iso.datetime({ offset: true }).optional(),
        agent: z.string().optional(),
        /** For refunds, whose currency (and, for a full refund, amount) come from the charge. */
        currency: z.string().length(3).optional(),
        amount: z.number().int().optional(),
        customer: z.string().optional(),
        attributes: z.record(z.string(), attrValue).default({}),
        metadata: z.record(z.string(), z.string()).default({}),
      })
      .strict()
      .default({ attributes: {}, metadata: {} }),
    expect: z
      .object({
        outcome: z.enum(['allow', 'review', 'block']),
        /** Every matching rule, by name/id ('rule_3') or by text; the order does not matter. */
        rules: z.array(z.string()).optional(),
        approvals: z.number().int().min(1).optional(),
        shadow: z.boolean().optional(),
        risk_level: z.enum(['normal', 'elevated', 'highest']).optional(),
      })
      .strict(),
  })
  .strict();

const FileSchema = z
  .object({
    /** The policy under test, relative to this file; default: the file named like this one without `.test`. */
    policy: z.string().optional(),
    cases: z.array(CaseSchema).min(1),
  })
  .strict();

export type PolicyCase = z.infer<typeof CaseSchema>;

export interface CaseResult {
  name: string;
  line: number;
  ok: boolean;
  /** One line per difference: "outcome: expected review, got allow". */
  diffs: string[];
  outcome: Outcome;
  rules: string[];
  riskScore: number;
}

export interface CasesReport {
  file: string;
  policy: Policy;
  results: CaseResult[];
  passed: number;
  failed: number;
}

/** `policy.yaml` → `policy.test.yaml`, the cases that ship beside a policy. */
export function casesFileFor(policyFile: string): string {
  return policyFile.replace(/(\.ya?ml)?$/, '.test.yaml');
}

function toParams(value: unknown): ParamValue {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.map(toParams);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toParams(v)])) as Params;
  }
  return value as ParamValue;
}

/** Decides one case with the policy's pure core: no store, no upstream. Missing facts come from `context`. */
export function runCase(policy: Policy, c: PolicyCase, line = 0): CaseResult {
  const ctx = c.context;
  const r = c.request;
  const facts =
    'path' in r
      ? (() => {
          const k = classify({
            method: r.method.toUpperCase(),
            path: r.path,
            params: toParams(r.params) as Params,
          });
          return {
            kind: k.kind,
            read: k.read,
            method: r.method.toUpperCase(),
            path: r.path,
            amount: k.amount,
            currency: k.currency,
            customer: k.customer,
            charge: k.charge,
            destination: k.destination,
            payment_intent: k.payment_intent,
            full: k.kind === 'refund.create' && k.amount === null,
          };
        })()
      : {
          kind: r.kind,
          read: r.read ?? false,
          method: r.read ? 'GET' : 'POST',
          path: '',
          amount: r.amount ?? null,
          currency: r.currency ?? null,
          customer: r.customer ?? null,
          charge: null,
          destination: r.destination ?? null,
          payment_intent: null,
          full: false,
        };
  const now = new Date(ctx.at ?? DEFAULT_CASE_TIME);
  const base = baseAttributes(
    {
      ...facts,
      amount: facts.amount ?? ctx.amount ?? null,
      currency: (facts.currency ?? ctx.currency ?? null)?.toLowerCase() ?? null,
      customer: facts.customer ?? ctx.customer ?? null,
      agent: ctx.agent ?? null,
      stripe_account: null,
    },
    now,
    policy,
  );
  const attributes: Record<string, AttrValue> = { ...base, ...ctx.attributes };
  if (facts.kind === 'refund.create' && !('full_refund' in ctx.attributes))
    attributes['full_refund'] = facts.full;
  if (!('risk_score' in ctx.attributes)) {
    const risk = riskScore(riskInputFromAttributes(attributes));
    attributes['risk_score'] = risk.score;
    attributes['risk_level'] = risk.level;
  }
  const d = decide(policy, { attributes, metadata: ctx.metadata });
  const diffs: string[] = [];
  const e = c.expect;
  if (d.outcome !== e.outcome) diffs.push(`outcome: expected ${e.outcome}, got ${d.outcome} (${d.reason})`);
  if (e.rules) {
    const byRef = (ref: string) => d.matched.some((m) => m.id === ref || m.text === ref);
    const missing = e.rules.filter((ref) => !byRef(ref));
    const extra = d.matched.filter((m) => !e.rules!.includes(m.id) && !e.rules!.includes(m.text));
    for (const ref of missing) diffs.push(`rules: expected ${ref} to match; it did not`);
    for (const m of extra) diffs.push(`rules: ${m.id} matched, not expected: ${m.text}`);
  }
  if (e.approvals !== undefined && d.approvalsRequired !== e.approvals) {
    diffs.push(`approvals: expected ${e.approvals}, got ${d.approvalsRequired}`);
  }
  if (e.shadow !== undefined && d.shadow !== e.shadow)
    diffs.push(`shadow: expected ${e.shadow}, got ${d.shadow}`);
  if (e.risk_level !== undefined && attributes['risk_level'] !== e.risk_level) {
    diffs.push(
      `risk_level: expected ${e.risk_level}, got ${String(attributes['risk_level'])} (score ${String(attributes['risk_score'])})`,
    );
  }
  return {
    name: c.name,
    line,
    ok: diffs.length === 0,
    diffs,
    outcome: d.outcome,
    rules: d.matched.map((m) => m.id),
    riskScore: typeof attributes['risk_score'] === 'number' ? attributes['risk_score'] : 0,
  };
}

/**
 * Loads a cases file and runs it. A malformed case file (unknown key, unknown attribute, bad time) is a
 * PolicyError naming the file, line and column, like a malformed policy.
 */
export function runCasesFile(file: string, policyOverride?: string): CasesReport {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new PolicyError(file, 1, 1, `cannot read the test file (${code})`, 'a YAML file of cases');
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const at = (offset: number) => lines.linePos(offset);
  const yamlError = doc.errors[0];
  if (yamlError) {
    const p = at(yamlError.pos[0]);
    throw new PolicyError(
      file,
      p.line,
      p.col,
      `invalid YAML: ${yamlError.message.split('\n')[0]}`,
      'valid YAML',
    );
  }
  const parsed = FileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const node = doc.getIn(issue.path as (string | number)[], true) as
      | { range?: [number, number] }
      | undefined;
    const parent = doc.getIn(issue.path.slice(0, -1) as (string | number)[], true) as
      | { range?: [number, number] }
      | undefined;
    const p = at(node?.range?.[0] ?? parent?.range?.[0] ?? 0);
    throw new PolicyError(
      file,
      p.line,
      p.col,
      `${issue.path.join('.') || 'file'}: ${issue.message}`,
      'a case as in docs/policies.md',
    );
  }
  const casesNode = doc.get('cases', true);
  const caseLine = (i: number) => {
    const item = isSeq(casesNode) ? casesNode.items[i] : undefined;
    const offset = isMap(item) && item.range ? item.range[0] : 0;
    return at(offset);
  };
  parsed.data.cases.forEach((c, i) => {
    for (const name of Object.keys(c.context.attributes)) {
      if (!KNOWN_ATTRIBUTES.has(name)) {
        const p = caseLine(i);
        throw new PolicyError(
          file,
          p.line,
          p.col,
          `case '${c.name}' sets unknown attribute :${name}:`,
          'a known attribute',
        );
      }
    }
  });
  const policyFile =
    policyOverride ??
    (parsed.data.policy ? resolve(dirname(file), parsed.data.policy) : defaultPolicyFor(file));
  const policy = loadPolicyFile(policyFile);
  const results = parsed.data.cases.map((c, i) => runCase(policy, c, caseLine(i).line));
  const failed = results.filter((r) => !r.ok).length;
  return { file, policy, results, passed: results.length - failed, failed };
}

function defaultPolicyFor(casesFile: string): string {
  const guess = casesFile.replace(/\.test\.ya?ml$/, '.yaml');
  return guess !== casesFile && existsSync(guess) ? guess : STARTER_POLICY_PATH;
}
