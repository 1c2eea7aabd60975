// Writes src/stripe/routes.generated.ts: every write operation of the pinned `stripe` client (which Stripe
// generates from its OpenAPI spec), with the amount fields, currency field and metadata its params type has.
// Run with `npm run stripe:routes` after upgrading the `stripe` devDependency.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLIENT_DIR = join(ROOT, 'node_modules', 'stripe');
const OUTPUT = join(ROOT, 'src', 'stripe', 'routes.generated.ts');

export interface ScannedRoute {
  method: 'POST' | 'DELETE';
  /** `/v1/refunds/*` : `*` stands for an id. */
  path: string;
  /** The client's method: `refunds.create`, `v2.moneyManagement.payoutIntents.create`. */
  operation: string;
  /** Integer amount fields, dotted, the endpoint's main amount first. */
  amounts: string[];
  /** Where the amount's currency goes; null when the params take none. */
  currency: string | null;
  metadata: boolean;
}

/** What a dotted param path holds in an operation's params type. */
export type FieldShape = 'integer' | 'string' | 'other' | 'missing';

export interface ClientScan {
  version: string;
  routes: ScannedRoute[];
  /** `fieldShape('POST /v1/refunds', 'amount')` → `integer`. */
  fieldShape(endpoint: string, dotted: string): FieldShape;
}

// A platform's fee is a share of the amount, not money the call moves of its own.
const NOT_THE_AMOUNT = new Set(['application_fee_amount']);

/** `amount`, `amount_to_capture`, `unit_amount`, `amount_off`, `refund_amount`; not `amount_details`. */
function amountLike(name: string): boolean {
  if (NOT_THE_AMOUNT.has(name) || name === 'amount_details') return false;
  return (
    name === 'amount' || name.endsWith('_amount') || /^amount_/.test(name) || name.endsWith('_amount_off')
  );
}

// Code-unit order, so the output does not depend on the machine's locale.
const ordinal = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}

/** `/v1/refunds/${encodeURIComponent(id)}/cancel` → `/v1/refunds/*\/cancel`. */
function pathOf(node: ts.Expression): string | null {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (!ts.isTemplateExpression(node)) return null;
  let path = node.head.text;
  for (const span of node.templateSpans) {
    if (!path.endsWith('/') || !(span.literal.text === '' || span.literal.text.startsWith('/'))) {
      throw new Error(`An id that is not a whole path segment: ${node.getText()}`);
    }
    path += `*${span.literal.text}`;
  }
  return path;
}

/** `V2/MoneyManagement/PayoutIntents.js` → `v2.moneyManagement.payoutIntents`. */
function resourceName(file: string, resourcesDir: string): string {
  return relative(resourcesDir, file)
    .replace(/\.js$/, '')
    .split(sep)
    .map((part) => part.charAt(0).toLowerCase() + part.slice(1))
    .join('.');
}

interface Call {
  method: 'POST' | 'DELETE';
  path: string;
  className: string;
  methodName: string;
  file: string;
}

/** The `_makeRequest(method, path, …)` call of each method of each resource class in a compiled file. */
function callsIn(file: string): Call[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const calls: Call[] = [];
  for (const cls of source.statements) {
    if (!ts.isClassDeclaration(cls) || !cls.name) continue;
    for (const member of cls.members) {
      if (!ts.isMethodDeclaration(member) || !member.body || !ts.isIdentifier(member.name)) continue;
      const methodName = member.name.text;
      const visit = (node: ts.Node): void => {
        if (
          ts.isCallExpression(node) &&
          ts.isPropertyAccessExpression(node.expression) &&
          node.expression.name.text === '_makeRequest'
        ) {
          const [verb, target] = node.arguments;
          const path = target ? pathOf(target) : null;
          if (verb && ts.isStringLiteral(verb) && (verb.text === 'POST' || verb.text === 'DELETE') && path) {
            calls.push({ method: verb.text, path, className: cls.name!.text, methodName, file });
          }
        }
        node.forEachChild(visit);
      };
      member.body.forEachChild(visit);
    }
  }
  return calls;
}

