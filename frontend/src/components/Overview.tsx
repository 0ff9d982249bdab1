// Counters per status and the throughput chart, over the tasks this page knows about.

import { useMemo } from 'react';
import { countByStatus, throughput } from '../stats';
import { STATUSES, type Task } from '../types';
import { useNow } from '../useNow';
import { ThroughputChart } from './ThroughputChart';

export function Overview({ tasks }: { tasks: Task[] }) {
  // The window slides even when nothing happens; a quarter-minute tick is plenty for minute bars.
  const now = useNow(15_000);
  const counts = useMemo(() => countByStatus(tasks), [tasks]);
  const buckets = useMemo(() => throughput(tasks, now), [tasks, now]);
  return (
    <section className="panel overview" aria-labelledby="overview-heading">
      <h2 id="overview-heading">Overview</h2>
      <dl className="counters">
        {STATUSES.map((status) => (
          <div key={status} className={`counter counter--${status.toLowerCase()}`}>
            <dt>{status}</dt>
            <dd data-testid={`count-${status}`}>{counts[status]}</dd>
          </div>
        ))}
      </dl>
      <ThroughputChart buckets={buckets} />
      <p className="hint">
        Counted over the {tasks.length} task{tasks.length === 1 ? '' : 's'} this page has loaded or seen change
        live, not the whole database.
      </p>
    </section>
  );
}
