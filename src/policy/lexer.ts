import { RuleError } from './errors.ts';

export type TokenType =
  | 'attr' // :amount:
  | 'meta' // ::order_id::
  | 'list' // @vip_customers
  | 'number'
  | 'string' // 'single-quoted'
  | 'word' // keywords: allow, if, and, in, like, true, is_missing, …
  | 'op' // = != < > <= >= + - * /
  | '('
  | ')'
  | ','
  | 'eof';

export interface Token {
  type: TokenType;
  /** Attribute name, metadata key, list name, string contents, operator, or the word in lower case. */
  value: string;
  /** The token as written, for error messages. */
  raw: string;
  num: number;
  start: number;
  end: number;
}

const NAME = /[A-Za-z0-9_]/;
const WORD_START = /[A-Za-z_]/;
const DIGIT = /[0-9]/;

function token(type: TokenType, value: string, text: string, start: number, end: number, num = 0): Token {
  return { type, value, raw: text.slice(start, end), num, start, end };
}

/** Splits one rule's text into tokens. Throws RuleError on a character that starts no token. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const start = i;
    if (c === ':' && text[i + 1] === ':') {
      const close = text.indexOf('::', i + 2);
      const key = close === -1 ? '' : text.slice(i + 2, close);
      if (close === -1 || key.trim() === '' || key.includes('\n') || key.includes(':')) {
        throw new RuleError(start, 'unterminated metadata key', "'::key::'");
      }
      i = close + 2;
      tokens.push(token('meta', key, text, start, i));
      continue;
    }
    if (c === ':') {
      i++;
      while (i < text.length && NAME.test(text[i]!)) i++;
      if (i === start + 1 || text[i] !== ':') {
        throw new RuleError(start, 'malformed attribute', "an attribute written ':name:'");
      }
      i++;
      tokens.push(token('attr', text.slice(start + 1, i - 1), text, start, i));
      continue;
    }
    if (c === '@') {
      i++;
      while (i < text.length && NAME.test(text[i]!)) i++;
      if (i === start + 1) throw new RuleError(start, "'@' without a list name", "a list written '@name'");
      tokens.push(token('list', text.slice(start + 1, i), text, start, i));
      continue;
    }
    if (c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new RuleError(start, 'unterminated string', "a closing '");
        const d = text[i]!;
        if (d === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (d === "'") {
          i++;
          break;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push(token('string', value, text, start, i));
      continue;
    }
    if (c === '"') {
      throw new RuleError(start, "unexpected '\"'", "strings in 'single quotes'");
    }
    if (DIGIT.test(c)) {
      while (i < text.length && DIGIT.test(text[i]!)) i++;
      if (text[i] === '.' && DIGIT.test(text[i + 1] ?? '')) {
        i++;
        while (i < text.length && DIGIT.test(text[i]!)) i++;
      }
      if (i < text.length && WORD_START.test(text[i]!)) {
        throw new RuleError(
          start,
          `malformed number '${text.slice(start, i + 1)}'`,
          'a number like 500 or 0.5',
        );
      }
      const raw = text.slice(start, i);
      tokens.push(token('number', raw, text, start, i, Number(raw)));
      continue;
    }
    if (WORD_START.test(c)) {
      while (i < text.length && NAME.test(text[i]!)) i++;
      tokens.push(token('word', text.slice(start, i).toLowerCase(), text, start, i));
      continue;
    }
    const two = text.slice(i, i + 2);
    if (two === '!=' || two === '<=' || two === '>=') {
      i += 2;
      tokens.push(token('op', two, text, start, i));
      continue;
    }
    if (c === '=' || c === '<' || c === '>' || c === '+' || c === '-' || c === '*' || c === '/') {
      i++;
      tokens.push(token('op', c, text, start, i));
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      i++;
      tokens.push(token(c, c, text, start, i));
      continue;
    }
    throw new RuleError(start, `unexpected character '${c}'`, 'an attribute, a value or an operator');
  }
  tokens.push(token('eof', '', text, text.length, text.length));
  return tokens;
}
