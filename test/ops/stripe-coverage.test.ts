import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify, endpointCoverage } from '../../src/stripe/classify.ts';
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

/** The endpoint → kind → amount field → metadata table, from the classifier itself. */
function renderTable(): string {
  const rows = endpointCoverage().map((e) =>
    [
      `\`${e.endpoint}\``,
      `\`${e.kind}\`${e.refined ? ' *' : ''}`,
      e.amountFields.length ? e.amountFields.map((f) => `\`${f}\``).join(', ') : '—',
      CURRENCY[e.currency] ?? e.currency,
      e.metadata ? 'yes' : 'no',
      e.irreversible ? 'yes' : '',
    ].join(' | '),
  );
  return [
    '| endpoint | kind | amount field | currency | `metadata[airlock_action]` | irreversible |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}

describe('docs/stripe-coverage.md', () => {
  it('holds exactly the table generated from src/stripe/classify.ts', () => {
    const doc = readFileSync(DOC, 'utf8');
    const start = doc.indexOf(TABLE_START);
    const end = doc.indexOf(TABLE_END);
    expect(start).toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    const expected = `${TABLE_START}\n\n${renderTable()}\n\n`;
    if (process.env['AIRLOCK_UPDATE_DOCS'] === '1') {
      writeFileSync(DOC, doc.slice(0, start) + expected + doc.slice(end));
      return;
    }
    expect(doc.slice(start, end)).toBe(expected);
  });

  it('agrees with classify() on every row: kind, amount field and metadata', () => {
    for (const e of endpointCoverage()) {
      const [method = '', pattern = ''] = e.endpoint.split(' ');
      const path = pattern.replaceAll('*', 'xx_123');
      const field = e.amountFields[0];
      const [outer = '', inner] = (field ?? '').split('.');
      // A nested amount (`amount.value`) carries its currency beside it.
      const params = !field
        ? {}
        : inner
          ? { [outer]: { [inner]: '700', currency: 'usd' } }
          : { [outer]: '700' };
      const c = classify({ method, path, params: { ...params, currency: 'usd' } });
      if (!e.refined) expect(c.kind, e.endpoint).toBe(e.kind);
      expect(c.acceptsMetadata, e.endpoint).toBe(e.metadata);
      if (field) expect(c.amount, e.endpoint).toBe(700);
    }
  });
});
