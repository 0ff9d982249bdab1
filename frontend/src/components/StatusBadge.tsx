// A task status as a labelled badge: the word itself is shown, so colour is never the only cue.

import type { TaskStatus } from '../types';

export function StatusBadge({ status }: { status: TaskStatus }) {
  return (
    <span className={`badge badge--${status.toLowerCase()}`} data-status={status}>
      {status}
    </span>
  );
}
