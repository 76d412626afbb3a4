import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Where each run leaves a screenshot of every page it visits, for review (ignored by git). */
export const screenshotDir = path.resolve('test-results', 'screenshots');

/**
 * Debian's Chromium (apt-get install chromium), driven by playwright-core; CHROMIUM_PATH
 * points elsewhere. These flags are the ones that work headless in a container without a sandbox.
 */
export async function launchBrowser(): Promise<Browser> {
  await mkdir(screenshotDir, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
}
