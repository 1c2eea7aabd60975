import { KNOWN_ATTRIBUTES } from '../../src/policy/attributes.ts';
import { type Attributes, decide, type PolicyDecision, parsePolicy } from '../../src/policy/index.ts';

/** Adds a list-valued attribute so INCLUDES can be exercised; the shipped registry has none yet. */
export const TEST_ATTRIBUTES = KNOWN_ATTRIBUTES.with({
  tags: { type: 'string[]', source: 'request', description: 'test-only tags' },
});

const cache = new Map<string, ReturnType<typeof parsePolicy>>();

/** True when `condition` holds for the given attributes and metadata. */
export function holds(
  condition: string,
  attributes: Attributes = {},
  metadata: Record<string, string> = {},
): boolean {
  let policy = cache.get(condition);
  if (!policy) {
    const text = `default: allow\nlists:\n  vips: [cus_vip, cus_gold]\nrules:\n  - ${JSON.stringify(`Block if ${condition}`)}\n`;
    policy = parsePolicy(text, 'test.yaml', { attributes: TEST_ATTRIBUTES });
    cache.set(condition, policy);
  }
  return decide(policy, { attributes, metadata }).outcome === 'block';
}

export function decideWith(
  yaml: string,
  attributes: Attributes,
  metadata: Record<string, string> = {},
): PolicyDecision {
  return decide(parsePolicy(yaml, 'test.yaml'), { attributes, metadata });
}
