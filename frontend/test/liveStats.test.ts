// The live counters: a /stats snapshot plus the changes observed after it was requested, through
// the reducer as the app drives it. Each change counts once whichever source brings it first,
// nothing older than the snapshot counts, and a refresh re-bases without double counting.

import { describe, expect, it } from 'vitest';
import { applyTransition, transitionBetween, uuidV7Millis } from '../src/liveStats';
import { initialState, reducer, type Action, type DashboardState } from '../src/store';
import type { ServerStats, Task, TaskStatus } from '../src/types';
import { makeTask } from './fakes';

const REF_MS = Date.parse('2026-11-28T19:00:00Z');
const REF = REF_MS * 1000;
/** A timestamp `seconds` after the snapshot was requested. */
const after = (seconds: number): string => new Date(REF_MS + seconds * 1000).toISOString();
const MINUTE = REF_MS; // 19:00:00 starts a minute

function snapshot(counts: Partial<Record<TaskStatus, number>>, finished: ServerStats['finishedPerMinute'] = []): ServerStats {
  return { counts: { PENDING: 0, PROCESSING: 0, DONE: 0, FAILED: 0, ...counts }, finishedPerMinute: finished };
}

function run(actions: Action[], state: DashboardState = initialState()): DashboardState {
  return actions.reduce(reducer, state);
}

function based(stats: ServerStats, ref = REF): Action[] {
  return [
    { type: 'statsRequested', at: ref },
    { type: 'statsLoaded', stats, ref },
  ];
}

function event(task: Pick<Task, 'task_id'>, status: TaskStatus, updated_at: string): Action {
  return { type: 'event', event: { task_id: task.task_id, status, updated_at } };
}

