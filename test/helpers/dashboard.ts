import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { launchChromium, type ReviewStack, startReviewStack } from '../review/helpers.ts';

export interface Dashboard {
  stack: ReviewStack;
  /** The dashboard's origin. */
  base: string;
  browser: Browser;
  /** The current test's own browser context, so no session leaks from one test into the next. */
  context: BrowserContext;
  page: Page;
}

/**
 * Registers the hooks for a file of dashboard tests: one review stack and one real Chromium for the file, a fresh
 * context and page for each test. The hooks fill the fields in, so read them inside hooks and tests only.
 * `setUp` runs once the stack is up, before Chromium starts; `env` is added to the stack's configuration.
 */
export function useDashboard(
  setUp?: (stack: ReviewStack) => Promise<void>,
  env: Record<string, string> = {},
): Dashboard {
  const ui = {} as Dashboard;
  beforeAll(async () => {
    ui.stack = await startReviewStack(env);
    ui.base = ui.stack.airlock.url;
    await setUp?.(ui.stack);
    ui.browser = await launchChromium();
  });
  afterAll(async () => {
    await ui.browser?.close();
    await ui.stack?.close();
  });
  beforeEach(async () => {
    ui.context = await ui.browser.newContext();
    ui.page = await ui.context.newPage();
  });
  afterEach(async () => {
    await ui.context.close();
  });
  return ui;
}
