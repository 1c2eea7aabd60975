// Issue 15, item 7: the classifier covers every write operation of the pinned `stripe` client, reads the amount
// where the endpoint really takes it, and names the writes that move money or cannot be undone.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_DIR, type ClientScan, scanStripeClient } from '../../scripts/generate-stripe-routes.ts';
import { classify, endpointCoverage } from '../../src/stripe/classify.ts';
import { LEGACY, OVERLAY } from '../../src/stripe/overlay.ts';
import type { Params, ParamValue } from '../../src/stripe/params.ts';
import { GENERATED_ROUTES, STRIPE_CLIENT_VERSION } from '../../src/stripe/routes.generated.ts';

/** Every `_makeRequest('POST' | 'DELETE', path)` in the client's compiled resources, read as plain text. */
function writesInClient(): Set<string> {
  const found = new Set<string>();
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = join(dir, entry.name);
      if (entry.isDirectory()) visit(file);
      else if (entry.name.endsWith('.js')) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/_makeRequest\(\s*'(POST|DELETE)',\s*(['`])(\/v[12]\/[^'`]*)\2/g)) {
          found.add(`${m[1]} ${m[3]!.replace(/\$\{[^}]*\}/g, '*')}`);
        }
      }
    }
  };
  visit(join(CLIENT_DIR, 'esm', 'resources'));
  return found;
}

const pathOf = (pattern: string, ids: readonly string[] = []): string => {
  let i = 0;
  return pattern.replace(/\*/g, () => ids[i++] ?? `id_${i}`);
};

/** Params with `value` at a dotted path, as a form body (strings) or JSON would carry them. */
function withField(params: Params, dotted: string, value: ParamValue): Params {
  const [key = '', ...rest] = dotted.split('.');
  if (rest.length === 0) return { ...params, [key]: value };
  const inner = params[key];
  const object = inner !== null && typeof inner === 'object' && !Array.isArray(inner) ? inner : {};
  return { ...params, [key]: withField(object, rest.join('.'), value) };
}

const COVERAGE = new Map(endpointCoverage().map((e) => [e.endpoint, e]));

/** Enough params for the endpoint's required amount and currency, with `amount` in its amount field. */
function paramsFor(endpoint: string, amount: number | string | null): Params {
  const e = COVERAGE.get(endpoint)!;
  let params: Params = {};
  const field = e.amountFields[0];
  if (field && amount !== null) params = withField(params, field, amount);
  if (e.currency === 'required') params = withField(params, e.currencyField, 'usd');
  return params;
}

/** The generated endpoint whose params type describes a row: itself, or what a legacy path mirrors. */
const paramsOf = (endpoint: string): string => LEGACY[endpoint]?.like ?? endpoint;

let scan: ClientScan;
beforeAll(() => {
  scan = scanStripeClient();
}, 120_000);

describe('route table: coverage of the pinned client', () => {
  it('is generated from the client that is installed', () => {
    const installed = JSON.parse(readFileSync(join(CLIENT_DIR, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(STRIPE_CLIENT_VERSION).toBe(installed.version);
    // The committed table is what the generator writes today: rerun `npm run stripe:routes` if this fails.
    expect(GENERATED_ROUTES).toEqual(scan.routes);
  });

  it('has a row for every write operation of the client, found independently of the generator', () => {
    const writes = writesInClient();
    expect(writes.size).toBeGreaterThan(300);
    const generated = new Set(GENERATED_ROUTES.map((r) => `${r.method} ${r.path}`));
    expect([...writes].filter((w) => !generated.has(w))).toEqual([]);
    expect([...generated].filter((g) => !writes.has(g))).toEqual([]);
  });

  it('classifies every write operation of the client by name, never as stripe.write', () => {
    const unnamed = [...writesInClient()].filter((endpoint) => {
      const [method = '', pattern = ''] = endpoint.split(' ');
      if (!COVERAGE.has(endpoint)) return true;
      return (
        classify({ method, path: pathOf(pattern), params: paramsFor(endpoint, 1) }).kind === 'stripe.write'
      );
    });
    expect(unnamed).toEqual([]);
  });

  it('names no endpoint in the overlay that the client does not have', () => {
    const generated = new Set(GENERATED_ROUTES.map((r) => `${r.method} ${r.path}`));
    expect(Object.keys(OVERLAY).filter((k) => !generated.has(k))).toEqual([]);
    // A legacy path is one the client no longer calls, shaped like one it does.
    for (const [key, { like }] of Object.entries(LEGACY)) {
      expect(generated.has(key), key).toBe(false);
      expect(generated.has(like), `${key} is like ${like}`).toBe(true);
    }
  });
});

describe('route table: amount fields', () => {
  it('reads amounts only from integer fields the params type has', () => {
    const wrong: string[] = [];
    for (const e of COVERAGE.values()) {
      for (const field of e.amountFields) {
        const shape = scan.fieldShape(paramsOf(e.endpoint), field);
        if (shape !== 'integer') wrong.push(`${e.endpoint} ${field}: ${shape}`);
      }
      if (e.currency !== 'none') {
        const shape = scan.fieldShape(paramsOf(e.endpoint), e.currencyField);
        if (shape !== 'string') wrong.push(`${e.endpoint} currency ${e.currencyField}: ${shape}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('reads the amount wherever the endpoint takes one', () => {
    const missed = scan.routes
      .filter((r) => r.amounts.length > 0)
      .filter((r) => (COVERAGE.get(`${r.method} ${r.path}`)?.amountFields.length ?? 0) === 0)
      .map((r) => `${r.method} ${r.path}`);
    expect(missed).toEqual([]);
  });

  it('can tell a missing field from a real one', () => {
    // The check above would pass vacuously if fieldShape called everything an integer.
    expect(scan.fieldShape('POST /v1/refunds', 'amount')).toBe('integer');
    expect(scan.fieldShape('POST /v1/customers', 'amount')).toBe('missing');
    expect(scan.fieldShape('POST /v1/refunds', 'currency')).toBe('string');
    expect(scan.fieldShape('POST /v2/money_management/payout_intents', 'amount')).toBe('other');
    expect(scan.fieldShape('POST /v2/money_management/payout_intents', 'amount.value')).toBe('integer');
    expect(scan.fieldShape('POST /v1/payment_intents/*/capture', 'amount')).toBe('missing');
  });
});

// The money writes the hand-kept table left as `stripe.write`: they move money, change where it goes, or cannot
// be undone. Each must have its kind, and its amount where the endpoint takes one.
const MONEY_WRITES: Record<string, { kind: string; amountField: string | null; irreversible: boolean }> = {
  'POST /v1/terminal/readers/*/refund_payment': {
    kind: 'terminal.reader.refund_payment',
    amountField: 'amount',
    irreversible: true,
  },
  'POST /v1/terminal/readers/*/process_payment_intent': {
    kind: 'terminal.reader.process_payment_intent',
    amountField: null,
    irreversible: false,
  },
  'POST /v1/terminal/readers/*/confirm_payment_intent': {
    kind: 'terminal.reader.confirm_payment_intent',
    amountField: null,
    irreversible: false,
  },
  'POST /v1/issuing/authorizations/*/approve': {
    kind: 'issuing.authorization.approve',
    amountField: 'amount',
    irreversible: true,
  },
  'POST /v1/issuing/authorizations/*/decline': {
    kind: 'issuing.authorization.decline',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/treasury/credit_reversals': {
    kind: 'treasury.credit_reversal.create',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/treasury/debit_reversals': {
    kind: 'treasury.debit_reversal.create',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/treasury/financial_accounts/*/close': {
    kind: 'treasury.financial_account.close',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/climate/orders': { kind: 'climate.order.create', amountField: 'amount', irreversible: false },
  'POST /v1/accounts/*/external_accounts': {
    kind: 'external_account.create',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/accounts/*/external_accounts/*': {
    kind: 'external_account.update',
    amountField: null,
    irreversible: true,
  },
  'DELETE /v1/accounts/*/external_accounts/*': {
    kind: 'external_account.delete',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/accounts/*/reject': { kind: 'account.reject', amountField: null, irreversible: true },
  'POST /v1/reviews/*/approve': { kind: 'review.approve', amountField: null, irreversible: true },
  'POST /v1/issuing/disputes/*/submit': {
    kind: 'issuing.dispute.submit',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/invoices/*/attach_payment': {
    kind: 'invoice.attach_payment',
    amountField: null,
    irreversible: true,
  },
  'POST /v1/billing/credit_grants/*/void': {
    kind: 'billing.credit_grant.void',
    amountField: null,
    irreversible: true,
  },
  'POST /v2/money_management/payout_intents': {
    kind: 'v2.money_management.payout_intent.create',
    amountField: 'amount.value',
    irreversible: true,
  },
  'POST /v2/money_management/payout_intents/*/confirm': {
    kind: 'v2.money_management.payout_intent.confirm',
    amountField: null,
    irreversible: true,
  },
  'POST /v2/money_management/inbound_transfers': {
    kind: 'v2.money_management.inbound_transfer.create',
    amountField: 'amount.value',
    irreversible: false,
  },
  'POST /v2/money_management/recipient_verifications/*/acknowledge': {
    kind: 'v2.money_management.recipient_verification.acknowledge',
    amountField: null,
    irreversible: true,
  },
  'POST /v2/core/accounts/*/close': { kind: 'v2.core.account.close', amountField: null, irreversible: true },
  'POST /v2/core/vault/us_bank_accounts': {
    kind: 'v2.core.vault.us_bank_account.create',
    amountField: null,
    irreversible: true,
  },
  'POST /v2/core/vault/us_bank_accounts/*': {
    kind: 'v2.core.vault.us_bank_account.update',
    amountField: null,
    irreversible: true,
  },
  'POST /v2/core/vault/gb_bank_accounts': {
    kind: 'v2.core.vault.gb_bank_account.create',
    amountField: null,
    irreversible: true,
  },
};

describe('route table: money writes', () => {
  it.each(Object.entries(MONEY_WRITES))('%s has its kind and its amount', (endpoint, expected) => {
    const [method = '', pattern = ''] = endpoint.split(' ');
    const path = pathOf(pattern);
    const c = classify({ method, path, params: paramsFor(endpoint, 4321) });
    expect(c.kind).toBe(expected.kind);
    expect(c.irreversible).toBe(expected.irreversible);
    expect(c.amountField).toBe(expected.amountField);
    expect(c.amount).toBe(expected.amountField ? 4321 : null);
    // Where the params type has an amount, the classifier reads it.
    const route = scan.routes.find((r) => `${r.method} ${r.path}` === endpoint)!;
    expect(route.amounts[0] ?? null).toBe(expected.amountField);
    expect(COVERAGE.get(endpoint)?.money, 'the overlay says why').toBeTruthy();
  });

  it('gives every money write of the overlay a kind and, where the endpoint has one, its amount', () => {
    const moneyRows = [...COVERAGE.values()].filter((e) => e.money !== null);
    expect(moneyRows.length).toBeGreaterThanOrEqual(Object.keys(MONEY_WRITES).length + 20);
    for (const e of moneyRows) {
      const [method = '', pattern = ''] = e.endpoint.split(' ');
      const c = classify({ method, path: pathOf(pattern), params: paramsFor(e.endpoint, 777) });
      expect(c.kind, e.endpoint).not.toBe('stripe.write');
      const takes =
        scan.routes.find((r) => `${r.method} ${r.path}` === paramsOf(e.endpoint))!.amounts.length > 0;
      expect(c.amount, e.endpoint).toBe(takes ? 777 : null);
    }
  });

  it('takes a v2 amount as a JSON integer or a digit string, with its currency beside it', () => {
    const path = '/v2/money_management/payout_intents';
    for (const value of [150000, '150000']) {
      const c = classify({ method: 'POST', path, params: { amount: { value, currency: 'EUR' }, to: {} } });
      expect(c).toMatchObject({ amount: 150000, currency: 'eur', amountField: 'amount.value' });
    }
  });
});

describe('route table: any amount in a route’s amount field is the amount', () => {
  const routes = GENERATED_ROUTES.filter((r) => r.amounts.length > 0);
  const id = fc.stringMatching(/^[a-z]{2,4}_[A-Za-z0-9]{1,24}$/);

  it('holds for every generated route with an amount, as form strings and as JSON numbers', () => {
    expect(routes.length).toBeGreaterThan(40);
    fc.assert(
      fc.property(
        fc.constantFrom(...routes),
        fc.array(id, { minLength: 4, maxLength: 4 }),
        fc.nat(),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.boolean(),
        fc.stringMatching(/^[A-Za-z]{3}$/),
        (route, ids, pick, amount, asString, currency) => {
          const endpoint = `${route.method} ${route.path}`;
          const e = COVERAGE.get(endpoint)!;
          // Any one of the route's amount fields, alone, is the amount.
          const field = route.amounts[pick % route.amounts.length]!;
          let params = withField({}, field, asString ? String(amount) : amount);
          if (e.currency !== 'none') params = withField(params, e.currencyField, currency);
          const c = classify({ method: route.method, path: pathOf(route.path, ids), params });
          expect(c.amount).toBe(amount);
          expect(c.amountField).toBe(route.amounts[0]);
          // Without a charge or payment intent, even a refund names its own currency.
          expect(c.currency).toBe(e.currency === 'none' ? null : currency.toLowerCase());
        },
      ),
      { numRuns: 2000 },
    );
  });
});
