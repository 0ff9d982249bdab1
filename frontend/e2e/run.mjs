// End-to-end checks of the dashboard in a real browser against a running stack (API + worker),
// served at TASKFLOW_URL (the API serving `dist/`, or the dev server): create tasks through the
// form and watch them go PENDING → PROCESSING → DONE/FAILED live, open the detail view with its
// attempts, retry a failed task, follow a deep link, watch from a second tab, and compare the
// counters with GET /stats. Prints one line per check, the WebSocket-to-DOM latency of a DONE
// event, the gzip size of the served bundle, and "N passed, M failed" (exit code 1 on failure).
// It assumes nothing about tasks already in the database.
//
// With TASKFLOW_TOKEN set, the stack is expected to run with that API_TOKEN and
// API_TOKEN_READS=true, and the run checks the token flow instead: the built bundle holds no
// token, the page asks for one on the 401, refuses a wrong one, loads the list with the right
// one and receives live events on a WebSocket that carries it as a subprotocol, not in its URL.

import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { launch } from './browser.mjs';

const BASE = (process.env.TASKFLOW_URL || 'http://127.0.0.1:5001').replace(/\/+$/, '');
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 30_000);
// For this script's own REST calls and the token scenario; the page is never built with it.
const TOKEN = process.env.TASKFLOW_TOKEN || '';
const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../e2e-artifacts/', import.meta.url));
const RUN = Date.now().toString(36);

/** @typedef {import('playwright-core').Page} Page */
/** @typedef {{ attempt: number, worker: string, outcome: string | null }} AttemptJson */
/** @typedef {{ task_id: string, title: string, status: string, attempts?: AttemptJson[] }} TaskJson */
/** @typedef {{ counts: Record<string, number> }} StatsJson */
/** @typedef {{ events: Record<string, number>, rows: Record<string, number>, log: Record<string, string[]> }} Probe */

let passed = 0;
let failed = 0;
/** @type {string[]} */
const notes = [];

/**
 * Runs one check; a failure is reported with a screenshot and the run goes on.
 * @param {string} name
 * @param {Page} page the page to photograph when the check fails
 * @param {() => Promise<string | void>} body resolves to an optional detail for the report
 */
async function check(name, page, body) {
  const started = performance.now();
  try {
    const detail = await body();
    passed += 1;
    const ms = Math.round(performance.now() - started);
    console.log(`ok   ${passed + failed}. ${name} (${ms} ms)${detail ? ` — ${detail}` : ''}`);
  } catch (error) {
    failed += 1;
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    console.log(`FAIL ${passed + failed}. ${name}: ${message}`);
    await page.screenshot({ path: `${ARTIFACTS}fail-${passed + failed}.png`, fullPage: true }).catch(() => undefined);
  }
}

/** @param {unknown} condition @param {string} message @returns {asserts condition} */
function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** @param {string} path */
function get(path) {
  return fetch(`${BASE}${path}`, { headers: TOKEN ? { authorization: `Bearer ${TOKEN}` } : {} });
}

/**
 * A GET against the API from this script, with the token when one is configured.
 * @param {string} path
 * @returns {Promise<unknown>}
 */
async function apiGet(path) {
  const response = await get(path);
  assert(response.ok, `GET ${path} answered ${response.status}`);
  return response.json();
}

/**
 * Polls `probe` until it returns something other than undefined, or fails after TIMEOUT. For
 * conditions outside the page (REST answers), where no event can be awaited.
 * @template T
 * @param {() => Promise<T | undefined>} probe
 * @param {string} failure
 * @returns {Promise<T>}
 */
async function eventually(probe, failure) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(failure);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Opens the dashboard, marks the window (a reload would lose the mark) and waits until its
 * WebSocket is open, so every later change must come live.
 * @param {Page} page
 */
async function openDashboard(page, path = '/') {
  await page.goto(`${BASE}${path}`);
  await page.locator('[data-phase="open"]').waitFor({ timeout: TIMEOUT });
  await page.evaluate(() => {
    /** @type {Window & { e2eMark?: boolean }} */ (window).e2eMark = true;
  });
}

/** @param {Page} page */
async function stillSamePage(page) {
  return page.evaluate(() => /** @type {Window & { e2eMark?: boolean }} */ (window).e2eMark === true);
}

