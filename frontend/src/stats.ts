// Counters and throughput computed in the browser from the tasks this page has loaded or seen
// change live: the API has no statistics endpoint to rely on.

import { toMicros } from './time';
import type { Task, TaskStatus } from './types';

export function countByStatus(tasks: Iterable<Task>): Record<TaskStatus, number> {
  const counts: Record<TaskStatus, number> = { PENDING: 0, PROCESSING: 0, DONE: 0, FAILED: 0 };
  for (const task of tasks) counts[task.status] += 1;
  return counts;
}

export interface MinuteBucket {
  /** Start of the minute, in epoch milliseconds. */
  start: number;
  done: number;
  failed: number;
}

/**
 * Tasks finished per wall-clock minute over the last `minutes` minutes, oldest first; the last
 * bucket is the current, partial minute.
 */
export function throughput(tasks: Iterable<Task>, nowMs: number, minutes = 15): MinuteBucket[] {
  const currentMinute = Math.floor(nowMs / 60_000) * 60_000;
  const first = currentMinute - (minutes - 1) * 60_000;
  const buckets: MinuteBucket[] = Array.from({ length: minutes }, (_, i) => ({
    start: first + i * 60_000,
    done: 0,
    failed: 0,
  }));
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
