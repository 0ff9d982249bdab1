// The dashboard's state and its one reducer: tasks merged from REST snapshots and live events by
// the rule "an older state never overwrites a newer one", the loaded window of the list, toasts,
// and the live counters (each status change counted once, whichever source brought it first).

import {
  initialLiveStats,
  observe,
  statsFailed,
  statsLoaded,
  statsRequested,
  transitionBetween,
  type Known,
  type LiveStats,
} from './liveStats';
import { compareTimestamps, toMicros } from './time';
import { isTerminal, type ServerStats, type StatusEvent, type Task, type TaskStatus } from './types';

/** The list as the API pages it: one status filter (or none), newest first, a cursor for more. */
export interface ListState {
  /** The server-side filter the pages were loaded with; null for every status. */
  status: TaskStatus | null;
  /** Task ids in the loaded window, newest first (by created_at, then id, like the API). */
  ids: string[];
  /** `x-next-cursor` of the last page loaded; null when no older page exists. */
  cursor: string | null;
  /** The first page has arrived: until then the window's extent is unknown. */
  loaded: boolean;
  /**
   * Ids placed in the window from live data since the last reload was requested. A reload's
   * answer may predate them (the task was created while the request was in flight), so they
   * survive the reload instead of vanishing until their next event.
   */
  liveIds: string[];
}

export interface Toast {
  id: number;
  taskId: string;
  status: 'DONE' | 'FAILED';
  title: string;
  message: string | null;
}

export interface DashboardState {
  /** Every task this page has a snapshot of: list pages, lookups, the detail view, creations. */
  tasks: Record<string, Task>;
  /**
   * When each status was last observed, per task. The API keeps only the latest `updated_at`, so
   * this is where the timeline learns when a finished task started processing.
   */
  seen: Record<string, Partial<Record<TaskStatus, string>>>;
  /** The newest event for tasks not loaded yet; applied when their snapshot arrives. */
  orphans: Record<string, StatusEvent>;
  list: ListState;
  toasts: Toast[];
  toastSeq: number;
  /** Recently toasted events, so a duplicated event does not toast twice. */
  toastKeys: string[];
  /** The counters and chart: `GET /stats` plus the changes seen since. */
  stats: LiveStats;
}

export type Action =
  | { type: 'filterChanged'; status: TaskStatus | null }
  | { type: 'listRequested'; mode: 'replace' | 'append' }
  | { type: 'listLoaded'; mode: 'replace' | 'append'; tasks: Task[]; cursor: string | null }
  | { type: 'taskLoaded'; task: Task }
  | { type: 'orphanDropped'; taskId: string }
  | { type: 'event'; event: StatusEvent }
  | { type: 'toastDismissed'; id: number }
  /** `at`: this browser's clock when the request was sent, in microseconds. */
  | { type: 'statsRequested'; at: number }
  | { type: 'statsLoaded'; stats: ServerStats; ref: number }
  | { type: 'statsFailed'; message: string };

export const MAX_TOASTS = 4;
const TOAST_MEMORY = 200;

export function initialState(): DashboardState {
  return {
    tasks: {},
    seen: {},
    orphans: {},
    list: { status: null, ids: [], cursor: null, loaded: false, liveIds: [] },
    toasts: [],
    toastSeq: 0,
    toastKeys: [],
    stats: initialLiveStats(),
  };
}

// PENDING → PROCESSING → DONE | FAILED: how far along a task is.
const PROGRESS: Record<TaskStatus, number> = { PENDING: 0, PROCESSING: 1, DONE: 2, FAILED: 2 };

type Versioned = Pick<Task, 'status' | 'updated_at'>;

/**
 * Whether `incoming` (an event or a snapshot) may replace `current`. The later `updated_at` wins,
 * whichever source it came from. On a tie only forward moves are taken, so a terminal state is
 * never replaced by PROCESSING or PENDING with an equal or older timestamp; a retried task comes
 * back to PENDING with a newer timestamp, which is why time is compared first.
 */
export function supersedes(incoming: Versioned, current: Versioned): boolean {
  const order = compareTimestamps(incoming.updated_at, current.updated_at);
  if (order !== 0) return order > 0;
  return PROGRESS[incoming.status] >= PROGRESS[current.status];
}

/** The task after a REST snapshot: the snapshot unless what we hold is newer. */
export function mergeSnapshot(current: Task | undefined, snapshot: Task): Task {
  if (current === undefined) return snapshot;
  if (!supersedes(snapshot, current)) return current;
  // A list row carries no attempts: the same version read by id (the detail view) keeps its own,
  // whichever answer lands last.
  const sameVersion = snapshot.status === current.status && compareTimestamps(snapshot.updated_at, current.updated_at) === 0;
  return sameVersion && snapshot.attempts === undefined && current.attempts !== undefined ? current : snapshot;
}

