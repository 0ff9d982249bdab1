// The whole app against an in-memory API and a fake WebSocket: live updates, the merge rule in
// the DOM, reloads after resync and reconnect, deep links, retry errors, paging and id lookup.

import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { App } from '../src/components/App';
import type { Task } from '../src/types';
import type { DashboardDeps } from '../src/useDashboard';
import { FakeWebSocket, fakeApi, makeTask } from './fakes';

const T0 = '2026-11-28T18:40:37.130860Z';
const T1 = '2026-11-28T18:40:37.130861Z';

function mount(tasks: Task[]) {
  const { api, rows } = fakeApi(tasks);
  // Millisecond backoff keeps the reconnect test quick with real timers.
  const deps: DashboardDeps = { api, wsUrl: 'ws://test/ws', WebSocketImpl: FakeWebSocket, backoff: { initialMs: 5, maxMs: 20 }, random: () => 0 };
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

beforeEach(() => {
  FakeWebSocket.reset();
  window.history.replaceState(null, '', '/');
});
afterEach(() => {
  window.history.replaceState(null, '', '/');
});

describe('the dashboard', () => {
  it('updates a row as events arrive and ignores an older event', async () => {
    const task = makeTask({ title: 'Nightly report', status: 'PENDING', updated_at: T0 });
    const { api } = mount([task]);
    const socket = await openSocket(api);
    expect(await statusOf(task)).toBe('PENDING');

    act(() => socket.send({ task_id: task.task_id, status: 'DONE', updated_at: '2026-11-28T18:40:38Z', message: 'ok' }));
    await waitFor(async () => expect(await statusOf(task)).toBe('DONE'));
    // Delivered late: PROCESSING happened before DONE.
    act(() => socket.send({ task_id: task.task_id, status: 'PROCESSING', updated_at: T1 }));
    expect(await statusOf(task)).toBe('DONE');
    expect(screen.getByTestId('count-DONE').textContent).toBe('1');
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

  it('opens the task in the URL with its timeline, and shows why a retry failed', async () => {
    const task = makeTask({
      title: 'Broken',
      status: 'FAILED',
      created_at: '2026-11-28T18:40:37Z',
      updated_at: '2026-11-28T18:40:37.250Z',
      finished_at: '2026-11-28T18:40:37.250Z',
      message: 'payload has no `message` field',
      attempts: [
        { attempt: 1, started_at: '2026-11-28T18:40:37.050Z', finished_at: '2026-11-28T18:40:37.250Z', outcome: 'FAILED', error: 'no message', worker: 'w1' },
      ],
    });
    window.history.replaceState(null, '', `/?task=${task.task_id}`);
    const { api } = mount([task]);
    const detail = await screen.findByRole('region', { name: 'Broken' });
    const steps = await within(detail).findAllByRole('listitem');
    expect(steps.map((step) => step.getAttribute('data-step')).filter(Boolean)).toEqual(['created', 'processing', 'finished']);
    expect(within(detail).getByText('+50 ms')).toBeTruthy(); // queued
    expect(within(detail).getByText('+200 ms')).toBeTruthy(); // ran
    expect(within(detail).getByText(/Attempt 1 on w1: FAILED after 200 ms/)).toBeTruthy();

    const user = userEvent.setup();
    await user.click(within(detail).getByRole('button', { name: 'Retry' }));
    expect(api.retryTask).toHaveBeenCalledWith(task.task_id);
    expect((await within(detail).findByRole('alert')).textContent).toBe(`Retry failed: no route for ${task.task_id}`);

    await user.keyboard('{Escape}');
    expect(window.location.search).toBe('');
    // Focus goes back to the row the task was in.
    await waitFor(() => expect(document.activeElement?.textContent).toBe('Broken'));
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
