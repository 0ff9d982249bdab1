// The overview's numbers: counts per status and tasks finished per minute, from the server's
// `GET /stats` when it answers, else (the fallback) from the tasks this page has loaded.

import type { LiveStats } from './liveStats';
import { toMicros } from './time';
import type { MinuteCount, Task, TaskStatus } from './types';

export type MinuteBucket = MinuteCount;

export interface OverviewNumbers {
  /**
   * `server`: the whole database; `loaded`: only what this page has loaded or seen (the fallback
   * when `/stats` fails); `waiting`: the first `/stats` answer has not come yet.
   */
  source: 'server' | 'loaded' | 'waiting';
  /** Null while waiting. */
  counts: Record<TaskStatus, number> | null;
  /** The last `minutes` wall-clock minutes, oldest first; the last one is the current minute. */
  buckets: MinuteBucket[];
}

export function countByStatus(tasks: Iterable<Task>): Record<TaskStatus, number> {
  const counts: Record<TaskStatus, number> = { PENDING: 0, PROCESSING: 0, DONE: 0, FAILED: 0 };
  for (const task of tasks) counts[task.status] += 1;
  return counts;
}

/** Empty buckets for the last `minutes` minutes up to the one holding `nowMs`. */
function emptyWindow(nowMs: number, minutes: number): MinuteBucket[] {
  const first = Math.floor(nowMs / 60_000) * 60_000 - (minutes - 1) * 60_000;
  return Array.from({ length: minutes }, (_, i) => ({ start: first + i * 60_000, done: 0, failed: 0 }));
}

/** The server's per-minute counts laid on the last `minutes` minutes; missing minutes are zero. */
export function minuteWindow(counted: MinuteCount[], nowMs: number, minutes = 15): MinuteBucket[] {
  const byStart = new Map(counted.map((minute) => [minute.start, minute]));
  return emptyWindow(nowMs, minutes).map((bucket) => {
    const found = byStart.get(bucket.start);
    return found === undefined ? bucket : { ...bucket, done: found.done, failed: found.failed };
  });
}

/**
 * Tasks finished per wall-clock minute over the last `minutes` minutes, oldest first, counted over
 * `tasks`; the last bucket is the current, partial minute.
 */
export function throughput(tasks: Iterable<Task>, nowMs: number, minutes = 15): MinuteBucket[] {
  const buckets = emptyWindow(nowMs, minutes);
  const first = buckets[0]?.start ?? 0;
  for (const task of tasks) {
    if (task.status !== 'DONE' && task.status !== 'FAILED') continue;
    const finishedMs = toMicros(task.finished_at ?? task.updated_at) / 1000;
    if (Number.isNaN(finishedMs)) continue;
    const bucket = buckets[Math.floor((finishedMs - first) / 60_000)];
    // Outside the window (or in the future, from clock skew): not counted.
    if (bucket === undefined || finishedMs > nowMs + 60_000) continue;
    if (task.status === 'DONE') bucket.done += 1;
    else bucket.failed += 1;
  }
  return buckets;
}

/**
 * The server's numbers (kept current by live events) when there are some; before the first answer,
 * nothing rather than a partial count that would jump; after a failure, the fallback.
 */
export function overviewNumbers(live: LiveStats, tasks: Task[], nowMs: number, minutes = 15): OverviewNumbers {
  if (live.current !== null) {
    return { source: 'server', counts: live.current.counts, buckets: minuteWindow(live.current.finishedPerMinute, nowMs, minutes) };
  }
  if (live.error === null) return { source: 'waiting', counts: null, buckets: emptyWindow(nowMs, minutes) };
  return { source: 'loaded', counts: countByStatus(tasks), buckets: throughput(tasks, nowMs, minutes) };
}
