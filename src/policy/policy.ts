import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type ParsedNode,
  parseDocument,
  type YAMLMap,
} from 'yaml';
import { sha256Hex } from '../ids.ts';
import { isMoneyEvent, MONEY_EVENTS } from '../stripe/overlay.ts';
import { parseDuration } from '../time.ts';
import { type AttributeRegistry, KNOWN_ATTRIBUTES, WEEKDAYS } from './attributes.ts';
import { DEFAULT_CURRENCY_RATES } from './currency.ts';
import { PolicyError, RuleError } from './errors.ts';
import { compileCondition } from './evaluate.ts';
import { neverMatches } from './lint.ts';
import { parseRule } from './parser.ts';
import type {
  BusinessHours,
  CompiledRule,
  CustomerNotice,
  Outcome,
  OutsideAirlock,
  OutsideSource,
  Policy,
  PolicyMode,
  RuleOptions,
} from './types.ts';

export const STARTER_POLICY_PATH: string = fileURLToPath(new URL('./starter.yaml', import.meta.url));

export interface ParseOptions {
  /** Attribute names rules may use; defaults to KNOWN_ATTRIBUTES. */
  attributes?: AttributeRegistry;
}

const TOP_KEYS = [
  'timezone',
  'business_hours',
  'default',
  'mode',
  'expires_in',
  'currency_rates',
  'lists',
  'rules',
  'outside_airlock',
] as const;
/**
 * A rule's `name:` is what reviewers read on the receipt and in notifications ("Large refund, new customer"), and
 * what case files cite, so it is plain text: no control characters, markup or quotes that would need escaping.
 */
