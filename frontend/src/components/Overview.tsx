// Counters per status and the throughput chart: the server's numbers from `GET /stats`, kept
// current by live events, or the tasks this page knows about when `/stats` cannot be read.

import { useMemo } from 'react';
import type { LiveStats } from '../liveStats';
import { overviewNumbers } from '../stats';
import { STATUSES, type Task } from '../types';
import { useNow } from '../useNow';
import { ThroughputChart } from './ThroughputChart';

export function Overview({ stats, tasks }: { stats: LiveStats; tasks: Task[] }) {
  // The window slides even when nothing happens; a quarter-minute tick is plenty for minute bars.
  const now = useNow(15_000);
  const numbers = useMemo(() => overviewNumbers(stats, tasks, now), [stats, tasks, now]);
  let note: string | null = null;
  if (numbers.source === 'loaded') {
    note =
      `Cannot read the server's counts (${stats.error ?? 'no answer'}): counted over the ${tasks.length} ` +
      `task${tasks.length === 1 ? '' : 's'} this page has loaded or seen change live, not the whole database.`;
  } else if (numbers.source === 'server' && stats.error !== null) {
    note = `Cannot refresh the counts (${stats.error}); they are kept current from live events.`;
  }
  return (
    <section className="panel overview" aria-labelledby="overview-heading" data-source={numbers.source}>
      <h2 id="overview-heading">Overview</h2>
      <dl className="counters" aria-busy={numbers.counts === null}>
        {STATUSES.map((status) => (
          <div key={status} className={`counter counter--${status.toLowerCase()}`}>
            <dt>{status}</dt>
            <dd data-testid={`count-${status}`}>{numbers.counts === null ? '…' : numbers.counts[status]}</dd>
          </div>
        ))}
      </dl>
      <ThroughputChart buckets={numbers.buckets} />
      {note !== null && <p className="hint overview__note">{note}</p>}
    </section>
  );
}
