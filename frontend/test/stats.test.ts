// Counters, per-minute throughput buckets and timeline steps.

import { describe, expect, it } from 'vitest';
import { countByStatus, throughput } from '../src/stats';
import { buildTimeline } from '../src/timeline';
import { makeTask } from './fakes';

const NOW = Date.parse('2026-11-28T18:40:30Z');

describe('countByStatus', () => {
  it('counts every status, zero included', () => {
    expect(countByStatus([makeTask({ status: 'DONE' }), makeTask({ status: 'DONE' }), makeTask({ status: 'FAILED' })])).toEqual({
      PENDING: 0,
      PROCESSING: 0,
      DONE: 2,
      FAILED: 1,
    });
  });
});

describe('throughput', () => {
  it('buckets finished tasks by wall-clock minute over the last 15, oldest first', () => {
    const finished = (status: 'DONE' | 'FAILED', at: string) => makeTask({ status, finished_at: at, updated_at: at });
    const buckets = throughput(
      [
        finished('DONE', '2026-11-28T18:40:01Z'), // current minute
        finished('DONE', '2026-11-28T18:40:29.999999Z'),
        finished('FAILED', '2026-11-28T18:39:59Z'), // previous minute
        finished('DONE', '2026-11-28T18:26:00Z'), // first bucket
        finished('DONE', '2026-11-28T18:25:59Z'), // too old
        makeTask({ status: 'PROCESSING', updated_at: '2026-11-28T18:40:00Z' }), // not finished
      ],
      NOW,
    );
    expect(buckets).toHaveLength(15);
    expect(buckets[14]).toEqual({ start: Date.parse('2026-11-28T18:40:00Z'), done: 2, failed: 0 });
    expect(buckets[13]).toMatchObject({ done: 0, failed: 1 });
    expect(buckets[0]).toEqual({ start: Date.parse('2026-11-28T18:26:00Z'), done: 1, failed: 0 });
    expect(buckets.reduce((sum, b) => sum + b.done + b.failed, 0)).toBe(4);
  });
});

describe('buildTimeline', () => {
  const base = { created_at: '2026-11-28T18:40:00Z', updated_at: '2026-11-28T18:40:00.300Z', finished_at: '2026-11-28T18:40:00.300Z' };

  it('takes the processing time from an event seen live', () => {
    const task = makeTask({ ...base, status: 'DONE' });
    const { steps, total } = buildTimeline(task, { PROCESSING: '2026-11-28T18:40:00.100Z' });
    expect(steps.map((s) => [s.key, s.state, s.sincePrevious])).toEqual([
      ['created', 'done', null],
      ['processing', 'done', 100_000],
      ['finished', 'done', 200_000],
    ]);
    expect(total).toBe(300_000);
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
});