const RULE_NAME = /^[\p{L}\p{N}_.-](?:[\p{L}\p{N} _.,'&()/$%+#-]*[\p{L}\p{N}_.)%-])?$/u;

const OUTSIDE_KEYS = ['expected', 'notify'] as const;
const OUTSIDE_SOURCES: readonly OutsideSource[] = ['automation', 'outside'];
const RULE_KEYS = [
  'rule',
  'name',
  'approvals',
  'reviewers',
  'expires_in',
  'notify',
  'mode',
  'customer_notice',
  'remind_before',
  'escalate_after',
  'escalate_to',
] as const;
const CUSTOMER_NOTICES: Record<string, CustomerNotice> = {
  true: 'plain',
  false: 'none',
  with_note: 'with_note',
};
const HOURS_KEYS = ['days', 'from', 'to'] as const;
const OUTCOMES: readonly Outcome[] = ['allow', 'review', 'block'];
const MODES: readonly PolicyMode[] = ['enforce', 'shadow'];
const DEFAULT_EXPIRES_MS = 72 * 3_600_000;
const RULE_EXAMPLE = `a rule such as "Review if :kind: = 'refund.create'"`;
const RULE_START = /^(allow|review|block)\b/i;
/** What `reviewers:` and `escalate_to:` name: an email address or `group:name`. */
const PRINCIPAL = /^(group:[A-Za-z0-9_.-]+|[^\s@]+@[^\s@]+)$/;

function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms / 1000}s`;
}

/** A rule's text and, for each character, its offset in the policy file (plus one entry for the end). */
interface RuleSource {
  text: string;
  offsets: number[];
}

/** Cuts a trailing YAML comment (" # …") off a line, ignoring '#' inside Radar's 'strings'. */
function stripComment(s: string): string {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "'") quoted = !quoted;
    else if (c === '#' && !quoted && (i === 0 || s[i - 1] === ' ' || s[i - 1] === '\t')) return s.slice(0, i);
  }
  return s;
}

/**
 * Radar rules are full of ": " (":kind: = 'x'"), which YAML reads as a mapping, so the documented
 * unquoted form `- Review if :kind: = 'x'` would not survive a YAML parser. Before parsing, the text of
 * such unquoted rules under `rules:` is replaced by same-length placeholders (so every offset and line stays
 * put), and their real text is kept here, keyed by the file offset where the YAML scalar will start.
 */
function maskBareRules(text: string): { masked: string; rules: Map<number, RuleSource> } {
  const lines: { start: number; content: string }[] = [];
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    lines.push({ start, content: text.slice(start, end).replace(/\r$/, '') });
    start = end + 1;
  }
  const chars = text.split('');
  const rules = new Map<number, RuleSource>();
  let inRules = false;
  for (let n = 0; n < lines.length; n++) {
    const { start, content } = lines[n]!;
    if (/^[^\s#-]/.test(content)) {
      inRules = /^rules[ \t]*:[ \t]*(#.*)?$/.test(content);
      continue;
    }
    if (!inRules) continue;
    const m = /^([ \t]*)(-[ \t]+)?(rule[ \t]*:[ \t]+)?/.exec(content)!;
    const [prefix, indent = '', dash, key] = m;
    if (!dash && !key) continue;
    const rest = content.slice(prefix.length);
    if (!RULE_START.test(rest)) continue;
    // Continuation lines of a plain scalar are indented deeper than the sequence dash or the `rule:` key.
    const base = key ? indent.length + (dash?.length ?? 0) : indent.length;
    const segments = [{ offset: start + prefix.length, text: stripComment(rest).trimEnd() }];
    while (n + 1 < lines.length) {
      const next = lines[n + 1]!;
      const body = next.content.trimStart();
      const lead = next.content.length - body.length;
      if (body === '' || body.startsWith('#') || lead <= base) break;
      segments.push({ offset: next.start + lead, text: stripComment(body).trimEnd() });
      n++;
    }
    const source: RuleSource = { text: '', offsets: [] };
    segments.forEach((seg, k) => {
      if (k > 0) {
        const prev = segments[k - 1]!;
        source.text += ' ';
        source.offsets.push(prev.offset + prev.text.length);
      }
      for (let c = 0; c < seg.text.length; c++) {
        chars[seg.offset + c] = 'x';
        source.offsets.push(seg.offset + c);
      }
      source.text += seg.text;
    });
    const last = segments[segments.length - 1]!;
    source.offsets.push(last.offset + last.text.length);
    rules.set(start + prefix.length, source);
  }
  return { masked: chars.join(''), rules };
}

/**
 * Maps each character of a scalar's value back to the file by walking the source, skipping only what YAML
 * removes (quotes, escapes' backslashes, folded whitespace, block headers). null when the two do not line up.
 */
function alignScalar(src: string, start: number, end: number, value: string): number[] | null {
  const offsets: number[] = [];
  let j = start;
  for (let i = 0; i < value.length; i++) {
    const v = value[i];
    while (j < end && src[j] !== v) {
      const c = src[j]!;
      const skippable = ' \t\r\n\'"\\'.includes(c) || (i === 0 && '|>+-0123456789'.includes(c));
      if (!skippable) return null;
      j++;
    }
    if (j >= end) return null;
    offsets.push(j++);
  }
  offsets.push(j);
  return offsets;
}

class Loader {
  private readonly lineCounter = new LineCounter();
  private masked = new Map<number, RuleSource>();
  /** The policy's `expires_in`, read before the rules: a rule's reminder must fall inside its hold. */
  private defaultExpiresMs = DEFAULT_EXPIRES_MS;

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly attributes: AttributeRegistry,
  ) {}

  private failAt(offset: number, what: string, expected: string): never {
    const { line, col } = this.lineCounter.linePos(Math.max(0, Math.min(offset, this.text.length)));
    throw new PolicyError(this.file, line, col, what, expected);
  }

  private fail(node: Node | null | undefined, what: string, expected: string): never {
    return this.failAt(node?.range?.[0] ?? 0, what, expected);
  }

  load(): Policy {
    const { masked, rules } = maskBareRules(this.text);
    this.masked = rules;
    const doc = parseDocument(masked, {
      lineCounter: this.lineCounter,
      prettyErrors: false,
      keepSourceTokens: false,
    });
    const yamlError = doc.errors[0];
    if (yamlError) {
      this.failAt(yamlError.pos[0], `invalid YAML: ${yamlError.message.split('\n')[0]}`, 'valid YAML');
    }
    const root = doc.contents;
    if (!isMap(root)) this.fail(root, 'the policy is not a YAML mapping', 'keys such as default: and rules:');

    const sections = this.keyed(root, TOP_KEYS, 'a policy key');
    const timezone = sections.timezone ? this.timezone(sections.timezone) : 'UTC';
    const lists = sections.lists ? this.lists(sections.lists) : {};
    const defaultOutcome = sections.default
      ? this.oneOf(sections.default, OUTCOMES, 'default outcome')
      : ('review' as const);
    const mode = sections.mode ? this.oneOf(sections.mode, MODES, 'mode') : ('enforce' as const);
    this.defaultExpiresMs = sections.expires_in ? this.duration(sections.expires_in) : DEFAULT_EXPIRES_MS;
    const referenced = new Set<string>();
    return {
      version: `pol_${sha256Hex(this.text).slice(0, 16)}`,
      file: this.file,
      text: this.text,
      default: defaultOutcome,
      mode,
      timezone,
      businessHours: sections.business_hours
        ? this.businessHours(sections.business_hours)
        : { days: [1, 2, 3, 4, 5], fromMinutes: 9 * 60, toMinutes: 18 * 60 },
      rules: sections.rules ? this.rules(sections.rules, lists, referenced) : [],
      lists,
      currencyRates: sections.currency_rates
        ? this.currencyRates(sections.currency_rates)
        : { ...DEFAULT_CURRENCY_RATES },
      defaultExpiresInMs: this.defaultExpiresMs,
      referencedAttributes: referenced,
      outsideAirlock: sections.outside_airlock
        ? this.outsideAirlock(sections.outside_airlock)
        : { expected: [], notify: [] },
    };
  }

  /** `outside_airlock: { expected: [payout.created, { type: refund.created, source: automation }], notify: [...] }` */
  private outsideAirlock(node: ParsedNode | null): OutsideAirlock {
    const shape = '{ expected: [payout.created, …], notify: [email:finance@example.com] }';
    if (!isMap(node)) this.fail(node, 'outside_airlock is not a mapping', shape);
    const keys = this.keyed(node, OUTSIDE_KEYS, 'an outside_airlock key');
    const expected: OutsideAirlock['expected'] = [];
    const typeExpected = `a Stripe money event: ${Object.keys(MONEY_EVENTS).join(', ')}`;
    const eventType = (n: ParsedNode | null) => {
      const type = this.string(n, typeExpected);
      if (!isMoneyEvent(type)) this.fail(n, `'${type}' is not an event Airlock watches`, typeExpected);
      return type;
    };
    if (keys.expected) {
      if (!isSeq(keys.expected))
        this.fail(keys.expected, 'expected is not a list', 'a list such as [payout.created]');
      for (const item of keys.expected.items as (ParsedNode | null)[]) {
        if (isMap(item)) {
          const entry = this.keyed(item, ['type', 'source'] as const, 'an expected event key');
          if (!entry.type) this.fail(item, 'no type', '{ type: payout.created, source: automation }');
          expected.push({
            type: eventType(entry.type),
            source: entry.source ? this.oneOf(entry.source, OUTSIDE_SOURCES, 'source') : null,
          });
        } else expected.push({ type: eventType(item), source: null });
      }
    }
    const notify = keys.notify ? this.strings(keys.notify, 'a list such as [email:finance@example.com]') : [];
    for (const [i, n] of notify.entries())
      if (!/^email:[^@\s]+@[^@\s]+$/.test(n)) {
        const at = isSeq(keys.notify) ? (keys.notify.items[i] as ParsedNode) : keys.notify;
        this.fail(at ?? null, `invalid recipient '${n}'`, 'email:name@example.com');
      }
    return { expected, notify };
  }

  /** The values of a mapping by key, refusing keys not in `allowed`. */
  private keyed<K extends string>(
    map: YAMLMap,
    allowed: readonly K[],
    what: string,
  ): Partial<Record<K, ParsedNode | null>> {
    const out: Partial<Record<K, ParsedNode | null>> = {};
    for (const pair of map.items) {
      const key = pair.key as ParsedNode | null;
      const name = isScalar(key) ? String(key.value) : null;
      if (name === null || !(allowed as readonly string[]).includes(name)) {
        this.fail(
          key,
          `unknown key ${name === null ? '' : `'${name}'`}`.trim(),
          `${what}: ${allowed.join(', ')}`,
        );
      }
      const value = (pair.value as ParsedNode | null) ?? null;
      out[name as K] = value ?? this.missingValue(key);
    }
    return out;
  }

  /** `key:` with nothing after it. */
  private missingValue(key: ParsedNode | null): never {
    return this.fail(
      key,
      `no value for '${isScalar(key) ? String(key.value) : ''}'`,
      'a value after the colon',
    );
  }

  private string(node: ParsedNode | null, expected: string): string {
    if (!isScalar(node) || typeof node.value !== 'string') this.fail(node, 'not a string', expected);
    return node.value;
  }

  private oneOf<T extends string>(node: ParsedNode | null, allowed: readonly T[], what: string): T {
    const value = isScalar(node) ? String(node.value) : '';
    const match = allowed.find((a) => a === value.toLowerCase());
    if (!match) this.fail(node, `invalid ${what} '${value}'`, allowed.join(', '));
    return match;
  }

  private strings(node: ParsedNode | null, expected: string): string[] {
    if (isScalar(node) && typeof node.value === 'string') return [node.value];
    if (!isSeq(node)) this.fail(node, 'not a list', expected);
    return node.items.map((item) => {
      if (!isScalar(item) || (typeof item.value !== 'string' && typeof item.value !== 'number')) {
        this.fail(item as ParsedNode, 'not a string', expected);
      }
      return String(item.value);
    });
  }

  private timezone(node: ParsedNode | null): string {
    const tz = this.string(node, 'an IANA timezone such as America/New_York');
    try {
      return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
    } catch {
      return this.fail(node, `unknown timezone '${tz}'`, 'an IANA timezone such as America/New_York');
    }
  }

  private duration(node: ParsedNode | null): number {
    const expected = 'a duration such as 30m, 24h or 7d';
    const raw = isScalar(node) ? String(node.value) : '';
    const ms = parseDuration(raw, ['s', 'm', 'h', 'd']);
    if (ms === null) this.fail(node, `invalid duration '${raw}'`, expected);
    return ms;
  }

  private clock(node: ParsedNode | null, allowMidnight: boolean): number {
    const raw = isScalar(node) ? String(node.value) : '';
    const m = /^([01]?\d|2[0-4]):([0-5]\d)$/.exec(raw);
    const minutes = m ? Number(m[1]) * 60 + Number(m[2]) : -1;
    if (!m || minutes > (allowMidnight ? 1440 : 1439)) {
      this.fail(node, `invalid time '${raw}'`, `a quoted 24-hour time such as "09:00"`);
    }
    return minutes;
  }

  private businessHours(node: ParsedNode | null): BusinessHours {
    if (!isMap(node))
      this.fail(node, 'business_hours is not a mapping', '{ days: [mon, …], from: "09:00", to: "18:00" }');
    const keys = this.keyed(node, HOURS_KEYS, 'a business_hours key');
    const days: number[] = [];
    if (keys.days) {
      if (!isSeq(keys.days))
        this.fail(keys.days, 'days is not a list', 'a list such as [mon, tue, wed, thu, fri]');
      for (const item of keys.days.items) {
        const name = isScalar(item) ? String(item.value).toLowerCase().slice(0, 3) : '';
        const full = isScalar(item) ? String(item.value).toLowerCase() : '';
        const day = (WEEKDAYS as readonly string[]).indexOf(name);
        const valid =
          day !== -1 && (full.length === 3 || /^(sun|mon|tues|wednes|thurs|fri|satur)day$/.test(full));
        if (!valid)
          this.fail(item as ParsedNode, `invalid day '${full}'`, 'one of mon, tue, wed, thu, fri, sat, sun');
        if (!days.includes(day)) days.push(day);
      }
    } else {
      days.push(1, 2, 3, 4, 5);
    }
    const fromMinutes = keys.from ? this.clock(keys.from, false) : 9 * 60;
    const toMinutes = keys.to ? this.clock(keys.to, true) : 18 * 60;
    if (toMinutes <= fromMinutes) {
      this.fail(
        keys.to ?? node,
        'business hours end before they start',
        `'to' later than 'from' on the same day`,
      );
    }
    return { days: days.sort((a, b) => a - b), fromMinutes, toMinutes };
  }

  private currencyRates(node: ParsedNode | null): Record<string, number> {
    if (!isMap(node)) this.fail(node, 'currency_rates is not a mapping', 'a mapping such as { eur: 1.08 }');
    const rates: Record<string, number> = { ...DEFAULT_CURRENCY_RATES };
    for (const pair of node.items) {
      const key = pair.key as ParsedNode | null;
      const code = isScalar(key) ? String(key.value).toLowerCase() : '';
      if (!/^[a-z]{3}$/.test(code))
        this.fail(key, `invalid currency code '${code}'`, 'a three-letter code such as eur');
      const value = pair.value as ParsedNode | null;
      if (
        !isScalar(value) ||
        typeof value.value !== 'number' ||
        !(value.value > 0) ||
        !Number.isFinite(value.value)
      ) {
        this.fail(value ?? key, `invalid rate for ${code}`, 'a positive number of US dollars per unit');
      }
      rates[code] = value.value;
    }
    return rates;
  }

  private lists(node: ParsedNode | null): Record<string, string[]> {
    if (!isMap(node))
      this.fail(node, 'lists is not a mapping', 'a mapping such as { vip_customers: [cus_1, cus_2] }');
    const lists: Record<string, string[]> = {};
    for (const pair of node.items) {
      const key = pair.key as ParsedNode | null;
      const name = isScalar(key) ? String(key.value) : '';
      if (!/^[A-Za-z0-9_]+$/.test(name))
        this.fail(key, `invalid list name '${name}'`, 'letters, digits and _');
      const value = pair.value as ParsedNode | null;
      if (!isSeq(value))
        this.fail(value ?? key, `list ${name} is not a list`, 'a list such as [cus_1, cus_2]');
      lists[name] = this.strings(value, 'strings in the list');
    }
    return lists;
  }

  private rules(
    node: ParsedNode | null,
    lists: Record<string, string[]>,
    referenced: Set<string>,
  ): CompiledRule[] {
    if (!isSeq(node)) this.fail(node, 'rules is not a list', `a list of rules, each ${RULE_EXAMPLE}`);
    const rules: CompiledRule[] = [];
    const ids = new Map<string, ParsedNode>();
    node.items.forEach((item, index) => {
      const rule = this.rule(item as ParsedNode | null, index, lists, referenced);
      if (ids.has(rule.id))
        this.failAt(
          this.ruleNameOffset(item as ParsedNode),
          `duplicate rule name '${rule.id}'`,
          'unique rule names',
        );
      ids.set(rule.id, item as ParsedNode);
      rules.push(rule);
    });
    return rules;
  }

  private ruleNameOffset(item: ParsedNode): number {
    if (isMap(item)) {
      const name = item.items.find((p) => isScalar(p.key) && p.key.value === 'name');
      if (name) return (name.value as ParsedNode).range[0];
    }
    return item.range[0];
  }

  private rule(
    item: ParsedNode | null,
    index: number,
    lists: Record<string, string[]>,
    referenced: Set<string>,
  ): CompiledRule {
    const options: RuleOptions = {
      approvals: 1,
      expiresInMs: null,
      notify: [],
      reviewers: [],
      mode: 'enforce',
      customerNotice: 'none',
      remindBeforeMs: null,
      escalateAfterMs: null,
      escalateTo: [],
    };
    let id = `rule_${index + 1}`;
    let named: string | null = null;
    let textNode: ParsedNode | null;
    if (isScalar(item)) {
      textNode = item;
    } else if (isMap(item)) {
      const misread = item.items.find((p) => isScalar(p.key) && RULE_START.test(String(p.key.value)));
      if (misread) {
        this.fail(
          item,
          "rule text contains ': ' and was read as a YAML mapping",
          'the rule on one line, or in quotes',
        );
      }
      const keys = this.keyed(item, RULE_KEYS, 'a rule key');
      if (!keys.rule)
        this.fail(item, 'rule without a rule: key', `rule: "Review if :kind: = 'refund.create'"`);
      textNode = keys.rule;
      if (keys.name) {
        id = this.string(keys.name, 'a rule name');
        if (!RULE_NAME.test(id) || id.length > 80 || /\s\s/.test(id))
          this.fail(
            keys.name,
            `invalid rule name '${id}'`,
            "up to 80 letters, digits, single spaces and _ . , - ' & ( ) / $ % + #, not starting or ending with a space",
          );
      }
      if (keys.name) named = id;
      if (keys.approvals) {
        const n = isScalar(keys.approvals) ? keys.approvals.value : null;
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 10) {
          this.fail(
            keys.approvals,
            `invalid approvals '${String(n)}'`,
            'a whole number of distinct reviewers, 1 to 10',
          );
        }
        options.approvals = n;
      }
      if (keys.expires_in) options.expiresInMs = this.duration(keys.expires_in);
      if (keys.notify)
        options.notify = this.strings(keys.notify, 'a list such as [email:finance@example.com]');
      if (keys.reviewers) options.reviewers = this.strings(keys.reviewers, 'a list of reviewers or groups');
      if (keys.mode) options.mode = this.oneOf(keys.mode, MODES, 'rule mode');
      if (keys.customer_notice)
        options.customerNotice =
          CUSTOMER_NOTICES[
            this.oneOf(keys.customer_notice, ['true', 'false', 'with_note'], 'customer_notice')
          ]!;
      this.followUps(item, keys, id, options);
    } else {
      return this.fail(item, 'invalid rule', `${RULE_EXAMPLE}, or a mapping with rule:`);
    }

    const source = this.ruleSource(textNode);
    const { line, col } = this.lineCounter.linePos(source.offsets[0] ?? 0);
    try {
      const ast = parseRule(source.text);
      const test = compileCondition(ast.condition, {
        text: source.text,
        attributes: this.attributes,
        lists,
        referenced,
      });
      const never = neverMatches(ast.condition);
      if (never)
        throw new RuleError(
          never.offset,
          `this rule can never match: ${never.what}`,
          'a condition some request can meet',
        );
      if (ast.outcome !== 'review' && (options.remindBeforeMs !== null || options.escalateAfterMs !== null)) {
        const field = options.remindBeforeMs !== null ? 'remind_before' : 'escalate_after';
        this.fail(item, `rule '${id}': ${field} on a ${ast.outcome} rule`, `${field} only on a Review rule`);
      }
      return {
        id,
        name: named,
        text: source.text,
        outcome: ast.outcome,
        options,
        line,
        column: col,
        ast,
        test,
      };
    } catch (err) {
      if (!(err instanceof RuleError)) throw err;
      const at = source.offsets[Math.min(err.offset, source.offsets.length - 1)] ?? 0;
      return this.failAt(at, err.what, err.expected);
    }
  }

  /**
   * `remind_before`, `escalate_after` and `escalate_to`: each names the rule and the field when it is wrong. Both
   * times must fall inside the rule's hold (its `expires_in`, else the policy's), or they could never fire.
   */
  private followUps(
    item: YAMLMap,
    keys: Partial<Record<(typeof RULE_KEYS)[number], ParsedNode | null>>,
    id: string,
    options: RuleOptions,
  ): void {
    const expires = options.expiresInMs ?? this.defaultExpiresMs;
    const within = (node: ParsedNode | null, field: string): number => {
      const raw = isScalar(node) ? String(node.value) : '';
      const ms = parseDuration(raw, ['s', 'm', 'h', 'd']);
      if (ms === null)
        this.fail(node, `rule '${id}': invalid ${field} '${raw}'`, 'a duration such as 30m, 1h or 2d');
      if (ms >= expires) {
        this.fail(
          node,
          `rule '${id}': ${field} ${raw} is not shorter than the hold's expiry (${formatMs(expires)})`,
          `${field} shorter than expires_in`,
        );
      }
      return ms;
    };
    if (keys.remind_before) options.remindBeforeMs = within(keys.remind_before, 'remind_before');
    if (keys.escalate_after) options.escalateAfterMs = within(keys.escalate_after, 'escalate_after');
    if (keys.escalate_to) {
      const principals = this.strings(keys.escalate_to, `rule '${id}': escalate_to as a list`);
      if (principals.length === 0)
        this.fail(keys.escalate_to, `rule '${id}': escalate_to is empty`, 'at least one reviewer or group');
      for (const p of principals) {
        if (!PRINCIPAL.test(p))
          this.fail(
            keys.escalate_to,
            `rule '${id}': invalid escalate_to entry '${p}'`,
            'an email address or group:name, as in reviewers:',
          );
      }
      options.escalateTo = principals;
    }
    if (options.escalateAfterMs !== null && options.escalateTo.length === 0)
      this.fail(
        keys.escalate_after ?? item,
        `rule '${id}': escalate_after without escalate_to`,
        'escalate_to: [group:managers]',
      );
    if (options.escalateAfterMs === null && options.escalateTo.length > 0)
      this.fail(
        keys.escalate_to ?? item,
        `rule '${id}': escalate_to without escalate_after`,
        'escalate_after: 2h',
      );
  }

  private ruleSource(node: ParsedNode | null): RuleSource {
    if (!isScalar(node) || typeof node.value !== 'string')
      return this.fail(node, 'invalid rule', RULE_EXAMPLE);
    const bare = this.masked.get(node.range[0]);
    if (bare) return bare;
    const value = node.value;
    const [start, end] = node.range;
    const offsets =
      alignScalar(this.text, start, end, value) ?? Array.from({ length: value.length + 1 }, () => start);
    const lead = value.length - value.trimStart().length;
    const text = value.trim();
    if (text === '') this.fail(node, 'empty rule', RULE_EXAMPLE);
    return { text, offsets: offsets.slice(lead, lead + text.length + 1) };
  }
}

/** Parses and validates a policy file's text. Every problem is a PolicyError that points into the file. */
export function parsePolicy(text: string, file: string, options: ParseOptions = {}): Policy {
  return new Loader(text, file, options.attributes ?? KNOWN_ATTRIBUTES).load();
}

/** Reads and parses a policy file; without a path, the bundled starter policy. */
export function loadPolicyFile(path?: string, options: ParseOptions = {}): Policy {
  const file = path ?? STARTER_POLICY_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new PolicyError(file, 1, 1, `cannot read the policy file (${reason})`, 'a readable YAML file');
  }
  return parsePolicy(text, file, options);
}