/**
 * Records, with the page's clock, every status event the page's own WebSocket receives (in
 * order, per task), when each task's first DONE event arrives, and when its row first shows
 * DONE. Installed before the page loads: the WebSocket class is wrapped so a listener added at
 * construction runs before the app's `onmessage`, and a MutationObserver watches the document.
 * @param {Page} page
 */
async function installProbe(page) {
  await page.addInitScript(() => {
    /** @type {Probe} */
    const probe = { events: {}, rows: {}, log: {} };
    /** @type {Window & { e2eProbe?: Probe }} */ (window).e2eProbe = probe;
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      /** @param {string | URL} url @param {string | string[]} [protocols] */
      constructor(url, protocols) {
        super(url, protocols);
        this.addEventListener('message', (message) => {
          const at = performance.now();
          if (typeof message.data !== 'string') return;
          try {
            const event = JSON.parse(message.data);
            if (typeof event?.task_id !== 'string' || typeof event.status !== 'string') return;
            (probe.log[event.task_id] ??= []).push(event.status);
            if (event.status === 'DONE' && !(event.task_id in probe.events)) probe.events[event.task_id] = at;
          } catch {
            // not JSON: not a status event (Vite's dev socket also passes here)
          }
        });
      }
    };
    new MutationObserver(() => {
      const at = performance.now();
      for (const badge of document.querySelectorAll('tr[data-task-id] [data-status="DONE"]')) {
        const id = badge.closest('tr')?.getAttribute('data-task-id');
        if (id && !(id in probe.rows)) probe.rows[id] = at;
      }
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

/**
 * The statuses the page's WebSocket received for a task, in arrival order.
 * @param {Page} page @param {string} taskId @returns {Promise<string[]>}
 */
function eventLog(page, taskId) {
  return page.evaluate((id) => /** @type {Window & { e2eProbe?: Probe }} */ (window).e2eProbe?.log[id] ?? [], taskId);
}

/**
 * Waits until the page's WebSocket has received, after the first `skip` events of the task,
 * the statuses `expected` in that order (others may come between).
 * @param {Page} page @param {string} taskId @param {string[]} expected @param {number} [skip]
 */
async function waitForEvents(page, taskId, expected, skip = 0) {
  await page
    .waitForFunction(
      ({ id, want, from }) => {
        const log = /** @type {Window & { e2eProbe?: Probe }} */ (window).e2eProbe?.log[id] ?? [];
        let next = 0;
        for (const status of log.slice(from)) if (status === want[next]) next += 1;
        return next === want.length;
      },
      { id: taskId, want: expected, from: skip },
      { timeout: TIMEOUT },
    )
    .catch(async () => {
      const received = (await eventLog(page, taskId)).slice(skip);
      throw new Error(`expected the events ${expected.join(' → ')}, the page received ${received.join(' → ') || 'none'}`);
    });
}

/**
 * Fills and submits the create form; resolves to the created task from the POST's answer.
 * @param {Page} page
 * @param {{ title: string, message?: string }} input
 * @returns {Promise<TaskJson>}
 */
async function createThroughForm(page, { title, message }) {
  await page.getByLabel('Title', { exact: true }).fill(title);
  await page.getByLabel(/^Message/).fill(message ?? '');
  const [response] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/tasks' && r.request().method() === 'POST', { timeout: TIMEOUT }),
    page.getByRole('button', { name: 'Create task' }).click(),
  ]);
  assert(response.status() === 201, `POST /tasks answered ${response.status()}`);
  return response.json();
}

/** @param {Page} page @param {string} taskId @param {string} status */
function rowStatus(page, taskId, status) {
  return page.locator(`tr[data-task-id="${taskId}"] [data-status="${status}"]`);
}

/** @param {Page} page @returns {Promise<Record<string, number>>} */
async function pageCounters(page) {
  const entries = await page.locator('[data-testid^="count-"]').evaluateAll((items) =>
    items.map((item) => [item.getAttribute('data-testid')?.slice('count-'.length) ?? '', Number(item.textContent)]),
  );
  return Object.fromEntries(entries);
}

/** The JavaScript and CSS that `/` loads, as served, with their gzip sizes. */
async function bundleSize() {
  const html = await (await get('/')).text();
  // The dev server serves sources, not a bundle: nothing to weigh.
  if (html.includes('/@vite/client')) return 'the dev server serves sources: no bundle to measure';
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((match) => match[1] ?? '');
  assert(assets.some((path) => path.endsWith('.js')), `the page at ${BASE}/ loads no /assets/*.js`);
  const kb = (/** @type {number} */ bytes) => `${(bytes / 1000).toFixed(1)} kB`;
  const parts = [];
  let total = 0;
  for (const path of assets) {
    const response = await get(path);
    assert(response.ok, `GET ${path} answered ${response.status}`);
    const body = Buffer.from(await response.arrayBuffer());
    const zipped = gzipSync(body, { level: 9 }).length;
    total += zipped;
    parts.push(`${path.split('/').pop()} ${kb(body.length)} (${kb(zipped)} gzip)`);
  }
  return `bundle served at ${BASE}/: ${parts.join(', ')}; ${kb(total)} gzip in all`;
}

/**
 * The token's subprotocol entry, as the page builds it (RFC 4648 base64url of the UTF-8 bytes,
 * no padding), computed here by Node's own encoder.
 * @param {string} token
 */
function bearerProtocol(token) {
  return `taskflow.bearer.${Buffer.from(token, 'utf8').toString('base64url')}`;
}

/** Every file under `dir`, recursively. @param {string} dir @returns {Promise<string[]>} */
async function filesUnder(dir) {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? filesUnder(`${dir}${entry.name}/`) : Promise.resolve([`${dir}${entry.name}`]))),
  );
  return nested.flat();
}

