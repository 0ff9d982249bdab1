// Decoding of untrusted JSON from the REST API and the WebSocket into typed values: the one place
// that looks at `unknown`, so the rest of the code can rely on the types.

import { toMicros } from './time';
import {
  STATUSES,
  type Attempt,
  type JsonObject,
  type MinuteCount,
  type ServerStats,
  type StatusEvent,
  type Task,
  type TaskStatus,
} from './types';

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isJsonObject(value: unknown): value is JsonObject {
  // JSON.parse only yields JSON values, so a plain object from it is a JsonObject.
  return isRecord(value);
}

export function isStatus(value: unknown): value is TaskStatus {
  return typeof value === 'string' && (STATUSES as readonly string[]).includes(value);
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function decodeAttempt(value: unknown): Attempt | null {
  if (!isRecord(value) || typeof value.started_at !== 'string') return null;
  const outcome = value.outcome;
  return {
    attempt: typeof value.attempt === 'number' ? value.attempt : 0,
    started_at: value.started_at,
    finished_at: stringOrNull(value.finished_at),
    outcome: outcome === 'DONE' || outcome === 'FAILED' || outcome === 'RETRY' ? outcome : null,
    error: stringOrNull(value.error),
    worker: stringOrNull(value.worker),
  };
}

/** A task from the REST API, or null when the value is not one (missing id, unknown status…). */
export function decodeTask(value: unknown): Task | null {
  if (!isRecord(value)) return null;
  const { task_id, title, status, created_at, updated_at } = value;
  if (
    typeof task_id !== 'string' ||
    typeof title !== 'string' ||
    !isStatus(status) ||
    typeof created_at !== 'string' ||
    typeof updated_at !== 'string'
  ) {
    return null;
  }
  const task: Task = {
    task_id,
    title,
    payload: isJsonObject(value.payload) ? value.payload : null,
    status,
    created_at,
    updated_at,
    finished_at: stringOrNull(value.finished_at),
    message: stringOrNull(value.message),
  };
  // `attempts` is newer than the rest of the API: keep it absent when the server does not send it.
  if (Array.isArray(value.attempts)) {
    task.attempts = value.attempts.map(decodeAttempt).filter((a): a is Attempt => a !== null);
  }
  return task;
}

function count(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : null;
}

function decodeMinute(value: unknown): MinuteCount | null {
  if (!isRecord(value) || typeof value.minute !== 'string') return null;
  const micros = toMicros(value.minute);
  const done = count(value.done);
  const failed = count(value.failed);
  if (Number.isNaN(micros) || done === null || failed === null) return null;
  // Floored to the minute: the chart's buckets are keyed by the minute's first millisecond.
  return { start: Math.floor(micros / 60_000_000) * 60_000, done, failed };
}

/** `GET /stats`, or null when the answer lacks a count for some status. */
export function decodeStats(value: unknown): ServerStats | null {
  if (!isRecord(value) || !isRecord(value.counts)) return null;
  const { counts } = value;
  const [PENDING, PROCESSING, DONE, FAILED] = [counts.PENDING, counts.PROCESSING, counts.DONE, counts.FAILED].map(count);
  if (PENDING == null || PROCESSING == null || DONE == null || FAILED == null) return null;
  const minutes = Array.isArray(value.finished_per_minute) ? value.finished_per_minute : [];
  return {
    counts: { PENDING, PROCESSING, DONE, FAILED },
    finishedPerMinute: minutes.map(decodeMinute).filter((minute): minute is MinuteCount => minute !== null),
  };
}

export type ServerMessage =
  | { kind: 'status'; event: StatusEvent }
  | { kind: 'resync'; reason: string };

/** One WebSocket text frame, or null when it is neither a status event nor a resync notice. */
export function decodeServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(value)) return null;
  if (value.event === 'resync') {
    return { kind: 'resync', reason: typeof value.reason === 'string' ? value.reason : '' };
  }
  const { task_id, status, updated_at, message } = value;
  if (typeof task_id !== 'string' || !isStatus(status) || typeof updated_at !== 'string') return null;
  const event: StatusEvent = { task_id, status, updated_at };
  if (typeof message === 'string') event.message = message;
  return { kind: 'status', event };
}
