// The page against an API that wants a token for reads (API_TOKEN_READS=true): a 401 opens the
// token prompt, a wrong token is refused, the right one loads the list and opens the WebSocket
// with the token as a subprotocol (kept across reconnects), and "Forget token" clears it.

import { act, cleanup, render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError, type ApiClient } from '../src/api';
import { App } from '../src/components/App';
import { base64url, createTokenStore, TOKEN_KEY, type TokenStore } from '../src/token';
import type { Task } from '../src/types';
import type { DashboardDeps } from '../src/useDashboard';
import { FakeWebSocket, fakeApi, makeTask } from './fakes';

const TOKEN = 'pässwörd🔑';

/** The in-memory API behind a token check, as the API with API_TOKEN_READS=true. */
function lockedApi(tasks: Task[], tokens: TokenStore) {
  const { api: open, rows } = fakeApi(tasks);
  const check = (): void => {
    if (tokens.get() !== TOKEN) throw new ApiError(401, 'unauthorized', 'a valid bearer token is required');
  };
  const api = {
    listTasks: vi.fn(async (query: Parameters<ApiClient['listTasks']>[0]) => (check(), open.listTasks(query))),
    getTask: vi.fn(async (taskId: string) => (check(), open.getTask(taskId))),
    createTask: vi.fn(async (task: Parameters<ApiClient['createTask']>[0]) => (check(), open.createTask(task))),
    retryTask: vi.fn(async (taskId: string) => (check(), open.retryTask(taskId))),
    getStats: vi.fn(async () => (check(), open.getStats())),
  } satisfies ApiClient;
  return { api, rows };
}

function mount(tasks: Task[]) {
  const tokens = createTokenStore(sessionStorage);
  const { api, rows } = lockedApi(tasks, tokens);
  const deps: DashboardDeps = {
    api,
    tokens,
    wsUrl: 'ws://test/ws',
    WebSocketImpl: FakeWebSocket,
    backoff: { initialMs: 5, maxMs: 20 },
    random: () => 0,
  };
  render(<App deps={deps} />);
  return { api, rows };
}

function statusOf(task: Task): string | null {
  return document.querySelector(`tr[data-task-id="${task.task_id}"] [data-status]`)?.textContent ?? null;
}

beforeEach(() => {
  FakeWebSocket.reset();
  sessionStorage.clear();
  window.history.replaceState(null, '', '/');
});
afterEach(() => {
  cleanup();
  sessionStorage.clear();
});

describe('the token prompt', () => {
  it('asks on 401, refuses a wrong token, loads and goes live with the right one, and forgets it', async () => {
    const user = userEvent.setup();
    const task = makeTask({ title: 'Locked report', status: 'PENDING' });
    mount([task]);

    // The first list read answers 401: the prompt, not a silent empty page.
    const input = await screen.findByLabelText('API token');
    expect(input).toHaveProperty('type', 'password');
    expect(screen.getByText(/The API needs a token/)).toBeTruthy();
    expect(FakeWebSocket.latest().protocols).toEqual([]);
    expect(statusOf(task)).toBeNull();

    await user.type(input, 'wrong');
    await user.click(screen.getByRole('button', { name: 'Use token' }));
    const hint = await screen.findByText(/The API refused that token/);
    expect(hint.getAttribute('role')).toBe('alert');
    expect(input.getAttribute('aria-describedby')).toBe(hint.id);
    expect(input.getAttribute('aria-invalid')).toBe('true');

    await user.clear(input);
    await user.click(input);
    await user.paste(TOKEN);
    await user.click(screen.getByRole('button', { name: 'Use token' }));
    await waitFor(() => expect(statusOf(task)).toBe('PENDING'));
    await waitFor(() => expect(screen.queryByLabelText('API token')).toBeNull());
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(TOKEN);

    // The socket reconnected with the token as a subprotocol, never in the URL.
    const protocols = ['taskflow', `taskflow.bearer.${base64url(TOKEN)}`];
    const socket = FakeWebSocket.latest();
    expect(socket.protocols).toEqual(protocols);
    expect(socket.url).toBe('ws://test/ws');
    act(() => socket.open());
    act(() => socket.send({ task_id: task.task_id, status: 'DONE', updated_at: new Date(Date.now() + 1000).toISOString() }));
    await waitFor(() => expect(statusOf(task)).toBe('DONE'));

    // A dropped socket comes back with the same token.
    const before = FakeWebSocket.instances.length;
    act(() => socket.drop());
    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(before + 1));
    expect(FakeWebSocket.latest().protocols).toEqual(protocols);

    // Forgetting it clears sessionStorage; the next read's 401 asks again.
    await user.click(screen.getByRole('button', { name: 'Forget token' }));
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(await screen.findByText(/The API needs a token/)).toBeTruthy();
    await waitFor(() => expect(FakeWebSocket.latest().protocols).toEqual([]));
  });

  it('uses a token already in sessionStorage (a reload of the tab) without asking', async () => {
    sessionStorage.setItem(TOKEN_KEY, TOKEN);
    const task = makeTask({ title: 'Kept token' });
    mount([task]);
    await waitFor(() => expect(statusOf(task)).toBe('PENDING'));
    expect(FakeWebSocket.latest().protocols).toEqual(['taskflow', `taskflow.bearer.${base64url(TOKEN)}`]);
    expect(screen.queryByLabelText('API token')).toBeNull();
    expect(screen.getByRole('button', { name: 'Forget token' })).toBeTruthy();
  });

  it('asks when a create answers 401 (a token for writes only)', async () => {
    const user = userEvent.setup();
    const { api } = fakeApi([]);
    api.createTask.mockRejectedValueOnce(new ApiError(401, 'unauthorized', 'a valid bearer token is required'));
    render(<App deps={{ api, wsUrl: 'ws://test/ws', WebSocketImpl: FakeWebSocket, tokens: createTokenStore(sessionStorage) }} />);
    await user.type(screen.getByLabelText('Title', { exact: true }), 'needs a token');
    await user.click(screen.getByRole('button', { name: 'Create task' }));
    expect(await screen.findByLabelText('API token')).toBeTruthy();
  });
});
