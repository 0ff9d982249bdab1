// Takes the README's screenshot of the dashboard served at TASKFLOW_URL, at desktop width:
// `node e2e/screenshot.mjs [out.png]` (default docs/dashboard.png). SCREENSHOT_TASK=<id> opens a
// task; SCREENSHOT_CREATE=<title> (with SCREENSHOT_MESSAGE) creates one through the form, waits
// for it to finish and opens it, so its timeline has the processing step this page saw live.

import { fileURLToPath } from 'node:url';
import { launch } from './browser.mjs';

const BASE = (process.env.TASKFLOW_URL || 'http://127.0.0.1:5001').replace(/\/+$/, '');
const out = process.argv[2] || fileURLToPath(new URL('../docs/dashboard.png', import.meta.url));
const task = process.env.SCREENSHOT_TASK;
const create = process.env.SCREENSHOT_CREATE;

const browser = await launch({ width: 1280, height: 1000 });
try {
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  await page.emulateMedia({ reducedMotion: 'reduce', colorScheme: 'light' });
  await page.goto(`${BASE}/${task ? `?task=${encodeURIComponent(task)}` : ''}`);
  await page.locator('[data-phase="open"]').waitFor({ timeout: 20_000 });
  await page.locator('tr[data-task-id]').first().waitFor({ timeout: 20_000 });
  if (create) {
    await page.getByLabel('Title', { exact: true }).fill(create);
    await page.getByLabel(/^Message/).fill(process.env.SCREENSHOT_MESSAGE || '');
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/tasks' && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Create task' }).click(),
    ]);
    const { task_id: id } = await response.json();
    const row = page.locator(`tr[data-task-id="${id}"]`);
    await row.locator('[data-status="DONE"], [data-status="FAILED"]').waitFor({ timeout: 20_000 });
    await row.getByRole('button').click();
  }
  if (task || create) await page.locator('.timeline').waitFor({ timeout: 20_000 });
  // Let the toasts leave on their own (a few seconds): they would cover the timeline.
  await page.locator('.toast').first().waitFor({ state: 'detached', timeout: 20_000 });
  // Focus rings from opening the detail are not part of the picture.
  await page.evaluate(() => {
    /** @type {HTMLElement | null} */ (document.activeElement)?.blur();
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: out });
  console.log(`saved ${out}`);
} finally {
  await browser.close();
}
