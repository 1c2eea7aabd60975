#!/usr/bin/env node
// Runs the CLI compiled into dist/ by `npm run build`, which `npm install` and `npm ci` run (the `prepare` script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'airlock: dist/ has not been built. Run `npm run build` (npm install runs it) and try again.\n',
  );
  process.exit(1);
}
await import(main.href);