/**
 * Against a stack with API_TOKEN=TOKEN and API_TOKEN_READS=true (see the header).
 * @param {import('playwright-core').BrowserContext} context
 */
async function tokenScenario(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  await installProbe(page);
  // Every WebSocket the page opens: its URL and subprotocols, recorded before the app sees it.
  await page.addInitScript(() => {
    /** @type {{ url: string, protocols: string[] }[]} */
    const opened = [];
    /** @type {Window & { e2eSockets?: typeof opened }} */ (window).e2eSockets = opened;
    const Wrapped = window.WebSocket;
    window.WebSocket = class extends Wrapped {
      /** @param {string | URL} url @param {string | string[]} [protocols] */
      constructor(url, protocols) {
        super(url, protocols);
        opened.push({ url: String(url), protocols: protocols === undefined ? [] : [protocols].flat() });
      }
    };
  });
  const sockets = () =>
    page.evaluate(() => /** @type {Window & { e2eSockets?: { url: string, protocols: string[] }[] }} */ (window).e2eSockets ?? []);

  await check('the built bundle and the served one hold no token', page, async () => {
    const files = await filesUnder(DIST);
    assert(files.some((file) => file.endsWith('.js')), `no JavaScript under ${DIST}: build first`);
    const secrets = [TOKEN, bearerProtocol(TOKEN), 'token='];
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      for (const secret of secrets) assert(!text.includes(secret), `${file} contains ${secret === TOKEN ? 'the token' : secret}`);
    }
    const html = await (await fetch(`${BASE}/`)).text();
    const assets = [...html.matchAll(/src="(\/assets\/[^"]+\.js)"/g)].map((match) => match[1] ?? '');
    assert(assets.length > 0, `the page at ${BASE}/ loads no /assets/*.js (served without a token)`);
    for (const path of assets) {
      const text = await (await fetch(`${BASE}${path}`)).text();
      assert(!text.includes(TOKEN), `the served ${path} contains the token`);
    }
    return `${files.length} files under dist/, ${assets.length} served script(s)`;
  });

  await check('the API wants the token for reads (the stack runs with API_TOKEN_READS=true)', page, async () => {
    const response = await fetch(`${BASE}/tasks?limit=1`);
    assert(response.status === 401, `GET /tasks without a token answered ${response.status}`);
  });

  // A task the list must show once the token is in.
  const seeded = await fetch(`${BASE}/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: `e2e token seed ${RUN}`, payload: { message: 'seed' } }),
  });
  assert(seeded.status === 201, `POST /tasks with the token answered ${seeded.status}`);
  const seed = /** @type {TaskJson} */ (await seeded.json());

  await check('the page asks for the token on the 401 and refuses a wrong one', page, async () => {
    await page.goto(`${BASE}/`);
    const input = page.getByLabel('API token', { exact: true });
    await input.waitFor({ timeout: TIMEOUT });
    assert((await input.getAttribute('type')) === 'password', 'the token field is not a password field');
    await input.fill(`${TOKEN}-wrong`);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByText('The API refused that token').waitFor({ timeout: TIMEOUT });
    await page.screenshot({ path: `${ARTIFACTS}10-token-refused.png` });
  });

  await check('with the right token the list loads and a live WebSocket event arrives', page, async () => {
    await page.getByLabel('API token', { exact: true }).fill(TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.locator(`tr[data-task-id="${seed.task_id}"]`).waitFor({ timeout: TIMEOUT });
    await page.getByLabel('API token', { exact: true }).waitFor({ state: 'detached', timeout: TIMEOUT });
    await page.locator('[data-phase="open"]').waitFor({ timeout: TIMEOUT });
    // Created after the socket opened, so the page can learn of it only live.
    const task = await createThroughForm(page, { title: `e2e token live ${RUN}`, message: 'hello with a token' });
    await waitForEvents(page, task.task_id, ['PENDING', 'DONE']);
    await rowStatus(page, task.task_id, 'DONE').waitFor({ timeout: TIMEOUT });
    const stored = await page.evaluate(() => sessionStorage.getItem('taskflow.token'));
    assert(stored === TOKEN, 'the token is not in sessionStorage under taskflow.token');
    const opened = await sockets();
    assert(opened.every((socket) => !/token/i.test(socket.url)), `a WebSocket URL names the token: ${opened.map((s) => s.url).join(', ')}`);
    const last = opened[opened.length - 1];
    assert(
      last !== undefined && last.protocols.join(',') === `taskflow,${bearerProtocol(TOKEN)}`,
      `the last WebSocket offered ${last?.protocols.join(',') ?? 'nothing'}`,
    );
    await page.screenshot({ path: `${ARTIFACTS}11-token-live.png` });
    return `task ${task.task_id}; ${opened.length} WebSocket attempt(s)`;
  });

  await check('a reload keeps the token (sessionStorage); Forget token asks again', page, async () => {
    await page.reload();
    await page.locator(`tr[data-task-id="${seed.task_id}"]`).waitFor({ timeout: TIMEOUT });
    await page.locator('[data-phase="open"]').waitFor({ timeout: TIMEOUT });
    assert((await page.getByLabel('API token', { exact: true }).count()) === 0, 'the page asked again after a reload');
    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByText('The API needs a token').waitFor({ timeout: TIMEOUT });
    const stored = await page.evaluate(() => sessionStorage.getItem('taskflow.token'));
    assert(stored === null, 'the token is still in sessionStorage');
  });
}

/**
 * The checks against a stack without a token for reads (see the header).
 * @param {import('playwright-core').BrowserContext} context
 * @param {string[]} consoleErrors what the browser console reported as errors so far
 */
async function openScenario(context, consoleErrors) {
  const first = context.pages()[0] ?? (await context.newPage());
  const second = await context.newPage();
  const third = await context.newPage();
  for (const page of [first, second, third]) await installProbe(page);

  await check('the dashboard and its assets are served at /, a deep path included', first, async () => {
    const deep = await get('/some/deep/path?task=x');
    const type = deep.headers.get('content-type') ?? '';
    assert(deep.ok && type.startsWith('text/html'), `GET /some/deep/path answered ${deep.status} ${type}`);
    const size = await bundleSize();
    notes.push(size);
    return size.replace(/^.*; /, '');
  });

  await openDashboard(first);
  await openDashboard(second);

  /** @type {TaskJson | null} */
  let doneTask = null;
  /** @type {TaskJson | null} */
  let failedTask = null;

  // Act in a foreground tab: Chromium throttles timers and animation frames in background tabs,
  // which slows Playwright's actions and would distort the latency measured below. The second
  // tab stays in the background, as a second open tab would.
  await first.bringToFront();

  await check('a task created with a message goes PENDING -> PROCESSING -> DONE live, in that order', first, async () => {
    doneTask = await createThroughForm(first, { title: `e2e done ${RUN}`, message: 'hello from e2e' });
    const id = doneTask.task_id;
    await rowStatus(first, id, 'DONE').waitFor({ timeout: TIMEOUT });
    assert(await stillSamePage(first), 'the page was reloaded');
    await waitForEvents(first, id, ['PENDING', 'PROCESSING', 'DONE']);
    const log = await eventLog(first, id);
    assert(log[0] === 'PENDING', `the first event was ${log[0]}, not PENDING`);
    await first.screenshot({ path: `${ARTIFACTS}01-done.png` });
    // Both stamps exist once the row shows DONE.
    const handle = await first.waitForFunction(
      (taskId) => {
        const probe = /** @type {Window & { e2eProbe?: Probe }} */ (window).e2eProbe;
        const event = probe?.events[taskId];
        const row = probe?.rows[taskId];
        return event !== undefined && row !== undefined ? row - event : null;
      },
      id,
      { timeout: TIMEOUT },
    );
    const latency = /** @type {number} */ (await handle.jsonValue());
    notes.push(`DONE event received by the page's WebSocket -> row shows DONE in the DOM: ${latency.toFixed(1)} ms`);
    return `task ${id}, events ${log.join(' -> ')}`;
  });

  await check('a task created without a message turns FAILED', first, async () => {
    failedTask = await createThroughForm(first, { title: `e2e failed ${RUN}` });
    await rowStatus(first, failedTask.task_id, 'FAILED').waitFor({ timeout: TIMEOUT });
    assert(await stillSamePage(first), 'the page was reloaded');
    await first.screenshot({ path: `${ARTIFACTS}02-failed.png` });
    return `task ${failedTask.task_id}`;
  });

  await check('the detail view shows the timeline created -> processing -> done, with the attempt', first, async () => {
    assert(doneTask !== null, 'needs the DONE task of check 2');
    const id = doneTask.task_id;
    await first.locator(`tr[data-task-id="${id}"]`).getByRole('button', { name: doneTask.title }).click();
    const detail = first.locator(`section.detail[data-task-id="${id}"]`);
    await detail.locator('[data-step="finished"][data-state="done"]').waitFor({ timeout: TIMEOUT });
    const steps = await detail.locator('.timeline__step').evaluateAll((items) =>
      items.map((item) => `${item.getAttribute('data-step')}:${item.getAttribute('data-state')}`),
    );
    assert(steps.join(' ') === 'created:done processing:done finished:done', `timeline steps were ${steps.join(' ')}`);
    assert(new URL(first.url()).searchParams.get('task') === id, `the URL ${first.url()} does not hold the task id`);
    assert((await detail.locator('.detail__message').innerText()) === 'hello from e2e', 'the result message is not shown');
    const stored = /** @type {TaskJson} */ (await apiGet(`/tasks/${id}`));
    const worker = stored.attempts?.[0]?.worker;
    assert(worker, `GET /tasks/${id} has no attempt with a worker`);
    const attempt = detail.locator('.attempt').first();
    await attempt.waitFor({ timeout: TIMEOUT });
    const text = await attempt.innerText();
    assert(text.includes(worker) && text.includes('DONE'), `the attempt reads "${text}", expected worker ${worker} and DONE`);
    await first.screenshot({ path: `${ARTIFACTS}03-detail.png` });
    return `${steps.join(', ')}; "${text}"`;
  });

  await check('a second tab sees the task appear and turn DONE, without a reload', second, async () => {
    assert(doneTask !== null, 'needs the DONE task of check 2');
    await rowStatus(second, doneTask.task_id, 'DONE').waitFor({ timeout: TIMEOUT });
    assert(await stillSamePage(second), 'the second tab was reloaded');
    // Created in the first tab, so the second learnt of it from events alone.
    await waitForEvents(second, doneTask.task_id, ['PENDING', 'DONE']);
    await second.screenshot({ path: `${ARTIFACTS}04-second-tab.png` });
  });

  await check('a deep link opens the failed task; Retry runs it again: PENDING -> PROCESSING -> FAILED', third, async () => {
    assert(failedTask !== null, 'needs the FAILED task of check 3');
    const id = failedTask.task_id;
    await third.bringToFront();
    await openDashboard(third, `/?task=${id}`);
    const detail = third.locator(`section.detail[data-task-id="${id}"]`);
    await detail.getByRole('heading', { name: failedTask.title }).waitFor({ timeout: TIMEOUT });
    const reason = await detail.locator('.detail__message--failed').innerText({ timeout: TIMEOUT });
    await detail.locator('.attempt').first().waitFor({ timeout: TIMEOUT });
    const before = /** @type {TaskJson} */ (await apiGet(`/tasks/${id}`));
    const attemptsBefore = before.attempts?.length ?? 0;
    const seenBefore = (await eventLog(third, id)).length;

    const [response] = await Promise.all([
      third.waitForResponse((r) => new URL(r.url()).pathname === `/tasks/${id}/retry`, { timeout: TIMEOUT }),
      detail.getByRole('button', { name: 'Retry' }).click(),
    ]);
    assert(response.status() === 200, `POST /tasks/${id}/retry answered ${response.status()}: ${await response.text()}`);
    const answer = /** @type {TaskJson} */ (await response.json());
    assert(answer.status === 'PENDING', `the retry answered status ${answer.status}`);

    await waitForEvents(third, id, ['PENDING', 'PROCESSING', 'FAILED'], seenBefore);
    await detail.locator('[data-step="retried"]').waitFor({ timeout: TIMEOUT });
    await detail.locator('.detail__status [data-status="FAILED"]').waitFor({ timeout: TIMEOUT });
    await third.locator(`section.detail .attempt >> nth=${attemptsBefore}`).waitFor({ timeout: TIMEOUT });
    const shown = await detail.locator('.attempt').count();
    const after = /** @type {TaskJson} */ (await apiGet(`/tasks/${id}`));
    const attemptsAfter = after.attempts?.length ?? 0;
    assert(attemptsAfter > attemptsBefore, `GET /tasks/${id} has ${attemptsAfter} attempts, as many as before`);
    assert(shown === attemptsAfter, `the timeline shows ${shown} attempts, the API has ${attemptsAfter}`);
    await detail.getByRole('button', { name: 'Retry' }).waitFor({ timeout: TIMEOUT });
    await third.screenshot({ path: `${ARTIFACTS}05-retried.png` });
    return `reason "${reason}", attempts ${attemptsBefore} -> ${attemptsAfter}`;
  });

  await check('the counters come from GET /stats and agree with it', third, async () => {
    const source = await third.locator('.overview').getAttribute('data-source');
    assert(source === 'server', `the overview's numbers come from "${source}"`);
    assert((await third.getByText(/this page has loaded/).count()) === 0, 'the page still says it counts only loaded tasks');
    const started = Date.now();
    // Both may move while other tasks run; they must meet (live updates, a refresh every 10 s).
    const agreed = await eventually(
      async () => {
        const server = /** @type {StatsJson} */ (await apiGet('/stats')).counts;
        const shown = await pageCounters(third);
        return Object.keys(server).every((status) => shown[status] === server[status]) ? shown : undefined;
      },
      `the counters never matched GET /stats within ${TIMEOUT} ms`,
    );
    return `${Object.entries(agreed).map(([status, n]) => `${status} ${n}`).join(', ')} (agreed after ${Date.now() - started} ms)`;
  });

  await check('the form refuses a payload that is not JSON, without sending it', third, async () => {
    let posts = 0;
    const count = (/** @type {import('playwright-core').Request} */ request) => {
      if (request.method() === 'POST') posts += 1;
    };
    third.on('request', count);
    await third.getByLabel('Title', { exact: true }).fill(`e2e invalid ${RUN}`);
    await third.getByLabel(/^Payload/).fill('{"oops": ');
    await third.getByRole('button', { name: 'Create task' }).click();
    const error = await third.locator('#task-payload-error').innerText({ timeout: TIMEOUT });
    third.off('request', count);
    assert(posts === 0, `${posts} POST request(s) were sent`);
    assert((await third.evaluate(() => document.activeElement?.id)) === 'task-payload', 'focus is not on the payload');
    return error;
  });

  await check('at phone width the page fits the screen', third, async () => {
    await third.setViewportSize({ width: 390, height: 844 });
    await third.goto(`${BASE}/`);
    await third.locator('tr[data-task-id]').first().waitFor({ timeout: TIMEOUT });
    const overflow = await third.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await third.screenshot({ path: `${ARTIFACTS}06-phone.png`, fullPage: true });
    assert(overflow <= 0, `the page is ${overflow} px wider than the screen`);
  });

  await check('no errors in the browser console', first, async () => {
    assert(consoleErrors.length === 0, consoleErrors.join(' | '));
  });
}

async function main() {
  await mkdir(ARTIFACTS, { recursive: true });
  // Screenshots of an earlier run would be mistaken for this one's.
  for (const name of await readdir(ARTIFACTS)) if (name.endsWith('.png')) await rm(`${ARTIFACTS}${name}`);
  console.log(`e2e against ${BASE}`);
  const browser = await launch();
  /** @type {string[]} */
  const consoleErrors = [];
  browser.context.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`${message.text()} (${message.location().url})`);
  });

  try {
    if (TOKEN) {
      await tokenScenario(browser.context);
    } else {
      await openScenario(browser.context, consoleErrors);
    }
  } finally {
    await browser.close();
  }

  for (const note of notes) console.log(note);
  console.log(`screenshots in ${ARTIFACTS}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exitCode = 1;
});