/** The task after a status event: `current` itself (same object) when the event is stale. */
export function mergeEvent(current: Task, event: StatusEvent): Task {
  if (!supersedes(event, current)) return current;
  const message = event.message ?? null;
  if (current.status === event.status && current.updated_at === event.updated_at && current.message === message) {
    return current; // a duplicate: keep the object so nothing re-renders
  }
  return {
    ...current,
    status: event.status,
    updated_at: event.updated_at,
    message,
    // The worker stamps finished_at and updated_at with the same instant.
    finished_at: isTerminal(event.status) ? event.updated_at : null,
  };
}

/** Newest first, as the API orders pages: created_at descending, then task id descending. */
export function newestFirst(a: Task, b: Task): number {
  const order = compareTimestamps(b.created_at, a.created_at);
  if (order !== 0) return order;
  return a.task_id < b.task_id ? 1 : a.task_id > b.task_id ? -1 : 0;
}

function sortIds(ids: Iterable<string>, tasks: Record<string, Task>): string[] {
  return [...new Set(ids)]
    .map((id) => tasks[id])
    .filter((task): task is Task => task !== undefined)
    .sort(newestFirst)
    .map((task) => task.task_id);
}

/**
 * Whether a task belongs in the loaded window: the list is complete, or the task sorts before the
 * oldest loaded row. An older task will come with "Load more", and placing it now would leave a
 * gap between the last loaded row and it.
 */
function covers(list: ListState, task: Task, tasks: Record<string, Task>): boolean {
  // Before the first page, place tentatively: the page's answer keeps it only if it fits.
  if (!list.loaded || list.cursor === null) return true;
  const oldestId = list.ids[list.ids.length - 1];
  const oldest = oldestId === undefined ? undefined : tasks[oldestId];
  return oldest !== undefined && newestFirst(task, oldest) < 0;
}

function place(list: ListState, task: Task, tasks: Record<string, Task>): ListState {
  if (list.ids.includes(task.task_id) || !covers(list, task, tasks)) return list;
  return {
    ...list,
    ids: sortIds([...list.ids, task.task_id], tasks),
    liveIds: [...list.liveIds, task.task_id],
  };
}

function recordSeen(state: DashboardState, taskId: string, status: TaskStatus, at: string): DashboardState {
  const previous = state.seen[taskId]?.[status];
  if (previous !== undefined && compareTimestamps(previous, at) >= 0) return state;
  return { ...state, seen: { ...state.seen, [taskId]: { ...state.seen[taskId], [status]: at } } };
}

function toastFor(state: DashboardState, task: Task): DashboardState {
  if (task.status !== 'DONE' && task.status !== 'FAILED') return state;
  const key = `${task.task_id}|${task.status}|${toMicros(task.updated_at)}`;
  if (state.toastKeys.includes(key)) return state;
  const toast: Toast = {
    id: state.toastSeq + 1,
    taskId: task.task_id,
    status: task.status,
    title: task.title,
    message: task.message,
  };
  return {
    ...state,
    toasts: [...state.toasts, toast].slice(-MAX_TOASTS),
    toastSeq: toast.id,
    toastKeys: [...state.toastKeys, key].slice(-TOAST_MEMORY),
  };
}

/** Takes a snapshot in, applies any event that was waiting for it, and optionally places it. */
function absorb(state: DashboardState, snapshot: Task, placeIt: boolean): DashboardState {
  const id = snapshot.task_id;
  let next = state;
  let task = mergeSnapshot(state.tasks[id], snapshot);
  // PENDING too: a retry's answer says when the task was sent back, for the timeline.
  if (task === snapshot) next = recordSeen(next, id, snapshot.status, snapshot.updated_at);
  const orphan = next.orphans[id];
  let toastIt = false;
  if (orphan !== undefined) {
    const { [id]: _applied, ...rest } = next.orphans;
    next = { ...next, orphans: rest };
    const merged = mergeEvent(task, orphan);
    toastIt = merged !== task;
    task = merged;
  }
  const tasks = { ...next.tasks, [id]: task };
  next = { ...next, tasks, list: placeIt ? place(next.list, task, tasks) : next.list };
  return toastIt ? toastFor(next, task) : next;
}

