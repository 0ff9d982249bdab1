// A task's timeline: created → processing → done/failed, with the time between steps and, when
// the API reports them, each attempt.

import { buildTimeline } from '../timeline';
import { elapsedMicros, formatDuration, formatTimestamp } from '../time';
import type { Task, TaskStatus } from '../types';

export function Timeline({ task, seen }: { task: Task; seen: Partial<Record<TaskStatus, string>> | undefined }) {
  const { steps, total } = buildTimeline(task, seen);
  return (
    <>
      <ol className="timeline" aria-label="Timeline">
        {steps.map((step) => (
          <li key={step.key} className={`timeline__step timeline__step--${step.state}`} data-step={step.key} data-state={step.state}>
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
            {step.sincePrevious !== null && (
              <span className="timeline__since">+{formatDuration(step.sincePrevious)}</span>
            )}
            {step.attempts.length > 0 && (
              <ol className="attempts" aria-label="Attempts">
                {step.attempts.map((attempt) => {
                  const ran = elapsedMicros(attempt.started_at, attempt.finished_at);
                  return (
                    <li key={`${attempt.attempt}-${attempt.started_at}`} className="attempt">
                      Attempt {attempt.attempt}
                      {attempt.worker !== null && <> on {attempt.worker}</>}: {attempt.outcome ?? 'running'}
                      {ran !== null && <> after {formatDuration(ran)}</>}
                      {attempt.error !== null && <span className="attempt__error"> — {attempt.error}</span>}
                    </li>
                  );
                })}
              </ol>
            )}
          </li>
        ))}
      </ol>
      {total !== null && <p className="timeline__total">Total: {formatDuration(total)}</p>}
    </>
  );
}