/** Reads the pinned client: the `.js` files give method and path, the `.d.ts` files the params types. */
export function scanStripeClient(clientDir: string = CLIENT_DIR): ClientScan {
  const resourcesDir = join(clientDir, 'esm', 'resources');
  const files = walk(resourcesDir);
  const program = ts.createProgram(
    files.filter((f) => f.endsWith('.d.ts')),
    { noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022 },
  );
  const checker = program.getTypeChecker();
  const version = (JSON.parse(readFileSync(join(clientDir, 'package.json'), 'utf8')) as { version: string })
    .version;

  const paramsTypeOf = (call: Call): ts.Type | null => {
    const declarations = program.getSourceFile(call.file.replace(/\.js$/, '.d.ts'));
    if (!declarations) throw new Error(`No declarations for ${call.file}`);
    for (const cls of declarations.statements) {
      if (!ts.isClassDeclaration(cls) || cls.name?.text !== call.className) continue;
      for (const member of cls.members) {
        if (!ts.isMethodDeclaration(member) || !ts.isIdentifier(member.name)) continue;
        if (member.name.text !== call.methodName) continue;
        const params = member.parameters.find((p) => ts.isIdentifier(p.name) && p.name.text === 'params');
        return params?.type ? checker.getTypeFromTypeNode(params.type) : null;
      }
    }
    throw new Error(`${call.className}.${call.methodName} is not declared in ${call.file}`);
  };

  // `Emptyable<number>` is `number | '' | null`: what counts is the value that is not a way to unset it.
  const valueType = (type: ts.Type): ts.Type[] => {
    const parts = type.isUnion() ? type.types : [type];
    return parts.filter(
      (t) =>
        !(t.flags & (ts.TypeFlags.Null | ts.TypeFlags.Undefined)) && !(t.isStringLiteral() && t.value === ''),
    );
  };
  const property = (type: ts.Type, name: string): ts.Type | null => {
    const symbol = checker.getPropertyOfType(type, name);
    return symbol ? checker.getTypeOfSymbol(symbol) : null;
  };
  const shapeOf = (type: ts.Type | null): FieldShape => {
    if (!type) return 'missing';
    const parts = valueType(type);
    if (parts.length > 0 && parts.every((t) => t.flags & ts.TypeFlags.NumberLike)) return 'integer';
    if (parts.length > 0 && parts.every((t) => t.flags & ts.TypeFlags.StringLike)) return 'string';
    return 'other';
  };
  const objectOf = (type: ts.Type): ts.Type | null => {
    const parts = valueType(type);
    return parts.length === 1 && parts[0]!.flags & ts.TypeFlags.Object ? parts[0]! : null;
  };
  const fieldType = (root: ts.Type, dotted: string): ts.Type | null => {
    let type: ts.Type | null = root;
    for (const key of dotted.split('.')) {
      const object: ts.Type | null = type ? objectOf(type) : null;
      type = object ? property(object, key) : null;
    }
    return type;
  };

  // An amount object: `{value, currency}` (v2, payment records), `{amount, currency}` (a shipping rate's fixed
  // amount), or one level down (`amount.monetary` on a credit grant). Gives the dotted value and currency.
  const moneyIn = (
    type: ts.Type,
    prefix: string,
    depth: number,
  ): { value: string; currency: string } | null => {
    const object = objectOf(type);
    if (!object) return null;
    if (shapeOf(property(object, 'currency')) === 'string') {
      for (const key of ['value', 'amount']) {
        if (shapeOf(property(object, key)) === 'integer')
          return { value: `${prefix}.${key}`, currency: `${prefix}.currency` };
      }
    }
    if (depth === 0) return null;
    for (const symbol of checker.getPropertiesOfType(object)) {
      const found = moneyIn(checker.getTypeOfSymbol(symbol), `${prefix}.${symbol.name}`, depth - 1);
      if (found) return found;
    }
    return null;
  };

  const types = new Map<string, ts.Type | null>();
  const routes: ScannedRoute[] = [];
  for (const file of files.filter((f) => f.endsWith('.js'))) {
    for (const call of callsIn(file)) {
      // OAuth goes to connect.stripe.com, which Airlock does not proxy.
      if (!/^\/v[12]\//.test(call.path)) continue;
      const endpoint = `${call.method} ${call.path}`;
      if (types.has(endpoint)) throw new Error(`${endpoint} is called by two client methods`);
      const params = paramsTypeOf(call);
      types.set(endpoint, params);
      const fields = params ? checker.getPropertiesOfType(params) : [];
      const integers: string[] = [];
      const objects: { value: string; currency: string }[] = [];
      for (const symbol of fields) {
        if (!amountLike(symbol.name)) continue;
        const type = checker.getTypeOfSymbol(symbol);
        if (shapeOf(type) === 'integer') integers.push(symbol.name);
        else {
          const money = moneyIn(type, symbol.name, 1);
          if (money) objects.push(money);
        }
      }
      const rank = (field: string): number => (field === 'amount' || field.startsWith('amount.') ? 0 : 1);
      const amounts = [...integers, ...objects.map((o) => o.value)].sort(
        (a, b) => rank(a) - rank(b) || ordinal(a, b),
      );
      const main = objects.find((o) => o.value === amounts[0]);
      const hasCurrency = fields.some(
        (s) => s.name === 'currency' && shapeOf(checker.getTypeOfSymbol(s)) === 'string',
      );
      routes.push({
        method: call.method,
        path: call.path,
        operation: `${resourceName(file, resourcesDir)}.${call.methodName}`,
        amounts,
        currency: main ? main.currency : hasCurrency ? 'currency' : null,
        metadata: fields.some((s) => s.name === 'metadata'),
      });
    }
  }
  routes.sort((a, b) => ordinal(a.path, b.path) || ordinal(a.method, b.method));

  return {
    version,
    routes,
    fieldShape(endpoint, dotted) {
      const params = types.get(endpoint);
      if (params === undefined) throw new Error(`${endpoint} is not in the client`);
      return params === null ? 'missing' : shapeOf(fieldType(params, dotted));
    },
  };
}

function render(scan: ClientScan): string {
  const rows = scan.routes.map(
    (r) => `  ${JSON.stringify([r.method, r.path, r.operation, r.amounts, r.currency, r.metadata])},`,
  );
  return `// Generated by scripts/generate-stripe-routes.ts from stripe@${scan.version}; do not edit.
// Regenerate with \`npm run stripe:routes\` after upgrading the client;
// test/stripe/route-table.test.ts checks it against the client.

export interface GeneratedRoute {
  method: 'POST' | 'DELETE';
  /** \`*\` stands for an id. */
  path: string;
  /** The official client's method: \`refunds.create\`, \`v2.moneyManagement.payoutIntents.create\`. */
  operation: string;
  /** Integer amount fields of the params type (dotted inside an amount object), the main one first. */
  amounts: readonly string[];
  /** Where the amount's currency goes (\`currency\`, \`amount.currency\`); null when the params take none. */
  currency: string | null;
  /** Whether the params type takes \`metadata\`. */
  metadata: boolean;
}

type Row = [
  method: GeneratedRoute['method'],
  path: string,
  operation: string,
  amounts: readonly string[],
  currency: string | null,
  metadata: boolean,
];

export const STRIPE_CLIENT_VERSION = ${JSON.stringify(scan.version)};

// One row per write operation (POST or DELETE on /v1 or /v2), sorted by path.
const ROWS: readonly Row[] = [
${rows.join('\n')}
];

export const GENERATED_ROUTES: readonly GeneratedRoute[] = ROWS.map(
  ([method, path, operation, amounts, currency, metadata]) => ({ method, path, operation, amounts, currency, metadata }),
);
`;
}

function main(): void {
  const scan = scanStripeClient();
  writeFileSync(OUTPUT, render(scan));
  execFileSync(join(ROOT, 'node_modules', '.bin', 'biome'), ['format', '--write', OUTPUT], {
    stdio: 'inherit',
  });
  const priced = scan.routes.filter((r) => r.amounts.length > 0).length;
  console.log(
    `${relative(ROOT, OUTPUT)}: ${scan.routes.length} write operations, ${priced} with an amount field`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
