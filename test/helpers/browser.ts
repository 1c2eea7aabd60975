import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium } from 'playwright-core';

/** Said when no browser is found: one line, with the ways to get one. */
export const NO_CHROMIUM =
  'No Chromium for the browser tests: set CHROMIUM_PATH=/path/to/chrome, or run `npx playwright-core install chromium`, ' +
  'or install chromium or google-chrome (Debian: apt-get install chromium)';

/** What the system may call a Chromium on PATH, most specific first. */
const ON_PATH = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
/** Where macOS keeps them, outside PATH. */
const MAC_APPS = [
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
];

export interface ChromiumSearch {
  env?: NodeJS.ProcessEnv;
  /** Where Playwright installs its own browser; null when it has none for this platform. */
  playwrightPath?: () => string | null;
  platform?: NodeJS.Platform;
}

/**
 * The browser the tests drive, found the way Playwright users expect: CHROMIUM_PATH, then the browser
 * `playwright-core install` downloaded, then the system's chromium or google-chrome. Throws NO_CHROMIUM when none is.
 */
export function findChromium(search: ChromiumSearch = {}): string {
  const env = search.env ?? process.env;
  const given = env['CHROMIUM_PATH'];
  if (given) {
    if (!isExecutable(given))
      throw new Error(`CHROMIUM_PATH=${given} is not an executable file. ${NO_CHROMIUM}`);
    return given;
  }
  const own = (search.playwrightPath ?? playwrightsOwn)();
  if (own && isExecutable(own)) return own;
  const dirs = (env['PATH'] ?? '').split(delimiter).filter(Boolean);
  for (const name of ON_PATH) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  if ((search.platform ?? process.platform) === 'darwin') {
    const app = MAC_APPS.find(isExecutable);
    if (app) return app;
  }
  throw new Error(NO_CHROMIUM);
}

function playwrightsOwn(): string | null {
  try {
    return chromium.executablePath();
  } catch {
    return null; // no build of Playwright's browser for this platform
  }
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
