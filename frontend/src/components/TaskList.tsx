// The task list: status filter (server-side, pages from the API), search over loaded rows plus an
// exact id lookup, the rows themselves, and "Load more" along the API's cursor.

import { memo } from 'react';
import type { ListState } from '../store';
import { isTaskId } from '../store';
import { elapsedMicros, formatDuration, formatTimestamp, toMicros } from '../time';
import { isTerminal, STATUSES, type Task, type TaskStatus } from '../types';
import type { Dashboard, TaskFetch } from '../useDashboard';
import { useNow } from '../useNow';
import { isStatus } from '../wire';
import { StatusBadge } from './StatusBadge';

export interface TaskListProps {
  rows: Task[];
  list: ListState;
  requests: Dashboard['list'];
  search: string;
  lookup: TaskFetch;
  selectedId: string | null;
  onSearch(search: string): void;
  onFilter(status: TaskStatus | null): void;
  onLoadMore(): void;
  onReload(): void;
  onSelect(taskId: string): void;
}

function Duration({ task, now }: { task: Task; now: number }) {
  if (isTerminal(task.status)) {
    const span = elapsedMicros(task.created_at, task.finished_at ?? task.updated_at);
    return <>{span === null ? '—' : formatDuration(span)}</>;
  }
  const since = now * 1000 - toMicros(task.created_at);
  return (
    <span title="Not finished: time since it was created">{Number.isNaN(since) ? '—' : `${formatDuration(since)}…`}</span>
  );
}

// Memoised: an event changes one task object, so only its row re-renders (`now` ticks only
// while some visible task is unfinished).
const TaskRow = memo(function TaskRow({
  task,
  now,
  selected,
  onSelect,
}: {
  task: Task;
  now: number;
  selected: boolean;
  onSelect(taskId: string): void;
}) {
  return (
    <tr data-task-id={task.task_id} className={selected ? 'row row--selected' : 'row'}>
      <td data-label="Title" className="row__title">
        <button type="button" className="link-button" aria-current={selected ? 'true' : undefined} onClick={() => onSelect(task.task_id)}>
          {task.title}
        </button>
        {/* The tail: ids are UUIDv7, whose leading digits are a timestamp shared by neighbours. */}
        <span className="row__id" title={task.task_id}>
          …{task.task_id.slice(-12)}
        </span>
      </td>
      <td data-label="Status" className="row__status">
        <StatusBadge status={task.status} />
      </td>
      <td data-label="Created">
        <time dateTime={task.created_at} title={task.created_at}>
          {formatTimestamp(task.created_at)}
        </time>
      </td>
      <td data-label="Duration">
        <Duration task={task} now={now} />
      </td>
    </tr>
  );
});

export function TaskList(props: TaskListProps) {
  const { rows, list, requests, search, lookup, selectedId, onSearch, onFilter, onLoadMore, onReload, onSelect } = props;
  const now = useNow(1000, rows.some((task) => !isTerminal(task.status)));
  const idSearch = isTaskId(search) ? search.trim().toLowerCase() : null;

  let summary: string;
  if (idSearch !== null) {
    if (rows.length > 0) summary = 'Found the task with this id.';
    else if (lookup.loading) summary = 'Looking up this id…';
    else if (lookup.error?.status === 404) summary = 'No task has this id.';
    else summary = lookup.error ? `Cannot look up this id: ${lookup.error.message}` : 'Looking up this id…';
  } else if (!list.loaded) {
    summary = requests.loading ? 'Loading tasks…' : '';
  } else {
    summary = `Showing ${rows.length} of ${list.ids.length} loaded task${list.ids.length === 1 ? '' : 's'}.`;
  }

  return (
    <section className="panel tasks" aria-labelledby="tasks-heading" id="tasks" tabIndex={-1}>
      <h2 id="tasks-heading">Tasks</h2>
      <div className="filters" role="search" aria-label="Filter tasks">
        <div className="field field--inline">
          <label htmlFor="status-filter">Status</label>
          <select
            id="status-filter"
            value={list.status ?? ''}
            onChange={(event) => onFilter(isStatus(event.target.value) ? event.target.value : null)}
          >
            <option value="">All statuses</option>
            {STATUSES.map((status) => (
              <option key={status} value={status}>
                {status}
              </option>
            ))}
          </select>
        </div>
        <div className="field field--inline field--grow">
          <label htmlFor="task-search">Search</label>
          <input
            id="task-search"
            type="search"
            value={search}
            onChange={(event) => onSearch(event.target.value)}
            placeholder="Title or task id"
            aria-describedby="task-search-hint"
          />
          <span id="task-search-hint" className="visually-hidden">
            Searches the loaded tasks by title or id; a whole task id is also looked up on the server.
          </span>
        </div>
      </div>

      <p className="list-summary" aria-live="polite">
        {summary}
      </p>
      {requests.error !== null && (
        <p className="form__error" role="alert">
          Cannot load tasks: {requests.error}{' '}
          <button type="button" className="button button--small" onClick={onReload}>
            Try again
          </button>
        </p>
      )}

      {rows.length > 0 && (
        <table className="task-table">
          <caption className="visually-hidden">Tasks, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((task) => (
              <TaskRow key={task.task_id} task={task} now={now} selected={task.task_id === selectedId} onSelect={onSelect} />
            ))}
          </tbody>
        </table>
      )}
      {list.loaded && rows.length === 0 && idSearch === null && (
        <p className="empty">{list.ids.length === 0 ? 'No tasks yet. Create one above.' : 'No loaded task matches.'}</p>
      )}

      {idSearch === null && (
        <div className="list-footer">
          {list.cursor !== null ? (
            <button type="button" className="button" onClick={onLoadMore} disabled={requests.loading !== null}>
              {requests.loading === 'append' ? 'Loading…' : 'Load more'}
            </button>
          ) : (
            list.loaded && list.ids.length > 0 && <span className="hint">All tasks loaded.</span>
          )}
        </div>
      )}
    </section>
  );
}
