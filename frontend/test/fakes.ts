// Test doubles at the app's two boundaries: a WebSocket class the tests drive by hand, and an
// in-memory API client with the REST API's ordering, paging, retry rule, statistics and errors.

import { vi } from 'vitest';
import { ApiError, type ApiClient, type ListQuery } from '../src/api';
import type { WebSocketLike } from '../src/connection';
import { newestFirst } from '../src/store';
import { toMicros } from '../src/time';
import type { MinuteCount, NewTask, ServerStats, Task } from '../src/types';

export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];
  onopen: ((event: Event) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  readyState = 0;
  closedByClient = false;

  constructor(
    readonly url: string,
    readonly protocols: string[] = [],
  ) {
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
      const task = rows.get(taskId);
      if (!task) throw new ApiError(404, 'not_found', 'task not found');
      if (task.status !== 'FAILED') {
        throw new ApiError(409, 'conflict', `only FAILED tasks can be retried; this one is ${task.status}`);
      }
      const now = new Date().toISOString();
      const retried: Task = { ...task, status: 'PENDING', updated_at: now, finished_at: null, message: null };
      rows.set(taskId, retried);
      // POST /tasks/{id}/retry answers without attempts, like the real API.
      const { attempts: _omitted, ...answer } = retried;
      return answer;
    }),
    getStats: vi.fn(async (): Promise<ServerStats> => statsOf([...rows.values()], Date.now())),
  } satisfies ApiClient;
  return { api, rows };
}

/** What `GET /stats` answers for `tasks` at `nowMs`: counts, and finished per minute in the last hour. */
export function statsOf(tasks: Task[], nowMs: number): ServerStats {
  const counts = { PENDING: 0, PROCESSING: 0, DONE: 0, FAILED: 0 };
  const minutes = new Map<number, MinuteCount>();
  for (const task of tasks) {
    counts[task.status] += 1;
    if (task.finished_at === null || (task.status !== 'DONE' && task.status !== 'FAILED')) continue;
    const ms = toMicros(task.finished_at) / 1000;
    if (ms < nowMs - 3_600_000) continue;
    const start = Math.floor(ms / 60_000) * 60_000;
    const minute = minutes.get(start) ?? { start, done: 0, failed: 0 };
    if (task.status === 'DONE') minute.done += 1;
    else minute.failed += 1;
    minutes.set(start, minute);
  }
  return { counts, finishedPerMinute: [...minutes.values()].sort((a, b) => a.start - b.start) };
}