/** A UUIDv7 stamped at `ms`, as the API makes task ids. */
function v7(ms: number, n = 1): string {
  const hex = ms.toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-7000-8000-${String(n).padStart(12, '0')}`;
}

const counts = (state: DashboardState) => state.stats.current?.counts;
const minutes = (state: DashboardState) => state.stats.current?.finishedPerMinute;

describe('live counters', () => {
  it('follows a task created elsewhere from its PENDING event to DONE, and charts it', () => {
    const id = v7(REF_MS + 500);
    const state = run([
      ...based(snapshot({ DONE: 5 })),
      event({ task_id: id }, 'PENDING', after(0.5)),
      event({ task_id: id }, 'PROCESSING', after(0.6)),
      event({ task_id: id }, 'DONE', after(0.7)),
    ]);
    expect(counts(state)).toEqual({ PENDING: 0, PROCESSING: 0, DONE: 6, FAILED: 0 });
    expect(minutes(state)).toEqual([{ start: MINUTE, done: 1, failed: 0 }]);
  });

  it('counts a duplicated or late event once', () => {
    const task = makeTask({ status: 'PROCESSING', created_at: after(-60), updated_at: after(-59) });
    const state = run([
      ...based(snapshot({ PROCESSING: 1 })),
      { type: 'listLoaded', mode: 'replace', tasks: [task], cursor: null },
      event(task, 'DONE', after(1)),
      event(task, 'DONE', after(1)),
      event(task, 'PROCESSING', after(-59)),
    ]);
    expect(counts(state)).toEqual({ PENDING: 0, PROCESSING: 0, DONE: 1, FAILED: 0 });
    expect(minutes(state)).toEqual([{ start: MINUTE, done: 1, failed: 0 }]);
  });

  it('ignores changes the snapshot already includes', () => {
    const task = makeTask({ status: 'PROCESSING', created_at: after(-60), updated_at: after(-59) });
    const state = run([
      { type: 'listLoaded', mode: 'replace', tasks: [task], cursor: null },
      ...based(snapshot({ DONE: 1 })),
      // Finished a moment before the snapshot was requested, delivered after its answer.
      event(task, 'DONE', after(-0.001)),
    ]);
    expect(counts(state)).toEqual({ PENDING: 0, PROCESSING: 0, DONE: 1, FAILED: 0 });
  });

  it('counts a retry once, whether its answer or its PENDING event comes first', () => {
    const failedAt = after(-30);
    const failed = makeTask({ status: 'FAILED', created_at: after(-31), updated_at: failedAt, finished_at: failedAt, message: 'no message' });
    const retried: Task = { ...failed, status: 'PENDING', updated_at: after(2), finished_at: null, message: null };
    const base: Action[] = [
      { type: 'listLoaded', mode: 'replace', tasks: [failed], cursor: null },
      ...based(snapshot({ FAILED: 1 }, [{ start: MINUTE - 60_000, done: 0, failed: 1 }])),
    ];
    const answerFirst = run([...base, { type: 'taskLoaded', task: retried }, event(failed, 'PENDING', after(2))]);
    const eventFirst = run([...base, event(failed, 'PENDING', after(2)), { type: 'taskLoaded', task: retried }]);
    for (const state of [answerFirst, eventFirst]) {
      expect(counts(state)).toEqual({ PENDING: 1, PROCESSING: 0, DONE: 0, FAILED: 0 });
      // The server clears finished_at on retry: the old failure leaves its minute.
      expect(minutes(state)).toEqual([{ start: MINUTE - 60_000, done: 0, failed: 0 }]);
    }
  });

  it('tells a new task from an older one it never saw by the time in its UUIDv7', () => {
    const older = { task_id: v7(REF_MS - 5000, 1) };
    const newer = { task_id: v7(REF_MS + 5000, 2) };
    const state = run([
      ...based(snapshot({ PENDING: 1, FAILED: 3 })),
      event(older, 'PROCESSING', after(6)), // was PENDING in the snapshot
      event(newer, 'PROCESSING', after(6)), // created after it: not in the snapshot at all
    ]);
    expect(counts(state)).toEqual({ PENDING: 0, PROCESSING: 2, DONE: 0, FAILED: 3 });
    expect(uuidV7Millis(newer.task_id)).toBe(REF_MS + 5000);
    expect(uuidV7Millis('00000000-0000-4000-8000-000000000001')).toBeNaN();
  });

  it('re-bases on a refresh: changes after the new request are added once more, older ones are not', () => {
    const a = { task_id: v7(REF_MS + 1000, 1) };
    const b = { task_id: v7(REF_MS + 1000, 2) };
    let state = run([...based(snapshot({})), event(a, 'PENDING', after(1)), event(b, 'PENDING', after(1))]);
    expect(counts(state)).toMatchObject({ PENDING: 2 });

    // A refresh is requested at +10 s; while it is in flight, `a` starts processing.
    const ref2 = REF + 10_000_000;
    state = run([{ type: 'statsRequested', at: ref2 }, event(a, 'PROCESSING', after(10.5))], state);
    expect(counts(state)).toMatchObject({ PENDING: 1, PROCESSING: 1 });
    // The server read the database before that: it has both PENDING.
    state = run([{ type: 'statsLoaded', stats: snapshot({ PENDING: 2 }), ref: ref2 }], state);
    expect(counts(state)).toMatchObject({ PENDING: 1, PROCESSING: 1 });
    expect(state.stats.log).toHaveLength(1);
  });

  it('keeps the last numbers, kept current by events, when a refresh fails', () => {
    const id = { task_id: v7(REF_MS + 1000) };
    const state = run([
      ...based(snapshot({ DONE: 2 })),
      { type: 'statsRequested', at: REF + 10_000_000 },
      { type: 'statsFailed', message: 'Cannot reach the API.' },
      event(id, 'PENDING', after(11)),
    ]);
    expect(counts(state)).toMatchObject({ PENDING: 1, DONE: 2 });
    expect(state.stats.error).toBe('Cannot reach the API.');
  });

  it('counts nothing before any snapshot was asked for', () => {
    const state = run([event({ task_id: v7(REF_MS) }, 'PENDING', after(0))]);
    expect(state.stats).toEqual(initialState().stats);
  });
});

describe('transitionBetween and applyTransition', () => {
  it('sees no change in a stale or same-status state', () => {
    const before = { status: 'DONE' as const, updated_at: after(2) };
    expect(transitionBetween('x', before, { status: 'PROCESSING', updated_at: after(1) })).toBeNull();
    expect(transitionBetween('x', before, { status: 'DONE', updated_at: after(3) })).toBeNull();
    expect(transitionBetween('x', before, undefined)).toBeNull();
  });

  it('never counts below zero', () => {
    const next = applyTransition(snapshot({}), { to: 'DONE', at: REF + 1, prior: { status: 'PROCESSING', at: REF - 1 }, createdAt: REF - 2 }, REF);
    expect(next.counts).toEqual({ PENDING: 0, PROCESSING: 0, DONE: 1, FAILED: 0 });
  });
});
