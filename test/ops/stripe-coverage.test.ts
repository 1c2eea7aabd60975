import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify, type EndpointCoverage, endpointCoverage } from '../../src/stripe/classify.ts';
import type { Params, ParamValue } from '../../src/stripe/params.ts';
import { expectGeneratedSection } from '../helpers/generated-docs.ts';
import { ROOT } from '../helpers/process.ts';

const DOC = join(ROOT, 'docs', 'stripe-coverage.md');
const TABLE_START =
  '<!-- generated table: do not edit; AIRLOCK_UPDATE_DOCS=1 npx vitest run test/ops/stripe-coverage.test.ts -->';
const TABLE_END = '<!-- end of generated table -->';

const CURRENCY: Record<string, string> = {
  required: 'required',
  optional: 'optional',
  unless_source: "the charge's, unless given",
  none: '—',
};

/** `none`, or how the currency is read and from where when it is not `currency`. */
function currencyOf(e: EndpointCoverage): string {
  const mode = CURRENCY[e.currency] ?? e.currency;
  return e.currency === 'none' || e.currencyField === 'currency' ? mode : `${mode}, \`${e.currencyField}\``;
}

/** The endpoint → kind → amount field → metadata table, and the money writes with why, from the classifier. */
function renderTable(): string {
  const coverage = endpointCoverage();
  const rows = coverage.map((e) =>
    [
      `\`${e.endpoint}\``,
      `\`${e.kind}\`${e.refined ? ' *' : ''}`,
      e.operation ? `\`${e.operation}\`` : 'legacy',
      e.amountFields.length ? e.amountFields.map((f) => `\`${f}\``).join(', ') : '—',
      currencyOf(e),
      e.metadata ? 'yes' : 'no',
      e.irreversible ? 'yes' : '',
    ].join(' | '),
  );
  const money = coverage
    .filter((e) => e.money !== null)
    .map((e) => `| \`${e.endpoint}\` | \`${e.kind}\` | ${e.money} |`);
  return [
    '| endpoint | kind | client method | amount field | currency | `metadata[airlock_action]` | irreversible |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r} |`),
    '',
    '### Money writes',
    '',
    'The overlay (`src/stripe/overlay.ts`) names these as moving money, changing where it goes, or being final:',
    '',
    '| endpoint | kind | why |',
    '| --- | --- | --- |',
    ...money,
  ].join('\n');
}

/** Params with `value` at a dotted path. */
function withField(params: Params, dotted: string, value: ParamValue): Params {
  const [key = '', ...rest] = dotted.split('.');
  if (rest.length === 0) return { ...params, [key]: value };
  const inner = params[key];
  const object = inner !== null && typeof inner === 'object' && !Array.isArray(inner) ? inner : {};
  return { ...params, [key]: withField(object, rest.join('.'), value) };
}

describe('docs/stripe-coverage.md', () => {
  it('holds exactly the table generated from src/stripe/classify.ts', () => {
    expectGeneratedSection(DOC, TABLE_START, TABLE_END, renderTable());
  });

  it('agrees with classify() on every row: kind, amount field, currency and metadata', () => {
    for (const e of endpointCoverage()) {
      const [method = '', pattern = ''] = e.endpoint.split(' ');
      const path = pattern.replaceAll('*', 'xx_123');
      const field = e.amountFields[0];
      let params: Params = field ? withField({}, field, '700') : {};
      if (e.currency !== 'none') params = withField(params, e.currencyField, 'USD');
      const c = classify({ method, path, params });
      if (!e.refined) expect(c.kind, e.endpoint).toBe(e.kind);
      expect(c.acceptsMetadata, e.endpoint).toBe(e.metadata);
      expect(c.amountField, e.endpoint).toBe(field ?? null);
      expect(c.amount, e.endpoint).toBe(field ? 700 : null);
      expect(c.currency, e.endpoint).toBe(e.currency === 'none' ? null : 'usd');
    }
  });
});
