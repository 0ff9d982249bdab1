// A task's timeline: created → processing → done/failed (again after each retry), with the time
// between steps and, when the API reports them, each attempt: worker, outcome, error, duration.

import { buildTimeline } from '../timeline';
import { elapsedMicros, formatDuration, formatTimestamp } from '../time';
import type { Attempt, Task, TaskStatus } from '../types';

function AttemptItem({ attempt }: { attempt: Attempt }) {
  const ran = elapsedMicros(attempt.started_at, attempt.finished_at);
  // No outcome but finished: another delivery finished the task meanwhile (its error says so).
  const outcome = attempt.outcome ?? (attempt.finished_at === null ? 'running' : 'ended');
  return (
    <li className="attempt" data-outcome={outcome}>
      Attempt {attempt.attempt}
      {attempt.worker !== null && <> on {attempt.worker}</>}:{' '}
      <span className={`attempt__outcome attempt__outcome--${outcome.toLowerCase()}`}>{outcome}</span>
      {ran !== null && <> after {formatDuration(ran)}</>}
      {attempt.error !== null && <span className="attempt__error"> — {attempt.error}</span>}
    </li>
  );
}

export function Timeline({ task, seen }: { task: Task; seen: Partial<Record<TaskStatus, string>> | undefined }) {
  const { steps, total, retries } = buildTimeline(task, seen);
  return (
    <>
      <ol className="timeline" aria-label="Timeline" data-retries={retries}>
        {steps.map((step) => (
          <li key={step.id} className={`timeline__step timeline__step--${step.state}`} data-step={step.key} data-state={step.state}>
            <span className="timeline__marker" aria-hidden="true" />
            <span className="timeline__label">
              {step.label}
              {step.state === 'current' && <span className="visually-hidden"> (now)</span>}
              {step.state === 'upcoming' && <span className="visually-hidden"> (not yet)</span>}
            </span>
            {step.at !== null ? (
              <time dateTime={step.at} title={step.at} className="timeline__time">
                {formatTimestamp(step.at, { precise: true })}
              </time>
            ) : (
              step.state === 'done' && <span className="timeline__time">time not recorded</span>
            )}
            {step.sincePrevious !== null && <span className="timeline__since">+{formatDuration(step.sincePrevious)}</span>}
            {step.attempts.length > 0 && (
              <ol className="attempts" aria-label="Attempts">
                {step.attempts.map((attempt) => (
                  <AttemptItem key={`${attempt.attempt}-${attempt.started_at}`} attempt={attempt} />
                ))}
              </ol>
            )}
          </li>
        ))}
      </ol>
      {total !== null && (
        <p className="timeline__total">
          Total: {formatDuration(total)}
          {retries > 0 && <span className="hint"> (including {retries === 1 ? 'one retry' : `${retries} retries`})</span>}
        </p>
      )}
    </>
  );
}
