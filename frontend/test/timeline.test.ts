// Timeline steps: times between steps from attempts or events seen, nothing invented, and one
// run of steps per retry.

import { describe, expect, it } from 'vitest';
import { buildTimeline, splitRuns } from '../src/timeline';
import type { Attempt } from '../src/types';
import { makeTask } from './fakes';

const at = (time: string) => `2026-11-28T18:${time}Z`;

function attempt(n: number, start: string, end: string | null, outcome: Attempt['outcome'], error: string | null = null): Attempt {
  return { attempt: n, worker: 'w1', started_at: at(start), finished_at: end === null ? null : at(end), outcome, error };
}

describe('buildTimeline', () => {
  const base = { created_at: at('40:00'), updated_at: at('40:00.300'), finished_at: at('40:00.300') };

  it('takes the processing time from an event seen live', () => {
    const task = makeTask({ ...base, status: 'DONE' });
    const { steps, total, retries } = buildTimeline(task, { PROCESSING: at('40:00.100') });
    expect(steps.map((s) => [s.key, s.state, s.sincePrevious])).toEqual([
      ['created', 'done', null],
      ['processing', 'done', 100_000],
      ['finished', 'done', 200_000],
    ]);
    expect(total).toBe(300_000);
    expect(retries).toBe(0);
  });

  it('says nothing it does not know', () => {
    const { steps } = buildTimeline(makeTask({ ...base, status: 'FAILED' }));
    expect(steps[1]).toMatchObject({ at: null, state: 'done', sincePrevious: null });
    expect(steps[2]).toMatchObject({ label: 'Failed', sincePrevious: null });
  });

  it('shows what is still to come for a pending task', () => {
    const { steps, total } = buildTimeline(makeTask({ status: 'PENDING' }));
    expect(steps.map((s) => s.state)).toEqual(['done', 'upcoming', 'upcoming']);
    expect(total).toBeNull();
  });

  it('keeps transient retries in one processing step, with every attempt', () => {
    const task = makeTask({
      ...base,
      status: 'DONE',
      updated_at: at('40:03'),
      finished_at: at('40:03'),
      attempts: [attempt(1, '40:00.050', '40:00.100', 'RETRY', 'simulated transient failure 1 of 1'), attempt(2, '40:02', '40:03', 'DONE')],
    });
    const { steps } = buildTimeline(task);
    expect(steps.map((s) => s.key)).toEqual(['created', 'processing', 'finished']);
    expect(steps[1]).toMatchObject({ label: 'Processing (2 attempts)', at: at('40:00.050'), sincePrevious: 50_000 });
    expect(steps[1]?.attempts.map((a) => a.outcome)).toEqual(['RETRY', 'DONE']);
  });

  it('adds a run of steps for each retry after a failure', () => {
    const first = attempt(1, '40:00.050', '40:00.060', 'FAILED', 'payload has no `message` field');
    const failedAgain = makeTask({
      created_at: at('40:00'),
      status: 'FAILED',
      updated_at: at('41:00.020'),
      finished_at: at('41:00.020'),
      attempts: [first, attempt(2, '41:00.010', '41:00.020', 'FAILED', 'payload has no `message` field')],
    });
    const { steps, retries, total } = buildTimeline(failedAgain, { PENDING: at('41:00') });
    expect(steps.map((s) => `${s.key}:${s.state}`)).toEqual([
      'created:done',
      'processing:done',
      'finished:done',
      'retried:done',
      'processing:done',
      'finished:done',
    ]);
    expect(steps.map((s) => s.at)).toEqual([at('40:00'), at('40:00.050'), at('40:00.060'), at('41:00'), at('41:00.010'), at('41:00.020')]);
    expect(steps[4]?.sincePrevious).toBe(10_000);
    expect(steps.map((s) => s.id)).toEqual(['created-0', 'processing-0', 'finished-0', 'retried-1', 'processing-1', 'finished-1']);
    expect(retries).toBe(1);
    expect(total).toBe(60_020_000);

    // Sent back, not picked up yet: the retry's time is the task's updated_at.
    const pending = makeTask({ created_at: at('40:00'), status: 'PENDING', updated_at: at('41:00'), attempts: [first] });
    const waiting = buildTimeline(pending).steps;
    expect(waiting.map((s) => `${s.key}:${s.state}`).slice(3)).toEqual(['retried:done', 'processing:upcoming', 'finished:upcoming']);
    expect(waiting[3]?.at).toBe(at('41:00'));
  });

  it('does not take a PENDING seen before the failure as the retry time', () => {
    const task = makeTask({
      created_at: at('40:00'),
      status: 'PROCESSING',
      updated_at: at('41:00.010'),
      attempts: [attempt(1, '40:00.050', '40:00.060', 'FAILED'), attempt(2, '41:00.010', null, null)],
    });
    const { steps } = buildTimeline(task, { PENDING: at('40:00') });
    expect(steps[3]).toMatchObject({ key: 'retried', at: null });
    expect(steps[4]).toMatchObject({ key: 'processing', state: 'current', at: at('41:00.010') });
  });
});

describe('splitRuns', () => {
  it('starts a run after each attempt that ended the task', () => {
    const runs = splitRuns([attempt(1, '40:00', '40:01', 'RETRY'), attempt(2, '40:02', '40:03', 'FAILED'), attempt(3, '41:00', null, null)]);
    expect(runs.map((run) => run.map((a) => a.attempt))).toEqual([[1, 2], [3]]);
    expect(splitRuns([])).toEqual([[]]);
  });
});
