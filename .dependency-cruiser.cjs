// Which folder of src/ may import which: `npm run lint` fails on a forbidden import (docs/architecture.md).
/** @param {string} from @param {string} to @param {string} why */
const forbid = (name, from, to, comment) => ({ name, comment, severity: 'error', from: { path: from }, to: { path: to } });

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'Modules import each other in a circle.', severity: 'error', from: {}, to: { circular: true } },
    forbid('sql-only-in-store', '^src/(?!store/)', '^node_modules/(kysely|pg|better-sqlite3)/', 'Only src/store/ talks to the database.'),
    forbid('core-not-to-http', '^src/(engine|policy|stripe|store)/', '^src/(http|review|mcp|cli)/', 'The core and the store never import a surface.'),
    forbid('policy-is-pure', '^src/policy/', '^src/(engine|store|outbound|notify)/', 'policy/ is language, evaluation, attributes and risk only.'),
    forbid('store-below-policy', '^src/store/', '^src/(policy|engine|outbound|notify)/', 'store/ sits below everything that decides.'),
    forbid('outbound-below-engine', '^src/outbound/', '^src/engine/', 'outbound/ delivers; it does not drive the lifecycle.'),
    forbid('mcp-not-to-http', '^src/mcp/', '^src/http/', 'MCP and HTTP are sibling surfaces.'),
    forbid('review-not-to-http', '^src/review/', '^src/http/', 'The dashboard and the HTTP API are sibling surfaces.'),
    forbid('product-not-to-harness', '^src/(?!reliability/)', '^src/reliability/(chaos|load|serve-process)', 'Product code never imports a test harness.'),
    forbid('no-dev-deps-in-product', '^src/(?!reliability/|stripe/sandbox/)', '^node_modules/(stripe|vitest|fast-check|playwright-core|autocannon)/', 'Dev-only packages stay out of the product.'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
