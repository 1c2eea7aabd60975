import { minorUnitExponent } from '../policy/index.ts';

/** Markup that is already safe; everything else interpolated into `html` is escaped. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

function render(part: Part): string {
  if (part === null || part === undefined || part === false || part === true) return '';
  if (part instanceof Html) return part.value;
  if (Array.isArray(part)) return part.map(render).join('');
  return escapeHtml(String(part));
}

/** Tagged template that escapes every interpolated value unless it is Html. */
export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

export function raw(s: string): Html {
  return new Html(s);
}

// --- formatting ----------------------------------------------------------------------------------------------

export function formatMoney(amount: number | null, currency: string | null): string {
  if (amount === null) return currency ? `full amount (${currency.toUpperCase()})` : 'full amount';
  if (!currency) return `${amount} (minor units)`;
  const exp = minorUnitExponent(currency);
  const major = amount / 10 ** exp;
  const symbol = currency.toLowerCase() === 'usd' ? '$' : '';
  const text = major.toLocaleString('en-US', { minimumFractionDigits: exp, maximumFractionDigits: exp });
  return symbol ? `${symbol}${text}` : `${text} ${currency.toUpperCase()}`;
}

/** Minor units → the major-unit string a reviewer types ("600.00"). */
export function majorUnits(amount: number, currency: string): string {
  const exp = minorUnitExponent(currency);
  return (amount / 10 ** exp).toFixed(exp);
}

/** The major-unit string a reviewer typed → minor units; null when it is not a plain positive number. */
export function parseMajorUnits(text: string, currency: string): number | null {
  const t = text.trim().replace(/^\$/, '').replace(/,/g, '');
  if (!/^\d+(\.\d+)?$/.test(t)) return null;
  const exp = minorUnitExponent(currency);
  const [whole, frac = ''] = t.split('.');
  if (frac.length > exp) return null;
  return Number(whole) * 10 ** exp + Number(frac.padEnd(exp, '0') || '0');
}

export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  const m = Math.floor(abs / 60_000);
  if (m < 1) return `${Math.max(0, Math.floor(abs / 1000))}s`;
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function formatTime(iso: string | null): string {
  if (!iso) return '—';
  return iso
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC')
    .replace(/Z$/, ' UTC');
}

const KIND_LABELS: Record<string, string> = {
  'refund.create': 'Refund',
  'payout.create': 'Payout',
  'payout.cancel': 'Cancel payout',
  'transfer.create': 'Transfer',
  'transfer_reversal.create': 'Reverse transfer',
  'subscription.cancel': 'Cancel subscription',
  'subscription.update': 'Change subscription',
  'customer.delete': 'Delete customer',
  'charge.capture': 'Capture charge',
  'payment_intent.create': 'Create payment',
  'invoice.void': 'Void invoice',
  'stripe.write': 'Other Stripe write',
  'http.request': 'HTTP request',
};

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

export function riskLevel(score: number | null): 'low' | 'medium' | 'high' | 'unscored' {
  if (score === null) return 'unscored';
  if (score >= 70) return 'high';
  if (score >= 40) return 'medium';
  return 'low';
}

// --- redaction -----------------------------------------------------------------------------------------------

const SECRET_KEY = /authorization|secret|password|passwd|token|api[_-]?key|^key$|cookie|cvc|card\[?number/i;
const SECRET_VALUE = /^(?:(?:sk|rk|ak|pk)_(?:live|test)_|ak_|rvw_|rk_|whsec_|Bearer\s|Basic\s)/i;

/** Replaces anything that looks like a credential, by key or by value, before it reaches a page or a message. */
export function redact(value: unknown, key = ''): unknown {
  if (key && SECRET_KEY.test(key)) return '[redacted]';
  if (typeof value === 'string') return SECRET_VALUE.test(value) ? '[redacted]' : value;
  if (Array.isArray(value)) return value.map((v) => redact(v));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  }
  return value;
}
