// How the browser tests find a Chromium, on real files: CHROMIUM_PATH, Playwright's own browser, then PATH.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findChromium, NO_CHROMIUM } from '../helpers/browser.ts';
import { tempDir } from '../helpers/stack.ts';

/** An executable file at dir/name (a shell script: found, never launched here). */
function executable(dir: string, name: string, mode = 0o755): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, mode);
  return path;
}

describe('finding a Chromium for the browser tests', () => {
  it('uses CHROMIUM_PATH first, before Playwright and PATH', () => {
    const dir = tempDir();
    const given = executable(join(dir, 'given'), 'chrome');
    const own = executable(join(dir, 'pw'), 'chrome');
    executable(join(dir, 'bin'), 'chromium');
    expect(
      findChromium({ env: { CHROMIUM_PATH: given, PATH: join(dir, 'bin') }, playwrightPath: () => own }),
    ).toBe(given);
  });

  it('refuses a CHROMIUM_PATH that is not an executable file, naming it, rather than falling back', () => {
    const dir = tempDir();
    const notExec = executable(dir, 'chrome', 0o644);
    executable(join(dir, 'bin'), 'chromium');
    for (const path of [join(dir, 'missing'), notExec, dir]) {
      expect(() => findChromium({ env: { CHROMIUM_PATH: path, PATH: join(dir, 'bin') } })).toThrow(
        `CHROMIUM_PATH=${path} is not an executable file`,
      );
    }
  });

  it("takes Playwright's own installed browser when there is one, before the system's", () => {
    const dir = tempDir();
    const own = executable(join(dir, 'pw'), 'chrome');
    executable(join(dir, 'bin'), 'chromium');
    expect(findChromium({ env: { PATH: join(dir, 'bin') }, playwrightPath: () => own })).toBe(own);
  });

  it('falls back to chromium, then google-chrome, on PATH when Playwright has not installed its browser', () => {
    const dir = tempDir();
    const missing = () => join(dir, 'never-installed', 'chrome');
    const chrome = executable(join(dir, 'a'), 'google-chrome');
    const path = [join(dir, 'empty'), join(dir, 'a'), join(dir, 'b')].join(':');
    expect(findChromium({ env: { PATH: path }, playwrightPath: missing, platform: 'linux' })).toBe(chrome);
    // chromium wins over google-chrome even when it sits in a later PATH entry.
    const chromium = executable(join(dir, 'b'), 'chromium');
    expect(findChromium({ env: { PATH: path }, playwrightPath: missing, platform: 'linux' })).toBe(chromium);
  });

  it('fails with one line that says how to get a browser when there is none', () => {
    const dir = tempDir();
    let message = '';
    try {
      findChromium({ env: { PATH: join(dir, 'empty') }, playwrightPath: () => null, platform: 'linux' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(NO_CHROMIUM);
    expect(message).not.toContain('\n');
    expect(message).toMatch(/CHROMIUM_PATH/);
    expect(message).toMatch(/playwright-core install chromium/);
  });

  it('finds a browser on this machine, as the dashboard tests will', () => {
    expect(findChromium()).toMatch(/chrom/i);
  });
});
