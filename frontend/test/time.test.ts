// Timestamp parsing across precisions, ordering, and duration formatting.

import { describe, expect, it } from 'vitest';
import { compareTimestamps, formatDuration, toMicros } from '../src/time';

describe('toMicros', () => {
  it('keeps microseconds that Date.parse would drop', () => {
    expect(toMicros('2026-11-28T18:40:37.130860Z') - toMicros('2026-11-28T18:40:37.130559Z')).toBe(301);
  });

  it('reads any precision the server may write', () => {
    const whole = toMicros('2026-11-28T18:40:37Z');
    expect(toMicros('2026-11-28T18:40:37.13Z')).toBe(whole + 130_000);
    expect(toMicros('2026-11-28T18:40:37.130Z')).toBe(whole + 130_000);
    expect(toMicros('2026-11-28T18:40:37.130000Z')).toBe(whole + 130_000);
    expect(toMicros('2026-11-28T18:40:37.130000999Z')).toBe(whole + 130_000);
    expect(toMicros('2026-11-28T19:40:37.5+01:00')).toBe(whole + 500_000);
  });

  it('is NaN for what is not RFC 3339', () => {
    expect(toMicros('yesterday')).toBeNaN();
    expect(toMicros('2026-11-28 18:40:37Z')).toBeNaN();
  });
});

describe('compareTimestamps', () => {
  it('orders by time where string comparison would not', () => {
    // As strings ".9Z" > ".130860Z", yet it is later only by time: 900 ms vs 130 ms.
    expect('2026-11-28T18:40:37.9Z' > '2026-11-28T18:40:37.130860Z').toBe(true);
    expect(compareTimestamps('2026-11-28T18:40:37Z', '2026-11-28T18:40:37.000001Z')).toBeLessThan(0);
    expect(compareTimestamps('2026-11-28T18:40:37.5Z', '2026-11-28T18:40:37.500000Z')).toBe(0);
  });

  it('treats an unreadable timestamp as the oldest', () => {
    expect(compareTimestamps('garbage', '2026-11-28T18:40:37Z')).toBeLessThan(0);
    expect(compareTimestamps('2026-11-28T18:40:37Z', 'garbage')).toBeGreaterThan(0);
  });
});

describe('formatDuration', () => {
  it('picks a readable unit', () => {
    expect(formatDuration(850)).toBe('850 µs');
    expect(formatDuration(12_400)).toBe('12 ms');
    expect(formatDuration(1_520_000)).toBe('1.5 s');
    expect(formatDuration(184_000_000)).toBe('3 min 4 s');
    expect(formatDuration(-5)).toBe('0 µs');
  });
});
