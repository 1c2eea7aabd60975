import { readFileSync, writeFileSync } from 'node:fs';
import { expect } from 'vitest';

/**
 * Checks that the text between two markers of a doc is `table`, as generated; with AIRLOCK_UPDATE_DOCS=1 it
 * rewrites that text instead.
 */
export function expectGeneratedSection(doc: string, start: string, end: string, table: string): void {
  const text = readFileSync(doc, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  expect(from).toBeGreaterThan(-1);
  expect(to).toBeGreaterThan(from);
  const expected = `${start}\n\n${table}\n\n`;
  if (process.env['AIRLOCK_UPDATE_DOCS'] === '1') {
    writeFileSync(doc, text.slice(0, from) + expected + text.slice(to));
    return;
  }
  expect(text.slice(from, to)).toBe(expected);
}
