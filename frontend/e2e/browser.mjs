// Launches Debian's Chromium through playwright-core for the end-to-end run and the README
// screenshot: no browser download (none is possible here), a fresh profile every time.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/**
 * A browser context on a throwaway profile. Playwright refuses `--user-data-dir` in `args`, so
 * the fresh profile goes through launchPersistentContext instead; its pages are tabs of one
 * browser, which is what the second-tab check wants.
 *
 * @param {{ width: number, height: number }} viewport
 */
export async function launch(viewport = { width: 1280, height: 900 }) {
  const profile = await mkdtemp(join(tmpdir(), 'taskflow-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport,
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
