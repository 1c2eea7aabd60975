/** A policy file that cannot be loaded. Positions are 1-based and point into the YAML file itself. */
export class PolicyError extends Error {
  readonly code = 'policy_invalid' as const;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** What is wrong, without the position: "unknown attribute :amout:". */
  readonly what: string;
  readonly expected: string;

  constructor(file: string, line: number, column: number, what: string, expected: string) {
    super(`${file}:${line}:${column}: ${what}; expected ${expected}`);
    this.name = 'PolicyError';
    this.file = file;
    this.line = line;
    this.column = column;
    this.what = what;
    this.expected = expected;
  }
}

/**
 * A problem inside one rule's text, positioned by character offset in that text. Internal: policy.ts maps
 * the offset to a line and column in the YAML file and rethrows it as a PolicyError.
 */
export class RuleError extends Error {
  readonly code = 'rule_invalid' as const;
  readonly offset: number;
  readonly what: string;
  readonly expected: string;

  constructor(offset: number, what: string, expected: string) {
    super(`${what}; expected ${expected} (at offset ${offset})`);
    this.name = 'RuleError';
    this.offset = offset;
    this.what = what;
    this.expected = expected;
  }
}
