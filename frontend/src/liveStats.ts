// Live counters and per-minute throughput: the last `GET /stats` snapshot plus the status changes
// this page observed after that snapshot was requested, re-based on every refresh so that no
// change is counted twice and any error lasts only until the next refresh.

import { compareTimestamps, toMicros } from './time';
import { isTerminal, type MinuteCount, type ServerStats, type TaskStatus } from './types';

/** A task's state as far as counting goes: from a snapshot (with created_at) or an event. */
export interface Known {
  status: TaskStatus;
  updated_at: string;
  created_at?: string;
}

/** One status change the page observed, from an event or a newer REST snapshot. */
export interface Transition {
  to: TaskStatus;
  /** The change's `updated_at`, in microseconds (server clock). */
  at: number;
  /** The state the page knew the task in just before; null for a task it had not seen. */
  prior: { status: TaskStatus; at: number } | null;
  /** The task's creation, in microseconds; NaN when unknown. */
  createdAt: number;
}

export interface LiveStats {
  /** The last snapshot with the changes observed since applied; null until the first answer. */
  current: ServerStats | null;
  /** When the request behind `current` was sent, in microseconds (this browser's clock). */
  ref: number | null;
  /** When the request in flight was sent, if one is. */
  requestedAt: number | null;
  /** Changes newer than `ref` (or than the request in flight): re-applied onto the next snapshot. */
  log: Transition[];
  /** Why the last refresh failed; null once one succeeds. */
  error: string | null;
}

/** Changes kept for re-basing, at most; ten seconds between refreshes needs far fewer. */
const MAX_LOG = 2000;

export function initialLiveStats(): LiveStats {
  return { current: null, ref: null, requestedAt: null, log: [], error: null };
}

// What a task most likely was before reaching `status`, when the page did not see it: FAILED
// tasks come back to PENDING only through a retry, and DONE/FAILED come from processing.
const PREDECESSOR: Record<TaskStatus, TaskStatus> = {
  PENDING: 'FAILED',
  PROCESSING: 'PENDING',
  DONE: 'PROCESSING',
  FAILED: 'PROCESSING',
};

/**
 * The milliseconds a UUIDv7 starts with (task ids are v7, stamped at creation), or NaN for
 * another kind of id. It tells whether a task first seen in an event existed at snapshot time.
 */
export function uuidV7Millis(id: string): number {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex) || hex[12] !== '7') return Number.NaN;
  return parseInt(hex.slice(0, 12), 16);
}

/**
 * The change from `before` to `after` worth counting, or null: none when nothing is known after,
 * when the status did not change, or when `after` is not newer (a stale or repeated message).
 */
export function transitionBetween(taskId: string, before: Known | undefined, after: Known | undefined): Transition | null {
  if (after === undefined) return null;
  if (before !== undefined && (before.status === after.status || compareTimestamps(after.updated_at, before.updated_at) <= 0)) {
    return null;
  }
  const at = toMicros(after.updated_at);
  if (Number.isNaN(at)) return null;
  const created = after.created_at ?? before?.created_at;
  return {
    to: after.status,
    at,
    prior: before === undefined ? null : { status: before.status, at: toMicros(before.updated_at) },
    createdAt: created !== undefined ? toMicros(created) : uuidV7Millis(taskId) * 1000,
  };
}

function minuteOf(micros: number): number {
  return Math.floor(micros / 60_000_000) * 60_000;
}

/** `minutes` with one field of the minute starting at `start` moved by `delta` (never below 0). */
function bump(minutes: MinuteCount[], start: number, field: 'done' | 'failed', delta: number): MinuteCount[] {
  const existing = minutes.find((minute) => minute.start === start);
  if (existing === undefined) {
    if (delta < 0) return minutes;
    return [...minutes, { start, done: 0, failed: 0, [field]: delta }].sort((a, b) => a.start - b.start);
  }
  return minutes.map((minute) => (minute === existing ? { ...minute, [field]: Math.max(0, minute[field] + delta) } : minute));
}

/** The numbers after one change that happened after the snapshot requested at `ref`. */
export function applyTransition(stats: ServerStats, change: Transition, ref: number): ServerStats {
  let from: TaskStatus | null;
  if (change.prior !== null) from = change.prior.status;
  // Created after the snapshot was taken: it was not counted at all.
  else if (change.createdAt > ref) from = null;
  // A PENDING task of unknown age is most likely new (retries are rare).
  else if (Number.isNaN(change.createdAt)) from = change.to === 'PENDING' ? null : PREDECESSOR[change.to];
  else from = PREDECESSOR[change.to];

  const counts = { ...stats.counts, [change.to]: stats.counts[change.to] + 1 };
  if (from !== null) counts[from] = Math.max(0, counts[from] - 1);

  let minutes = stats.finishedPerMinute;
  if (change.to === 'DONE' || change.to === 'FAILED') {
    minutes = bump(minutes, minuteOf(change.at), change.to === 'DONE' ? 'done' : 'failed', 1);
  }
  // A retried task no longer counts as finished in its old minute (the server clears finished_at).
  if (from !== null && isTerminal(from) && change.prior !== null && !Number.isNaN(change.prior.at)) {
    minutes = bump(minutes, minuteOf(change.prior.at), from === 'DONE' ? 'done' : 'failed', -1);
  }
  return { counts, finishedPerMinute: minutes };
}

export function statsRequested(stats: LiveStats, at: number): LiveStats {
  return { ...stats, requestedAt: at };
}

/**
 * A fresh snapshot, requested at `ref`: it already includes every change before `ref`, so only the
 * changes observed after `ref` are applied on top, and older ones are forgotten.
 */
export function statsLoaded(stats: LiveStats, snapshot: ServerStats, ref: number): LiveStats {
  const log = stats.log.filter((change) => change.at > ref);
  return {
    current: log.reduce((sum, change) => applyTransition(sum, change, ref), snapshot),
    ref,
    requestedAt: null,
    log,
    error: null,
  };
}

/** A failed refresh: the last snapshot (kept current by events) stays, with the reason. */
export function statsFailed(stats: LiveStats, message: string): LiveStats {
  return { ...stats, requestedAt: null, error: message };
}

/** Counts a change observed live, and keeps it for the next re-base. */
export function observe(stats: LiveStats, change: Transition): LiveStats {
  const floor = Math.min(stats.ref ?? Infinity, stats.requestedAt ?? Infinity);
  // Older than every snapshot there is or will be: already counted by the server.
  if (floor === Infinity || change.at <= floor) return stats;
  const log = [...stats.log, change].slice(-MAX_LOG);
  if (stats.current === null || stats.ref === null || change.at <= stats.ref) return { ...stats, log };
  return { ...stats, log, current: applyTransition(stats.current, change, stats.ref) };
}