function onEvent(state: DashboardState, event: StatusEvent): DashboardState {
  const id = event.task_id;
  const seen = recordSeen(state, id, event.status, event.updated_at);
  const current = seen.tasks[id];
  if (current === undefined) {
    // Someone else's task (or ours, before POST answered): keep the newest event until the
    // snapshot fetched by id arrives.
    const waiting = seen.orphans[id];
    if (waiting !== undefined && !supersedes(event, waiting)) return seen;
    return { ...seen, orphans: { ...seen.orphans, [id]: event } };
  }
  const task = mergeEvent(current, event);
  if (task === current) return seen;
  const tasks = { ...seen.tasks, [id]: task };
  return toastFor({ ...seen, tasks, list: place(seen.list, task, tasks) }, task);
}

/** What the page knows of a task for counting: its snapshot, else the event waiting for one. */
function known(state: DashboardState, taskId: string): Known | undefined {
  return state.tasks[taskId] ?? state.orphans[taskId];
}

/** The tasks an action may change the status of. */
function touched(action: Action): string[] {
  switch (action.type) {
    case 'event':
      return [action.event.task_id];
    case 'taskLoaded':
      return [action.task.task_id];
    case 'listLoaded':
      return action.tasks.map((task) => task.task_id);
    default:
      return [];
  }
}

/**
 * Counts each status change an action made. Comparing the state before and after (rather than
 * counting events) means a change is counted once whether a snapshot or the event brought it
 * first: a retry's answer and its PENDING event, or an event the snapshot already reflected.
 */
function countChanges(before: DashboardState, after: DashboardState, action: Action): DashboardState {
  let stats = after.stats;
  for (const id of touched(action)) {
    const change = transitionBetween(id, known(before, id), known(after, id));
    if (change !== null) stats = observe(stats, change);
  }
  return stats === after.stats ? after : { ...after, stats };
}

export function reducer(state: DashboardState, action: Action): DashboardState {
  const next = step(state, action);
  return next === state ? state : countChanges(state, next, action);
}

function step(state: DashboardState, action: Action): DashboardState {
  switch (action.type) {
    case 'filterChanged':
      return { ...state, list: { ...initialState().list, status: action.status } };
    case 'listRequested':
      return action.mode === 'replace' ? { ...state, list: { ...state.list, liveIds: [] } } : state;
    case 'listLoaded': {
      let next = state;
      for (const task of action.tasks) next = absorb(next, task, false);
      const pageIds = action.tasks.map((task) => task.task_id);
      const oldest = action.tasks[action.tasks.length - 1];
      // A replace keeps the rows placed live while it was in flight (the answer may predate
      // them), as long as they fall inside the new window.
      const kept =
        action.mode === 'replace'
          ? next.list.liveIds.filter((id) => {
              const task = next.tasks[id];
              return task !== undefined && (action.cursor === null || oldest === undefined || newestFirst(task, oldest) < 0);
            })
          : next.list.ids;
      return {
        ...next,
        list: {
          ...next.list,
          ids: sortIds([...kept, ...pageIds], next.tasks),
          cursor: action.cursor,
          loaded: true,
        },
      };
    }
    case 'taskLoaded':
      return absorb(state, action.task, true);
    case 'orphanDropped': {
      if (!(action.taskId in state.orphans)) return state;
      const { [action.taskId]: _dropped, ...orphans } = state.orphans;
      return { ...state, orphans };
    }
    case 'event':
      return onEvent(state, action.event);
    case 'toastDismissed':
      return { ...state, toasts: state.toasts.filter((toast) => toast.id !== action.id) };
    case 'statsRequested':
      return { ...state, stats: statsRequested(state.stats, action.at) };
    case 'statsLoaded':
      return { ...state, stats: statsLoaded(state.stats, action.stats, action.ref) };
    case 'statsFailed':
      return { ...state, stats: statsFailed(state.stats, action.message) };
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether a search is a whole task id, which is looked up on the server when not loaded. */
export function isTaskId(text: string): boolean {
  return UUID.test(text.trim().toLowerCase());
}

/**
 * The rows to show: the loaded window filtered by status and by a search over title and id. A
 * whole task id shows that task wherever it came from, whatever the filter.
 */
export function visibleTasks(state: DashboardState, search: string): Task[] {
  const query = search.trim().toLowerCase();
  if (isTaskId(query)) {
    const task = state.tasks[query];
    return task === undefined ? [] : [task];
  }
  const { status } = state.list;
  return state.list.ids
    .map((id) => state.tasks[id])
    .filter((task): task is Task => task !== undefined && (status === null || task.status === status))
    .filter((task) => query === '' || task.title.toLowerCase().includes(query) || task.task_id.includes(query));
}
