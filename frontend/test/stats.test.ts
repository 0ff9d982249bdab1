// The overview's numbers: the server's per-minute counts laid on the chart's window, the fallback
// counted over loaded tasks, and which of the two is shown.

import { describe, expect, it } from 'vitest';
import { initialLiveStats, statsFailed, statsLoaded, statsRequested } from '../src/liveStats';
import { countByStatus, minuteWindow, overviewNumbers, throughput } from '../src/stats';
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

describe('throughput (the fallback)', () => {
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

describe('minuteWindow', () => {
  it("lays the server's minutes on the last 15, zero where the server left a minute out", () => {
    const at = (time: string) => Date.parse(`2026-11-28T${time}Z`);
    const buckets = minuteWindow(
      [
        { start: at('18:10:00'), done: 9, failed: 9 }, // older than the window
        { start: at('18:26:00'), done: 1, failed: 0 },
        { start: at('18:40:00'), done: 3, failed: 2 },
      ],
      NOW,
    );
    expect(buckets).toHaveLength(15);
    expect(buckets[0]).toEqual({ start: at('18:26:00'), done: 1, failed: 0 });
    expect(buckets[1]).toEqual({ start: at('18:27:00'), done: 0, failed: 0 });
    expect(buckets[14]).toEqual({ start: at('18:40:00'), done: 3, failed: 2 });
  });
});

describe('overviewNumbers', () => {
  const tasks = [makeTask({ status: 'DONE', finished_at: '2026-11-28T18:40:00Z' })];
  const server = { counts: { PENDING: 4, PROCESSING: 3, DONE: 200, FAILED: 10 }, finishedPerMinute: [] };

  it('shows nothing until the first answer, then the server numbers', () => {
    const waiting = statsRequested(initialLiveStats(), NOW * 1000);
    expect(overviewNumbers(waiting, tasks, NOW)).toMatchObject({ source: 'waiting', counts: null });
    const loaded = statsLoaded(waiting, server, NOW * 1000);
    expect(overviewNumbers(loaded, tasks, NOW)).toMatchObject({ source: 'server', counts: server.counts });
    // A later failure keeps the server numbers.
    expect(overviewNumbers(statsFailed(loaded, 'down'), tasks, NOW).source).toBe('server');
  });

  it('falls back to the loaded tasks when /stats never answered', () => {
    const failed = statsFailed(statsRequested(initialLiveStats(), NOW * 1000), 'The API answered 404 Not Found.');
    const numbers = overviewNumbers(failed, tasks, NOW);
    expect(numbers.source).toBe('loaded');
    expect(numbers.counts).toEqual({ PENDING: 0, PROCESSING: 0, DONE: 1, FAILED: 0 });
    expect(numbers.buckets[14]).toMatchObject({ done: 1 });
  });
});
