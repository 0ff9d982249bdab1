// The API's data shapes as the dashboard uses them: tasks, attempts, statistics, WebSocket messages.

export const STATUSES = ['PENDING', 'PROCESSING', 'DONE', 'FAILED'] as const;
export type TaskStatus = (typeof STATUSES)[number];

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** One run of a task by a worker; only present once the API reports attempts. */
export interface Attempt {
  attempt: number;
  started_at: string;
  finished_at: string | null;
  outcome: 'DONE' | 'FAILED' | 'RETRY' | null;
  error: string | null;
  worker: string | null;
}

/** A task as `GET /tasks/{id}` returns it. Timestamps are RFC 3339 UTC strings. */
export interface Task {
  task_id: string;
  title: string;
  payload: JsonObject | null;
  status: TaskStatus;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  /** The result when DONE, the failure reason when FAILED, null otherwise. */
  message: string | null;
  attempts?: Attempt[];
}

/** A status change pushed over `/ws`. */
export interface StatusEvent {
  task_id: string;
  status: TaskStatus;
  updated_at: string;
  message?: string | null;
}

/** Tasks that finished in one wall-clock minute. */
export interface MinuteCount {
  /** Start of the minute, in epoch milliseconds. */
  start: number;
  done: number;
  failed: number;
}

/** `GET /stats`: counts over the whole database, and what finished per minute in the last hour. */
export interface ServerStats {
  counts: Record<TaskStatus, number>;
  /** Oldest first; minutes in which nothing finished are left out. */
  finishedPerMinute: MinuteCount[];
}

/** What `POST /tasks` takes. */
export interface NewTask {
  title: string;
  payload: JsonObject | null;
}

export function isTerminal(status: TaskStatus): boolean {
  return status === 'DONE' || status === 'FAILED';
}
