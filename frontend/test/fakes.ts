// Test doubles at the app's two boundaries: a WebSocket class the tests drive by hand, and an
// in-memory API client with the REST API's ordering, paging and errors.

import { vi } from 'vitest';
import { ApiError, type ApiClient, type ListQuery } from '../src/api';
import type { WebSocketLike } from '../src/connection';
import { newestFirst } from '../src/store';
import type { NewTask, Task } from '../src/types';

export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];
  onopen: ((event: Event) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  readyState = 0;
  closedByClient = false;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  static latest(): FakeWebSocket {
    const socket = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (socket === undefined) throw new Error('no WebSocket was opened');
    return socket;
  }

  close(): void {
    this.closedByClient = true;
    this.readyState = 3;
  }

  // What the server would do:
  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  send(message: unknown): void {
    const data = typeof message === 'string' ? message : JSON.stringify(message);
    this.onmessage?.(new MessageEvent('message', { data }));
  }
  drop(code = 1006): void {
    this.readyState = 3;
    this.onerror?.(new Event('error'));
    this.onclose?.(new CloseEvent('close', { code }));
  }
}

let counter = 0;

/** A task with sensible defaults; ids are UUIDs so the id search recognises them. */
export function makeTask(overrides: Partial<Task> = {}): Task {
  counter += 1;
  const id = `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`;
  const created = overrides.created_at ?? `2026-11-28T18:00:${String(counter % 60).padStart(2, '0')}.000001Z`;
  return {
    task_id: id,
    title: `Task ${counter}`,
    payload: { message: 'hi' },
    status: 'PENDING',
    created_at: created,
    updated_at: created,
    finished_at: null,
    message: null,
    ...overrides,
  };
}

/** An API client over an in-memory table, with every method a spy. */
export function fakeApi(initial: Task[] = []) {
  const rows = new Map(initial.map((task) => [task.task_id, task]));
  const api = {
    listTasks: vi.fn(async ({ limit, status, before }: ListQuery) => {
      const all = [...rows.values()].filter((task) => !status || task.status === status).sort(newestFirst);
      const start = before ? all.findIndex((task) => task.task_id === before) + 1 : 0;
      const tasks = all.slice(start, start + limit);
      const last = tasks[tasks.length - 1];
      return { tasks, nextCursor: start + limit < all.length && last ? last.task_id : null };
    }),
    getTask: vi.fn(async (taskId: string) => {
      const task = rows.get(taskId);
      if (!task) throw new ApiError(404, 'not_found', 'task not found');
      return task;
    }),
    createTask: vi.fn(async (input: NewTask) => {
      const task = makeTask({ title: input.title, payload: input.payload, created_at: new Date().toISOString() });
      rows.set(task.task_id, task);
      return task;
    }),
    retryTask: vi.fn(async (taskId: string): Promise<Task> => {
      throw new ApiError(404, 'not_found', `no route for ${taskId}`);
    }),
  } satisfies ApiClient;
  return { api, rows };
}
