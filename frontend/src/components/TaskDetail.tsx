// The open task: status, result or failure reason, timeline, timestamps and payload, with Retry
// for a failed task. Escape or Close closes it; opening it moves focus to its heading.

import { useMutation } from '@tanstack/react-query';
import { useEffect, useRef, type KeyboardEvent } from 'react';
import { errorMessage } from '../api';
import type { Task, TaskStatus } from '../types';
import type { TaskFetch } from '../useDashboard';
import { StatusBadge } from './StatusBadge';
import { Timeline } from './Timeline';

export interface TaskDetailProps {
  taskId: string;
  task: Task | undefined;
  fetch: TaskFetch;
  seen: Partial<Record<TaskStatus, string>> | undefined;
  onClose(): void;
  onRetry(taskId: string): Promise<Task>;
}

function RetryButton({ taskId, onRetry, onRetried }: { taskId: string; onRetry(taskId: string): Promise<Task>; onRetried(): void }) {
  // On success the task is PENDING, so this button goes away: `onRetried` keeps focus in the view.
  const retry = useMutation({ mutationFn: () => onRetry(taskId), onSuccess: onRetried });
  return (
    <div className="retry">
      <button type="button" className="button button--primary" onClick={() => retry.mutate()} disabled={retry.isPending}>
        {retry.isPending ? 'Retrying…' : 'Retry'}
      </button>
      {retry.error !== null && (
        <p className="form__error" role="alert">
          Retry failed: {errorMessage(retry.error)}
        </p>
      )}
    </div>
  );
}

function Timestamp({ label, value }: { label: string; value: string | null }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>{value === null ? '—' : <time dateTime={value}>{value}</time>}</dd>
    </div>
  );
}

export function TaskDetail({ taskId, task, fetch, seen, onClose, onRetry }: TaskDetailProps) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    heading.current?.focus();
  }, [taskId]);

  const onKeyDown = (event: KeyboardEvent<HTMLElement>): void => {
    if (event.key === 'Escape') onClose();
  };

  return (
    <section className="panel detail" aria-labelledby="detail-heading" onKeyDown={onKeyDown} data-task-id={taskId}>
      <div className="detail__header">
        <h2 id="detail-heading" ref={heading} tabIndex={-1}>
          {task?.title ?? 'Task'}
        </h2>
        <button type="button" className="button button--quiet" onClick={onClose}>
          Close<span className="visually-hidden"> task details</span>
        </button>
      </div>

      {task === undefined ? (
        fetch.error ? (
          <p className="form__error" role="alert">
            {fetch.error.status === 404 ? `No task has the id ${taskId}.` : `Cannot load this task: ${fetch.error.message}`}
          </p>
        ) : (
          <p>Loading…</p>
        )
      ) : (
        <>
          <p className="detail__status">
            <StatusBadge status={task.status} /> <code className="detail__id">{task.task_id}</code>
          </p>
          {task.status === 'FAILED' && (
            <RetryButton key={task.updated_at} taskId={task.task_id} onRetry={onRetry} onRetried={() => heading.current?.focus()} />
          )}

          {task.message !== null && (
            <>
              <h3>{task.status === 'FAILED' ? 'Failure reason' : 'Result'}</h3>
              <p className={task.status === 'FAILED' ? 'detail__message detail__message--failed' : 'detail__message'}>
                {task.message}
              </p>
            </>
          )}

          <h3>Timeline</h3>
          <Timeline task={task} seen={seen} />

          <h3>Timestamps</h3>
          <dl className="timestamps">
            <Timestamp label="Created" value={task.created_at} />
            <Timestamp label="Updated" value={task.updated_at} />
            <Timestamp label="Finished" value={task.finished_at} />
          </dl>

          <h3>Payload</h3>
          {task.payload === null ? <p className="hint">No payload.</p> : <pre className="payload">{JSON.stringify(task.payload, null, 2)}</pre>}
        </>
      )}
    </section>
  );
}
