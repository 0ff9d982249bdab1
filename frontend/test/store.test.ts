// The reducer: the merge rule (an older state never overwrites a newer one), events for unknown
// tasks, the loaded window, toasts, and what the list shows.

import { describe, expect, it } from 'vitest';
import { initialState, mergeEvent, reducer, supersedes, visibleTasks, type Action, type DashboardState } from '../src/store';
import type { StatusEvent, Task } from '../src/types';
import { makeTask } from './fakes';

const T0 = '2026-11-28T18:40:37.130860Z';
const T1 = '2026-11-28T18:40:37.130861Z'; // one microsecond later
const T1_SHORT = '2026-11-28T18:40:37.9Z'; // later, written with fewer digits

function run(actions: Action[], state: DashboardState = initialState()): DashboardState {
  return actions.reduce(reducer, state);
}

function event(task: Task, status: StatusEvent['status'], updated_at: string, message?: string): Action {
  return { type: 'event', event: { task_id: task.task_id, status, updated_at, ...(message !== undefined && { message }) } };
}

function loaded(tasks: Task[], cursor: string | null = null): Action[] {
  return [
    { type: 'listRequested', mode: 'replace' },
    { type: 'listLoaded', mode: 'replace', tasks, cursor },
  ];
}

describe('merging events into tasks', () => {
  it('applies a newer event', () => {
    const task = makeTask({ status: 'PROCESSING', updated_at: T0 });
    const state = run([...loaded([task]), event(task, 'DONE', T1, 'hi')]);
    expect(state.tasks[task.task_id]).toMatchObject({ status: 'DONE', message: 'hi', finished_at: T1 });
  });

  it('never lets an older event overwrite a newer state', () => {
    const task = makeTask({ status: 'PENDING', updated_at: T0 });
    const state = run([...loaded([task]), event(task, 'DONE', T1_SHORT, 'hi'), event(task, 'PROCESSING', T1)]);
    expect(state.tasks[task.task_id]?.status).toBe('DONE');
  });

  it('compares microseconds, not milliseconds', () => {
    const task = makeTask({ status: 'PROCESSING', updated_at: T1 });
    // Same millisecond, one microsecond earlier: stale.
    const state = run([...loaded([task]), event(task, 'PENDING', T0)]);
    expect(state.tasks[task.task_id]?.status).toBe('PROCESSING');
  });

  it('never replaces a terminal state with PROCESSING or PENDING at the same timestamp', () => {
    const done = makeTask({ status: 'DONE', updated_at: T0, finished_at: T0, message: 'ok' });
    for (const status of ['PROCESSING', 'PENDING'] as const) {
      expect(mergeEvent(done, { task_id: done.task_id, status, updated_at: T0 })).toBe(done);
      // The same instant written with another precision is still the same instant.
      expect(mergeEvent(done, { task_id: done.task_id, status, updated_at: '2026-11-28T18:40:37.13086Z' })).toBe(done);
    }
    expect(supersedes({ status: 'FAILED', updated_at: T0 }, { status: 'PROCESSING', updated_at: T0 })).toBe(true);
  });

  it('lets a retried task go back to PENDING when the event is newer', () => {
    const failed = makeTask({ status: 'FAILED', updated_at: T0, finished_at: T0, message: 'no message' });
    const state = run([...loaded([failed]), event(failed, 'PENDING', T1)]);
    expect(state.tasks[failed.task_id]).toMatchObject({ status: 'PENDING', finished_at: null, message: null });
  });

  it('keeps a newer REST snapshot over an older event, and a newer event over an older snapshot', () => {
    const task = makeTask({ status: 'PROCESSING', updated_at: T0 });
    const snapshot: Task = { ...task, status: 'DONE', updated_at: T1, finished_at: T1, message: 'hi' };
    let state = run([...loaded([task]), { type: 'taskLoaded', task: snapshot }, event(task, 'PROCESSING', T0)]);
    expect(state.tasks[task.task_id]?.status).toBe('DONE');

    state = run([...loaded([task]), event(task, 'DONE', T1, 'hi'), { type: 'taskLoaded', task }]);
    expect(state.tasks[task.task_id]?.status).toBe('DONE');
  });

  it("keeps a task's attempts when a list page brings the same version without them", () => {
    const task = makeTask({ status: 'FAILED', updated_at: T0, finished_at: T0, message: 'no message' });
    const attempt = { attempt: 1, worker: 'w1', started_at: T0, finished_at: T0, outcome: 'FAILED' as const, error: 'no message' };
    const detail: Task = { ...task, attempts: [attempt] };
    const state = run([{ type: 'taskLoaded', task: detail }, ...loaded([task])]);
    expect(state.tasks[task.task_id]?.attempts).toHaveLength(1);
    // A newer version replaces them: they would describe an older state.
    const newer = run([...loaded([{ ...task, status: 'PENDING', updated_at: T1, finished_at: null, message: null }])], state);
    expect(newer.tasks[task.task_id]?.attempts).toBeUndefined();
  });

  it('keeps the event for an unknown task until its snapshot arrives, then applies it', () => {
    const task = makeTask({ status: 'PROCESSING', updated_at: T0 });
    let state = run([...loaded([]), event(task, 'DONE', T1, 'hi')]);
    expect(state.orphans[task.task_id]?.status).toBe('DONE');
    expect(state.tasks[task.task_id]).toBeUndefined();

    // The snapshot was read before the task finished: the waiting event still wins.
    state = run([{ type: 'taskLoaded', task }], state);
    expect(state.tasks[task.task_id]?.status).toBe('DONE');
    expect(state.orphans).toEqual({});
    expect(state.list.ids).toEqual([task.task_id]);
    expect(state.toasts).toHaveLength(1);
  });

  it('holds a PENDING event for an unknown task, keeping the newest event when they arrive out of order', () => {
    const task = makeTask({ status: 'PENDING', created_at: T0, updated_at: T0 });
    let state = run([...loaded([]), event(task, 'PROCESSING', T1), event(task, 'PENDING', T0)]);
    expect(state.orphans[task.task_id]?.status).toBe('PROCESSING');
    // The snapshot fetched by id (or the POST's answer) was read while it was still PENDING.
    state = run([{ type: 'taskLoaded', task }], state);
    expect(state.tasks[task.task_id]?.status).toBe('PROCESSING');
    expect(state.list.ids).toEqual([task.task_id]);
  });

  it('remembers when a retry was answered, for the timeline', () => {
    const failed = makeTask({ status: 'FAILED', created_at: T0, updated_at: T0, finished_at: T0, message: 'no message' });
    const retried: Task = { ...failed, status: 'PENDING', updated_at: T1, finished_at: null, message: null };
    const state = run([...loaded([failed]), { type: 'taskLoaded', task: retried }, event(failed, 'PENDING', T1)]);
    expect(state.tasks[failed.task_id]).toMatchObject({ status: 'PENDING', updated_at: T1 });
    expect(state.seen[failed.task_id]?.PENDING).toBe(T1);
  });

  it('remembers when processing was seen, for the timeline', () => {
    const task = makeTask({ status: 'PENDING', updated_at: T0 });
    const state = run([...loaded([task]), event(task, 'PROCESSING', T1), event(task, 'DONE', T1_SHORT, 'hi')]);
    expect(state.seen[task.task_id]?.PROCESSING).toBe(T1);
  });
});

