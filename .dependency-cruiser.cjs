// Which folder of src/ may import which: `npm run lint` fails on a forbidden import (docs/architecture.md).
/** @param {string} from @param {string} to @param {string} why */
const forbid = (name, from, to, comment) => ({ name, comment, severity: 'error', from: { path: from }, to: { path: to } });

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'Modules import each other in a circle.', severity: 'error', from: {}, to: { circular: true } },
    // The Stripe sandbox (src/stripe/sandbox/) is a fake Stripe with a private database of its own, not Airlock's.
    forbid('sql-only-in-store', '^src/(?!store/|stripe/sandbox/)', '^node_modules/(kysely|pg|better-sqlite3)/', 'Only src/store/ talks to the database.'),
    forbid('store-internals', '^src/(?!store/)', '^src/store/(connection|schema)\\.ts$', 'Queries live in the repositories of src/store/: its connection and table types stay inside it.'),
    forbid('core-not-to-http', '^src/(engine|policy|policy-tools|stripe|store)/', '^src/(http|review|mcp|cli)/', 'The core and the store never import a surface.'),
    // An allow-list: policy/ may use itself, the pure classifier of stripe/ and the pure leaf helpers (ids, time).
    {
      name: 'policy-is-pure',
      comment: 'policy/ is language, evaluation, attributes and risk only: no engine, store, upstream, surface or policy tool.',
      severity: 'error',
      from: { path: '^src/policy/' },
      to: { path: '^src/', pathNot: '^src/(policy/|stripe/(classify|overlay|params|routes\\.generated)\\.ts$|(ids|time)\\.ts$)' },
    },
    forbid('policy-tools-above-engine', '^src/(policy|engine|store|stripe|outbound|notify|auth|audit)/', '^src/policy-tools/', 'policy-tools/ (tests, simulation, replay, reload) runs the engine and the store; nothing below it imports it.'),
    forbid('store-below-policy', '^src/store/', '^src/(policy|engine|outbound|notify)/', 'store/ sits below everything that decides.'),
    forbid('outbound-below-engine', '^src/outbound/', '^src/engine/', 'outbound/ delivers; it does not drive the lifecycle.'),
    forbid('auth-below-surfaces', '^src/auth/', '^src/(http|review|mcp|cli)/', 'Credentials and who-may rules serve every surface, so they import none.'),
    forbid('errors-at-the-bottom', '^src/errors\\.ts$', '^src/', 'Error codes and their HTTP statuses sit below every layer that throws or answers them.'),
    forbid('mcp-not-to-http', '^src/mcp/', '^src/http/', 'MCP and HTTP are sibling surfaces.'),
    forbid('review-not-to-http', '^src/review/', '^src/http/', 'The dashboard and the HTTP API are sibling surfaces.'),
    forbid('product-not-to-harness', '^src/', '^(harness|test|bench)/', 'Product code never imports a harness, a test or a benchmark.'),
    forbid('no-dev-deps-in-product', '^src/', '^node_modules/(vitest|fast-check|playwright-core|autocannon)/', 'Dev-only packages stay out of the product.'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
