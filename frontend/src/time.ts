// Timestamps: RFC 3339 parsed to integer microseconds (so events compare exactly whatever their
// precision), and the human formats of times and durations.

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Microseconds since the Unix epoch, or NaN when `timestamp` is not RFC 3339.
 *
 * The server writes as many fraction digits as it needs (".130860Z", ".13Z", none at all), so
 * strings do not compare in time order, and Date.parse keeps only milliseconds: two events 300 µs
 * apart would look simultaneous. The seconds go through Date.parse and the fraction is added as an
 * integer; microseconds since 1970 stay below 2^53, so the number is exact.
 */
export function toMicros(timestamp: string): number {
  const match = RFC3339.exec(timestamp.toUpperCase());
  if (!match) return Number.NaN;
  const [, seconds, fraction = '', zone] = match;
  const millis = Date.parse(`${seconds}${zone}`);
  if (Number.isNaN(millis)) return Number.NaN;
  // Digits past microseconds are dropped: the server never writes them, and they would not fit.
  return millis * 1000 + Number(fraction.padEnd(6, '0').slice(0, 6));
}

/**
 * Orders two timestamps: negative when `a` is earlier, 0 when equal, positive when later. A
 * timestamp that cannot be parsed counts as older than any valid one, so garbage never wins.
 */
export function compareTimestamps(a: string, b: string): number {
  const left = toMicros(a);
  const right = toMicros(b);
  if (Number.isNaN(left) || Number.isNaN(right)) {
    return Number.isNaN(left) ? (Number.isNaN(right) ? 0 : -1) : 1;
  }
  return left - right;
}

/** Microseconds from `from` to `to`, or null when either is missing or unreadable. */
export function elapsedMicros(from: string | null | undefined, to: string | null | undefined): number | null {
  if (!from || !to) return null;
  const span = toMicros(to) - toMicros(from);
  return Number.isNaN(span) ? null : span;
}

/** "850 µs", "12 ms", "1.5 s", "3 min 4 s", "2 h 5 min". */
export function formatDuration(micros: number): string {
  // Negative spans come from clock skew between this browser and the server: show them as zero.
  const us = Math.max(0, micros);
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${Math.round(us / 1000)} ms`;
  const seconds = us / 1_000_000;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateAndTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

// Steps of one task are often milliseconds apart: the timeline shows them.
const timeOfDayMs = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  fractionalSecondDigits: 3,
});

/**
 * Local time of day for today's timestamps, date and time for older ones; `precise` adds
 * milliseconds to the time of day.
 */
export function formatTimestamp(timestamp: string, { precise = false, now = new Date() } = {}): string {
  const micros = toMicros(timestamp);
  if (Number.isNaN(micros)) return timestamp;
  const date = new Date(Math.floor(micros / 1000));
  if (date.toDateString() !== now.toDateString()) return dateAndTime.format(date);
  return (precise ? timeOfDayMs : timeOfDay).format(date);
}
