import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ATTRIBUTES,
  type AttributeDeclaration,
  type AttrSource,
  KNOWN_ATTRIBUTES,
  VELOCITY_ATTRIBUTE,
} from '../../src/policy/index.ts';
import { expectGeneratedSection } from '../helpers/generated-docs.ts';
import { ROOT } from '../helpers/process.ts';

const DOC = join(ROOT, 'docs', 'policies.md');
const TABLE_START =
  '<!-- generated table: do not edit; AIRLOCK_UPDATE_DOCS=1 npx vitest run test/policy/attributes.test.ts -->';
const TABLE_END = '<!-- end of generated table -->';

const FROM: Record<AttrSource, string> = {
  request: 'the request',
  clock: 'the clock',
  upstream: 'Stripe look-ups (below)',
  velocity: 'the store (velocity, below)',
  risk: 'the risk score (below)',
};

/** Markdown table cells: a `|` inside one would end it. */
const cell = (text: string) => text.replaceAll('|', '\\|');

/** One row per declared attribute, in declaration order, then the pattern families. */
function renderTable(): string {
  const rows = Object.entries(ATTRIBUTES as Record<string, AttributeDeclaration>).map(
    ([name, d]) => `| \`:${name}:\` | ${d.type} | ${FROM[d.source]} | ${cell(d.description)} |`,
  );
  for (const family of [VELOCITY_ATTRIBUTE]) {
    const s = family.spec;
    rows.push(
      `| \`:${cell(family.name ?? family.pattern.source)}:\` | ${s.type} | ${FROM[s.source]} | ${cell(s.description)} |`,
    );
  }
  return ['| attribute | type | from | what it holds |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

describe('the attribute declaration', () => {
  it('is what docs/policies.md lists, generated', () => {
    expectGeneratedSection(DOC, TABLE_START, TABLE_END, renderTable());
  });

  it('is what the linter knows, in the same order', () => {
    expect(KNOWN_ATTRIBUTES.names()).toEqual(Object.keys(ATTRIBUTES));
    for (const [name, d] of Object.entries(ATTRIBUTES as Record<string, AttributeDeclaration>)) {
      expect(KNOWN_ATTRIBUTES.lookup(name), name).toMatchObject({ type: d.type, source: d.source });
    }
  });
});