describe('the loaded window', () => {
  it('places a new task at the top, and not one older than the last loaded row', () => {
    const older = makeTask({ created_at: '2026-11-28T10:00:00Z' });
    const newer = makeTask({ created_at: '2026-11-28T11:00:00Z' });
    let state = run(loaded([newer], 'cursor'));
    const fresh = makeTask({ created_at: '2026-11-28T12:00:00Z' });
    state = run([{ type: 'taskLoaded', task: fresh }, { type: 'taskLoaded', task: older }], state);
    expect(state.list.ids).toEqual([fresh.task_id, newer.task_id]);
    expect(state.tasks[older.task_id]).toBeDefined();
  });

  it('keeps tasks placed while a reload was in flight', () => {
    const a = makeTask({ created_at: '2026-11-28T10:00:00Z' });
    let state = run(loaded([a]));
    state = run([{ type: 'listRequested', mode: 'replace' }], state);
    const created = makeTask({ created_at: '2026-11-28T12:00:00Z' });
    state = run([{ type: 'taskLoaded', task: created }], state);
    state = run([{ type: 'listLoaded', mode: 'replace', tasks: [a], cursor: null }], state);
    expect(state.list.ids).toEqual([created.task_id, a.task_id]);
  });

  it('places a task created before the first page arrives, if the page leaves room for it', () => {
    const created = makeTask({ created_at: '2026-11-28T12:00:00Z' });
    const ancient = makeTask({ created_at: '2026-11-01T12:00:00Z' });
    const page = makeTask({ created_at: '2026-11-28T11:00:00Z' });
    let state = run([{ type: 'listRequested', mode: 'replace' }, { type: 'taskLoaded', task: created }, { type: 'taskLoaded', task: ancient }]);
    expect(state.list.ids).toEqual([created.task_id, ancient.task_id]);
    state = run([{ type: 'listLoaded', mode: 'replace', tasks: [page], cursor: 'more' }], state);
    // The ancient one belongs to a later page: "Load more" brings it, in its place.
    expect(state.list.ids).toEqual([created.task_id, page.task_id]);
  });

  it('appends older pages without duplicates', () => {
    const [a, b, c] = [12, 11, 10].map((h) => makeTask({ created_at: `2026-11-28T${h}:00:00Z` })) as [Task, Task, Task];
    let state = run(loaded([a, b], 'next'));
    state = run([{ type: 'listLoaded', mode: 'append', tasks: [b, c], cursor: null }], state);
    expect(state.list.ids).toEqual([a.task_id, b.task_id, c.task_id]);
    expect(state.list.cursor).toBeNull();
  });
});

