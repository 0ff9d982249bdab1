// A task's history as timeline steps (created → processing → done/failed, and again after each
// retry) with the time between them, from its timestamps, its attempts when the API sends them,
// and the events this page saw.

import { compareTimestamps, elapsedMicros } from './time';
import type { Attempt, Task, TaskStatus } from './types';

export interface TimelineStep {
  key: 'created' | 'processing' | 'finished' | 'retried';
  /** Unique in the timeline: a retried task has a processing and a finished step per run. */
  id: string;
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
  /** How many times an operator sent the task back after it failed. */
  retries: number;
}

/**
 * The attempts grouped by run: a run ends with an attempt that ended the task (DONE or FAILED);
 * the next attempt after a FAILED one belongs to a retry. RETRY outcomes (transient failures the
 * worker tried again) stay in their run.
 */
export function splitRuns(attempts: Attempt[]): Attempt[][] {
  const runs: Attempt[][] = [[]];
  for (const attempt of attempts) {
    const run = runs[runs.length - 1];
    const last = run?.[run.length - 1];
    if (run === undefined || (last !== undefined && (last.outcome === 'FAILED' || last.outcome === 'DONE'))) runs.push([attempt]);
    else run.push(attempt);
  }
  return runs;
}

/** `candidate` when it lies after `after` (or `after` is unknown), else null: never a guess. */
function ifAfter(candidate: string | null | undefined, after: string | null): string | null {
  if (candidate === null || candidate === undefined) return null;
  return after === null || compareTimestamps(candidate, after) > 0 ? candidate : null;
}

/**
 * The API keeps only the latest `updated_at`, so once a task is finished the moment it started
 * processing is known only from its attempts, or from a PROCESSING event this page saw; without
 * either the step is shown without a time rather than with a guess. Likewise the moment of a
 * retry is known only while the task is PENDING, or from the event or answer this page saw.
 */
export function buildTimeline(task: Task, seen: Partial<Record<TaskStatus, string>> = {}): Timeline {
  const finished = task.status === 'DONE' || task.status === 'FAILED';
  const runs = splitRuns(task.attempts ?? []);
  const lastRun = runs[runs.length - 1];
  const lastAttempt = lastRun?.[lastRun.length - 1];
  // Sent back after its last failure, and not picked up yet (or the snapshot predates that).
  if (!finished && lastAttempt?.outcome === 'FAILED') runs.push([]);

  const steps: TimelineStep[] = [];
  const add = (step: Omit<TimelineStep, 'sincePrevious' | 'id'>, run: number): void => {
    const previous = steps[steps.length - 1];
    steps.push({ ...step, id: `${step.key}-${run}`, sincePrevious: elapsedMicros(previous?.at, step.at) });
  };
  add({ key: 'created', label: 'Created', at: task.created_at, state: 'done', attempts: [] }, 0);

  runs.forEach((run, index) => {
    const isLast = index === runs.length - 1;
    const previousEnd = steps[steps.length - 1]?.at ?? null;
    if (index > 0) {
      let at = isLast && task.status === 'PENDING' ? task.updated_at : ifAfter(seen.PENDING, previousEnd);
      // A PENDING seen after this run began belongs to a later retry.
      const start = run[0]?.started_at;
      if (at !== null && start !== undefined && compareTimestamps(at, start) > 0) at = null;
      add({ key: 'retried', label: 'Retried', at, state: 'done', attempts: [] }, index);
    }
    const since = steps[steps.length - 1]?.at ?? previousEnd;

    let processingAt: string | null = run[0]?.started_at ?? null;
    if (processingAt === null && isLast) {
      if (task.status === 'PROCESSING') processingAt = task.updated_at;
      else if (finished) processingAt = ifAfter(seen.PROCESSING, since);
    }
    add(
      {
        key: 'processing',
        label: run.length > 1 ? `Processing (${run.length} attempts)` : 'Processing',
        at: processingAt,
        state: !isLast || finished ? 'done' : task.status === 'PROCESSING' ? 'current' : 'upcoming',
        attempts: run,
      },
      index,
    );

    if (isLast) {
      add(
        {
          key: 'finished',
          label: finished ? (task.status === 'DONE' ? 'Done' : 'Failed') : 'Done or failed',
          at: finished ? (task.finished_at ?? task.updated_at) : null,
          state: finished ? 'done' : 'upcoming',
          attempts: [],
        },
        index,
      );
    } else {
      add({ key: 'finished', label: 'Failed', at: run[run.length - 1]?.finished_at ?? null, state: 'done', attempts: [] }, index);
    }
  });

  const end = finished ? (task.finished_at ?? task.updated_at) : null;
  return { steps, total: elapsedMicros(task.created_at, end), retries: runs.length - 1 };
}
