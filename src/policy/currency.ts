// Stripe's list: https://docs.stripe.com/currencies#zero-decimal and #three-decimal
const ZERO_DECIMAL = new Set([
  'bif',
  'clp',
  'djf',
  'gnf',
  'jpy',
  'kmf',
  'krw',
  'mga',
  'pyg',
  'rwf',
  'ugx',
  'vnd',
  'vuv',
  'xaf',
  'xof',
  'xpf',
]);
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/** Digits after the decimal point in Stripe's minor units for `currency` (case-insensitive). */
export function minorUnitExponent(currency: string): number {
  const code = currency.toLowerCase();
  if (ZERO_DECIMAL.has(code)) return 0;
  if (THREE_DECIMAL.has(code)) return 3;
  return 2;
}

/**
 * Approximate USD per major unit. Deliberately round numbers: they only place amounts against policy
 * thresholds, and operators override them under `currency_rates:` when precision matters.
 */
export const DEFAULT_CURRENCY_RATES: Readonly<Record<string, number>> = Object.freeze({
  usd: 1,
  eur: 1.08,
  gbp: 1.27,
  jpy: 0.0067,
  cad: 0.73,
  aud: 0.66,
  nzd: 0.6,
  chf: 1.13,
  sek: 0.095,
  nok: 0.094,
  dkk: 0.145,
  pln: 0.25,
  czk: 0.043,
  huf: 0.0027,
  cny: 0.14,
  hkd: 0.128,
  sgd: 0.74,
  inr: 0.012,
  krw: 0.00073,
  mxn: 0.055,
  brl: 0.18,
  zar: 0.054,
  aed: 0.272,
  ils: 0.27,
  thb: 0.028,
  myr: 0.22,
  php: 0.017,
  clp: 0.00105,
  bhd: 2.65,
  jod: 1.41,
  kwd: 3.25,
  omr: 2.6,
  tnd: 0.32,
});

/** Converts Stripe minor units to US dollars, rounded to the cent; null when there is no rate for the currency. */
export function toUsd(amountMinor: number, currency: string, rates: Record<string, number>): number | null {
  const rate = rates[currency.toLowerCase()];
  if (rate === undefined || !Number.isFinite(amountMinor)) return null;
  const major = amountMinor / 10 ** minorUnitExponent(currency);
  return Math.round(major * rate * 100) / 100;
}