describe('toasts', () => {
  it('toasts a terminal event once, even when it is delivered twice', () => {
    const task = makeTask({ status: 'PROCESSING', updated_at: T0 });
    const state = run([...loaded([task]), event(task, 'FAILED', T1, 'boom'), event(task, 'FAILED', T1, 'boom')]);
    expect(state.toasts).toEqual([expect.objectContaining({ taskId: task.task_id, status: 'FAILED', message: 'boom' })]);
  });

  it('does not toast a stale event', () => {
    const task = makeTask({ status: 'DONE', updated_at: T1, finished_at: T1 });
    const state = run([...loaded([task]), event(task, 'FAILED', T0, 'late')]);
    expect(state.toasts).toEqual([]);
  });
});

describe('visibleTasks', () => {
  it('filters by status and searches titles and ids', () => {
    const report = makeTask({ title: 'Nightly report', status: 'DONE' });
    const backup = makeTask({ title: 'Backup', status: 'FAILED' });
    const state = run(loaded([report, backup]));
    expect(visibleTasks(state, 'REPORT').map((t) => t.title)).toEqual(['Nightly report']);
    expect(visibleTasks(state, backup.task_id.slice(-6)).map((t) => t.title)).toEqual(['Backup']);
    const failedOnly = run([{ type: 'filterChanged', status: 'FAILED' }, ...loaded([backup])], state);
    expect(visibleTasks(failedOnly, '').map((t) => t.title)).toEqual(['Backup']);
  });

  it('shows a task found by its whole id even outside the loaded window', () => {
    const old = makeTask();
    const state = run([...loaded([], 'cursor'), { type: 'taskLoaded', task: old }]);
    expect(state.list.ids).toEqual([]);
    expect(visibleTasks(state, ` ${old.task_id.toUpperCase()} `)).toEqual([old]);
  });
});
