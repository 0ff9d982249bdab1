// The whole app against an in-memory API and a fake WebSocket: live updates, the merge rule in
// the DOM, PENDING events for unknown tasks, counters from /stats (and their fallback), reloads
// after resync and reconnect, deep links, retries, paging, id lookup and a read retried after an outage.

import { act, cleanup, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from '../src/api';
import { App } from '../src/components/App';
import type { StatusEvent, Task } from '../src/types';
import type { DashboardDeps } from '../src/useDashboard';
import { FakeWebSocket, fakeApi, makeTask } from './fakes';

const T0 = '2026-11-28T18:40:37.130860Z';
const T1 = '2026-11-28T18:40:37.130861Z';

function mount(tasks: Task[], prepare?: (fake: ReturnType<typeof fakeApi>) => void, statsIntervalMs?: number) {
  const fake = fakeApi(tasks);
  prepare?.(fake);
  const { api, rows } = fake;
  // Millisecond backoff keeps the reconnect test quick with real timers.
  const deps: DashboardDeps = {
    api,
    wsUrl: 'ws://test/ws',
    WebSocketImpl: FakeWebSocket,
    backoff: { initialMs: 5, maxMs: 20 },
    random: () => 0,
    ...(statsIntervalMs !== undefined && { statsIntervalMs }),
  };
  render(<App deps={deps} />);
  return { api, rows };
}

function row(task: Task): HTMLElement {
  const element = document.querySelector<HTMLElement>(`tr[data-task-id="${task.task_id}"]`);
  if (element === null) throw new Error(`no row for ${task.title}`);
  return element;
}

async function statusOf(task: Task): Promise<string | null> {
  return (await waitFor(() => row(task))).querySelector('[data-status]')?.textContent ?? null;
}

/** Opens the socket the app created, as the server would, and waits for the reload it triggers. */
async function openSocket(api: ReturnType<typeof fakeApi>['api']): Promise<FakeWebSocket> {
  const socket = await waitFor(() => FakeWebSocket.latest());
  const calls = api.listTasks.mock.calls.length;
  act(() => socket.open());
  await waitFor(() => expect(api.listTasks.mock.calls.length).toBe(calls + 1));
  return socket;
}

/** A moment from now, as the server would stamp a change happening now. */
function now(offsetMs = 1): string {
  return new Date(Date.now() + offsetMs).toISOString();
}

/**
 * What the server does on a status change: the database row changes, then the event goes out,
 * so a /stats read at any moment agrees with the events sent so far.
 */
function change(socket: FakeWebSocket, rows: Map<string, Task>, event: StatusEvent, extra: Partial<Task> = {}): void {
  const row = rows.get(event.task_id);
  if (row !== undefined) {
    const finished = event.status === 'DONE' || event.status === 'FAILED';
    rows.set(event.task_id, {
      ...row,
      status: event.status,
      updated_at: event.updated_at,
      finished_at: finished ? event.updated_at : null,
      message: event.message ?? null,
      ...extra,
    });
  }
  act(() => socket.send(event));
}

function counter(status: string): string | null {
  return screen.getByTestId(`count-${status}`).textContent;
}

beforeEach(() => {
  FakeWebSocket.reset();
  window.history.replaceState(null, '', '/');
});
afterEach(() => {
  window.history.replaceState(null, '', '/');
});

describe('the dashboard', () => {
  it('updates a row as events arrive and ignores an older event', async () => {
    const task = makeTask({ title: 'Nightly report', status: 'PENDING', created_at: now(-2000), updated_at: now(-2000) });
    const { api, rows } = mount([task]);
    const socket = await openSocket(api);
    expect(await statusOf(task)).toBe('PENDING');
    await waitFor(() => expect(counter('PENDING')).toBe('1'));

    const processingAt = now(1);
    change(socket, rows, { task_id: task.task_id, status: 'PROCESSING', updated_at: processingAt });
    change(socket, rows, { task_id: task.task_id, status: 'DONE', updated_at: now(2), message: 'ok' });
    await waitFor(async () => expect(await statusOf(task)).toBe('DONE'));
    // Delivered late: PROCESSING happened before DONE.
    act(() => socket.send({ task_id: task.task_id, status: 'PROCESSING', updated_at: processingAt }));
    expect(await statusOf(task)).toBe('DONE');
    expect([counter('PENDING'), counter('PROCESSING'), counter('DONE')]).toEqual(['0', '0', '1']);
    // A toast announces it.
    const toasts = within(screen.getByRole('region', { name: 'Notifications' })).getAllByRole('listitem');
    expect(toasts.map((toast) => toast.querySelector('.toast__text')?.textContent)).toEqual(['DONE Nightly reportok']);
  });

  it('fetches a task it does not know when an event names it, and shows it', async () => {
    const { api, rows } = mount([]);
    const socket = await openSocket(api);
    const stranger = makeTask({ title: 'Created elsewhere', status: 'PROCESSING', created_at: new Date().toISOString(), updated_at: T0 });
    rows.set(stranger.task_id, stranger);
    act(() => socket.send({ task_id: stranger.task_id, status: 'PROCESSING', updated_at: T0 }));
    expect(await statusOf(stranger)).toBe('PROCESSING');
    expect(api.getTask).toHaveBeenCalledWith(stranger.task_id);
  });

  it("shows a task created elsewhere from its PENDING event, newest first, and counts it", async () => {
    const older = makeTask({ title: 'Older', status: 'DONE', created_at: now(-60_000), updated_at: now(-59_000), finished_at: now(-59_000) });
    const { api, rows } = mount([older]);
    const socket = await openSocket(api);
    await waitFor(() => expect(counter('DONE')).toBe('1'));

    const createdAt = now(1);
    const fresh = makeTask({ title: 'Fresh', status: 'PENDING', created_at: createdAt, updated_at: createdAt });
    rows.set(fresh.task_id, fresh);
    act(() => socket.send({ task_id: fresh.task_id, status: 'PENDING', updated_at: createdAt }));
    expect(await statusOf(fresh)).toBe('PENDING');
    expect(api.getTask).toHaveBeenCalledWith(fresh.task_id);
    expect([...document.querySelectorAll('tbody tr')].map((tr) => tr.getAttribute('data-task-id'))).toEqual([fresh.task_id, older.task_id]);
    expect(counter('PENDING')).toBe('1');

    // Its PROCESSING and DONE follow, possibly before the fetch by id answered; the order holds.
    change(socket, rows, { task_id: fresh.task_id, status: 'PROCESSING', updated_at: now(2) });
    change(socket, rows, { task_id: fresh.task_id, status: 'DONE', updated_at: now(3), message: 'hi' });
    await waitFor(async () => expect(await statusOf(fresh)).toBe('DONE'));
    expect([counter('PENDING'), counter('PROCESSING'), counter('DONE')]).toEqual(['0', '0', '2']);
  });

  it('does not fetch a task created here when its PENDING event beats the answer to the POST', async () => {
    let socket: FakeWebSocket | null = null;
    const { api, rows } = mount([], ({ api: fake, rows: table }) => {
      fake.createTask.mockImplementationOnce(async (input) => {
        const createdAt = now(1);
        const task = makeTask({ title: input.title, payload: input.payload, created_at: createdAt, updated_at: createdAt });
        table.set(task.task_id, task);
        // The API announces PENDING before it answers.
        socket?.send({ task_id: task.task_id, status: 'PENDING', updated_at: createdAt });
        await new Promise((resolve) => setTimeout(resolve, 30));
        return task;
      });
    });
    socket = await openSocket(api);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText('Title'), 'Mine');
    await user.type(screen.getByLabelText(/^Message/), 'hi');
    await user.click(screen.getByRole('button', { name: 'Create task' }));
    const created = await waitFor(() => {
      const task = [...rows.values()].find((row) => row.title === 'Mine');
      if (task === undefined) throw new Error('not created yet');
      return task;
    });
    expect(await statusOf(created)).toBe('PENDING');
    expect(api.getTask).not.toHaveBeenCalledWith(created.task_id);
    expect(counter('PENDING')).toBe('1');
  });

  it("shows the server's counts, not only the loaded tasks', without the caveat", async () => {
    const tasks = Array.from({ length: 70 }, (_, i) =>
      makeTask({ status: i < 60 ? 'DONE' : 'FAILED', created_at: new Date(Date.UTC(2026, 10, 28, 9, i)).toISOString() }),
    );
    const { api } = mount(tasks);
    await openSocket(api);
    await waitFor(() => expect(document.querySelectorAll('tbody tr')).toHaveLength(50));
    await waitFor(() => expect([counter('DONE'), counter('FAILED')]).toEqual(['60', '10']));
    expect(document.querySelector('.overview')?.getAttribute('data-source')).toBe('server');
    expect(screen.queryByText(/this page has loaded/)).toBeNull();
  });

  it('falls back to counting the loaded tasks, and says so, when /stats cannot be read', async () => {
    const tasks = [makeTask({ status: 'DONE' }), makeTask({ status: 'FAILED' })];
    const { api } = mount(tasks, ({ api: fake }) => {
      fake.getStats.mockRejectedValue(new ApiError(503, 'unavailable', 'the database cannot be reached'));
    });
    await openSocket(api);
    expect(await screen.findByText(/Cannot read the server's counts \(the database cannot be reached\): counted over the 2 tasks/)).toBeTruthy();
    expect([counter('DONE'), counter('FAILED')]).toEqual(['1', '1']);
  });

  it('re-reads /stats periodically, but does not poll an API that has no /stats', async () => {
    const { api } = mount([], undefined, 20);
    await openSocket(api);
    await waitFor(() => expect(api.getStats.mock.calls.length).toBeGreaterThanOrEqual(4));
    cleanup();

    const old = mount([], ({ api: fake }) => fake.getStats.mockRejectedValue(new ApiError(404, 'not_found', 'no route')), 20);
    await openSocket(old.api);
    await screen.findByText(/Cannot read the server's counts \(no route\)/);
    const asked = old.api.getStats.mock.calls.length;
    await new Promise((resolve) => setTimeout(resolve, 120)); // six intervals
    expect(old.api.getStats.mock.calls.length).toBe(asked);
  });

  it('reloads the list when the server asks for a resync', async () => {
    const task = makeTask({ title: 'Import', status: 'PROCESSING', updated_at: T0 });
    const { api, rows } = mount([task]);
    const socket = await openSocket(api);
    expect(await statusOf(task)).toBe('PROCESSING');

    // The DONE event was lost; the database has it.
    rows.set(task.task_id, { ...task, status: 'DONE', updated_at: T1, finished_at: T1, message: 'ok' });
    const calls = api.listTasks.mock.calls.length;
    act(() => socket.send({ event: 'resync', reason: 'client fell behind by 12 events' }));
    await waitFor(() => expect(api.listTasks.mock.calls.length).toBe(calls + 1));
    await waitFor(async () => expect(await statusOf(task)).toBe('DONE'));
  });

  it('reconnects after the connection drops and reloads the list', async () => {
    const task = makeTask({ title: 'Export', status: 'PROCESSING', updated_at: T0 });
    const { api, rows } = mount([task]);
    const first = await openSocket(api);
    await waitFor(() => expect(document.querySelector('[data-phase]')?.getAttribute('data-phase')).toBe('open'));

    act(() => first.drop(1001));
    expect(document.querySelector('[data-phase]')?.getAttribute('data-phase')).toBe('waiting');
    rows.set(task.task_id, { ...task, status: 'FAILED', updated_at: T1, finished_at: T1, message: 'payload has no `message` field' });

    // After the backoff a new socket is made; once it opens, the list is read again.
    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(2));
    await openSocket(api);
    await waitFor(async () => expect(await statusOf(task)).toBe('FAILED'));
    expect(document.querySelector('[data-phase]')?.getAttribute('data-phase')).toBe('open');
  });

  it('opens the task in the URL with its timeline and attempts, and retries it', async () => {
    // One clock reading: separate readings could be a millisecond apart and change the spans.
    const t0 = Date.now() - 6000;
    const at = (ms: number): string => new Date(t0 + ms).toISOString();
    const failedAt = at(250);
    const reason = 'payload has no `message` field';
    const first = { attempt: 1, started_at: at(50), finished_at: failedAt, outcome: 'FAILED' as const, error: reason, worker: 'w1' };
    const task = makeTask({
      title: 'Broken',
      status: 'FAILED',
      created_at: at(0),
      updated_at: failedAt,
      finished_at: failedAt,
      message: reason,
      attempts: [first],
    });
    window.history.replaceState(null, '', `/?task=${task.task_id}`);
    const { api, rows } = mount([task]);
    const socket = await openSocket(api);
    const detail = await screen.findByRole('region', { name: 'Broken' });
    const steps = () => [...detail.querySelectorAll('[data-step]')].map((step) => step.getAttribute('data-step'));
    await waitFor(() => expect(steps()).toEqual(['created', 'processing', 'finished']));
    expect(within(detail).getByText('+50 ms')).toBeTruthy(); // queued
    expect(within(detail).getByText('+200 ms')).toBeTruthy(); // ran
    const attemptText = () => [...detail.querySelectorAll('.attempt')].map((item) => item.textContent);
    expect(attemptText()).toEqual([`Attempt 1 on w1: FAILED after 200 ms — ${reason}`]);
    await waitFor(() => expect(counter('FAILED')).toBe('1'));

    const user = userEvent.setup();
    await user.click(within(detail).getByRole('button', { name: 'Retry' }));
    expect(api.retryTask).toHaveBeenCalledWith(task.task_id);
    await waitFor(() => expect(detail.querySelector('[data-status]')?.textContent).toBe('PENDING'));
    const retriedAt = rows.get(task.task_id)?.updated_at ?? '';
    expect([counter('PENDING'), counter('FAILED')]).toEqual(['1', '0']);

    // The API announces the retry and the worker runs the task again; it fails again.
    change(socket, rows, { task_id: task.task_id, status: 'PENDING', updated_at: retriedAt });
    const rerunAt = Date.now();
    const second = { attempt: 2, started_at: new Date(rerunAt + 2).toISOString(), finished_at: null, outcome: null, error: null, worker: 'w2' };
    change(socket, rows, { task_id: task.task_id, status: 'PROCESSING', updated_at: second.started_at }, { attempts: [first, second] });
    const failedAgain = new Date(rerunAt + 12).toISOString();
    change(socket, rows, { task_id: task.task_id, status: 'FAILED', updated_at: failedAgain, message: reason }, {
      attempts: [first, { ...second, finished_at: failedAgain, outcome: 'FAILED', error: reason }],
    });
    await waitFor(() => expect(attemptText()).toHaveLength(2));
    expect(attemptText()[1]).toBe(`Attempt 2 on w2: FAILED after 10 ms — ${reason}`);
    expect(steps()).toEqual(['created', 'processing', 'finished', 'retried', 'processing', 'finished']);
    expect([counter('PENDING'), counter('PROCESSING'), counter('FAILED')]).toEqual(['0', '0', '1']);
    expect(within(detail).getByRole('button', { name: 'Retry' })).toBeTruthy();

    await user.keyboard('{Escape}');
    expect(window.location.search).toBe('');
    // Focus goes back to the row the task was in.
    await waitFor(() => expect(document.activeElement?.textContent).toBe('Broken'));
  });

  it("shows why the API refused a retry", async () => {
    const task = makeTask({ title: 'Raced', status: 'FAILED', updated_at: T0, finished_at: T0, message: 'no message' });
    window.history.replaceState(null, '', `/?task=${task.task_id}`);
    const { api, rows } = mount([task]);
    await openSocket(api);
    const detail = await screen.findByRole('region', { name: 'Raced' });
    // Someone else retried it already; this page has not heard yet.
    rows.set(task.task_id, { ...task, status: 'PENDING', updated_at: T1, finished_at: null, message: null });
    await userEvent.setup().click(within(detail).getByRole('button', { name: 'Retry' }));
    expect((await within(detail).findByRole('alert')).textContent).toBe('Retry failed: only FAILED tasks can be retried; this one is PENDING');
  });

  it('looks up a whole task id on the server when it is not among the loaded rows', async () => {
    const tasks = Array.from({ length: 60 }, (_, i) => makeTask({ created_at: new Date(Date.UTC(2026, 10, 28, 9, i)).toISOString() }));
    const oldest = tasks[0] as Task;
    const { api } = mount(tasks);
    await openSocket(api);
    await waitFor(() => expect(document.querySelectorAll('tbody tr')).toHaveLength(50));
    expect(document.querySelector(`tr[data-task-id="${oldest.task_id}"]`)).toBeNull();

    const user = userEvent.setup();
    await user.type(screen.getByLabelText('Search'), oldest.task_id);
    await waitFor(() => expect(document.querySelectorAll('tbody tr')).toHaveLength(1));
    expect(row(oldest)).toBeTruthy();
    expect(api.getTask).toHaveBeenCalledWith(oldest.task_id);

    await user.clear(screen.getByLabelText('Search'));
    await user.type(screen.getByLabelText('Search'), '00000000-0000-4000-8000-999999999999');
    expect(await screen.findByText('No task has this id.')).toBeTruthy();
  });

  it('reads the list again after an outage answer, without showing an error that went away', async () => {
    const task = makeTask({ title: 'Survivor' });
    const { api } = mount([task], ({ api: fake }) => {
      fake.listTasks.mockRejectedValueOnce(new ApiError(503, 'unavailable', 'the database cannot be reached'));
    });
    // No socket opens here, so only the cache's retry (a second later) can bring the row.
    await waitFor(() => row(task), { timeout: 3000 });
    expect(api.listTasks).toHaveBeenCalledTimes(2);
    expect(screen.queryByText(/Cannot load tasks/)).toBeNull();
  });

  it('pages with the cursor and filters by status on the server', async () => {
    const tasks = Array.from({ length: 60 }, (_, i) =>
      makeTask({ status: i % 2 ? 'DONE' : 'FAILED', created_at: new Date(Date.UTC(2026, 10, 28, 10, i)).toISOString() }),
    );
    const { api } = mount(tasks);
    await openSocket(api);
    await waitFor(() => expect(document.querySelectorAll('tbody tr')).toHaveLength(50));
    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(document.querySelectorAll('tbody tr')).toHaveLength(60));
    expect(screen.getByText('All tasks loaded.')).toBeTruthy();

    await user.selectOptions(screen.getByLabelText('Status'), 'FAILED');
    await waitFor(() => expect(document.querySelectorAll('tbody tr')).toHaveLength(30));
    expect(api.listTasks).toHaveBeenLastCalledWith({ status: 'FAILED', limit: 50, before: null });
  });
});
