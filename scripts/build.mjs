#!/usr/bin/env node
// `npm run build` (also run by `prepare`, so by `npm install` and `npm ci`, and before `npm test`): compiles src/
// into dist/ with tsc (tsconfig.build.json), copies beside the compiled code every file under src/ that is not
// TypeScript (the starter policy and its tests, the example policies, the dashboard's CSS and script: the code reads
// them relative to its own file), and removes from dist/ whatever no longer has a source, so a moved or deleted
// module cannot linger and still be imported.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const started = performance.now();

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.error(
    'build: typescript is not installed; the build needs the dev dependencies (npm ci, not --omit=dev).',
  );
  process.exit(1);
}
const compiled = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

/** Every entry under dir, with its full path (`parentPath` is `path` before Node 20.12). */
function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).map((entry) => ({
    entry,
    path: join(entry.parentPath ?? entry.path, entry.name),
  }));
}

/** Every file under dir, as paths relative to it. */
function files(dir) {
  return walk(dir)
    .filter(({ entry }) => entry.isFile())
    .map(({ path }) => relative(dir, path));
}

let copied = 0;
for (const file of files(SRC).filter((f) => !f.endsWith('.ts'))) {
  const from = readFileSync(join(SRC, file));
  const to = join(DIST, file);
  // Unchanged files are left alone, so a server reading one while another build runs never sees it half written.
  if (existsSync(to) && readFileSync(to).equals(from)) continue;
  mkdirSync(dirname(to), { recursive: true });
  writeFileSync(to, from);
  copied++;
}

/** Whether a file of dist/ still comes from src/: a copied asset, or the output of a .ts file. */
function hasSource(file) {
  if (file === '.tsbuildinfo' || existsSync(join(SRC, file))) return true;
  const stem = file.replace(/\.map$/, '').replace(/(\.d)?\.js$|\.d\.ts$/, '');
  return stem !== file && existsSync(join(SRC, `${stem}.ts`));
}

let removed = 0;
for (const file of files(DIST).filter((f) => !hasSource(f))) {
  rmSync(join(DIST, file));
  removed++;
}
// Directories emptied by the removals, deepest first.
const dirs = walk(DIST)
  .filter(({ entry }) => entry.isDirectory())
  .map(({ path }) => path)
  .sort((a, b) => b.length - a.length);
for (const dir of dirs) if (readdirSync(dir).length === 0) rmdirSync(dir);

const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`build: dist/ in ${seconds} s (${copied} assets copied, ${removed} stale files removed)`);
