// A task's history as timeline steps (created → processing → done/failed) with the time spent
// between them, from its timestamps, its attempts when the API sends them, and the events seen.

import { elapsedMicros } from './time';
import type { Attempt, Task, TaskStatus } from './types';

export interface TimelineStep {
  key: 'created' | 'processing' | 'finished';
  label: string;
  /** When the step happened; null when it has not happened or was not recorded. */
  at: string | null;
  state: 'done' | 'current' | 'upcoming';
  /** Time from the previous step to this one, in microseconds, when both ends are known. */
  sincePrevious: number | null;
  attempts: Attempt[];
}

export interface Timeline {
  steps: TimelineStep[];
  /** Created to finished, when finished. */
  total: number | null;
}

/**
 * The API keeps only the latest `updated_at`, so once a task is finished the moment it started
 * processing is known only from its attempts, or from a PROCESSING event this page saw; without
 * either the step is shown without a time rather than with a guess.
 */
export function buildTimeline(task: Task, seen: Partial<Record<TaskStatus, string>> = {}): Timeline {
  const attempts = task.attempts ?? [];
  const finished = task.status === 'DONE' || task.status === 'FAILED';
  const finishedAt = finished ? (task.finished_at ?? task.updated_at) : null;

  let processingAt: string | null = null;
  if (task.status !== 'PENDING') {
    processingAt =
      attempts[0]?.started_at ?? (task.status === 'PROCESSING' ? task.updated_at : (seen.PROCESSING ?? null));
  }

  const steps: TimelineStep[] = [
    { key: 'created', label: 'Created', at: task.created_at, state: 'done', sincePrevious: null, attempts: [] },
    {
      key: 'processing',
      label: attempts.length > 1 ? `Processing (${attempts.length} attempts)` : 'Processing',
      at: processingAt,
      state: task.status === 'PENDING' ? 'upcoming' : task.status === 'PROCESSING' ? 'current' : 'done',
      sincePrevious: elapsedMicros(task.created_at, processingAt),
      attempts,
    },
    {
      key: 'finished',
      label: finished ? (task.status === 'DONE' ? 'Done' : 'Failed') : 'Done or failed',
      at: finishedAt,
      state: finished ? 'done' : 'upcoming',
      sincePrevious: elapsedMicros(processingAt, finishedAt),
      attempts: [],
    },
  ];
  return { steps, total: elapsedMicros(task.created_at, finishedAt) };
}
