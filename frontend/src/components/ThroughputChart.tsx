// Tasks finished per minute, DONE stacked under FAILED, as inline SVG: fifteen bars do not need a
// chart library. The SVG stretches to its box (bars only); the labels are HTML, so they keep
// their size at any width.

import type { MinuteBucket } from '../stats';

// The SVG's own units: one per bar slot across, 100 up; preserveAspectRatio="none" maps them
// onto whatever box CSS gives it.
const SLOT = 10;
const BAR = 7;
const HEIGHT = 100;

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function ThroughputChart({ buckets }: { buckets: MinuteBucket[] }) {
  const done = buckets.reduce((sum, b) => sum + b.done, 0);
  const failed = buckets.reduce((sum, b) => sum + b.failed, 0);
  const peak = Math.max(1, ...buckets.map((b) => b.done + b.failed));
  const scale = (count: number): number => (HEIGHT * count) / peak;
  const width = SLOT * buckets.length;
  const summary = `Finished in the last ${buckets.length} minutes: ${done} done, ${failed} failed; at most ${peak} in one minute.`;

  return (
    <figure className="chart">
      <figcaption>
        Finished per minute, last {buckets.length} min
        <span className="legend" aria-hidden="true">
          <span className="legend__item legend__item--done">DONE {done}</span>
          <span className="legend__item legend__item--failed">FAILED {failed}</span>
        </span>
      </figcaption>
      <div className="chart__plot">
        <div className="chart__y" aria-hidden="true">
          <span>{peak}</span>
          <span>0</span>
        </div>
        {/* Positioned in a box so the viewBox's aspect ratio does not size the layout. */}
        <div className="chart__canvas">
          <svg viewBox={`0 0 ${width} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={summary} className="chart__svg">
            <line className="chart__grid" x1={0} x2={width} y1={0.5} y2={0.5} vectorEffect="non-scaling-stroke" />
            {buckets.map((bucket, i) => {
              const x = i * SLOT + (SLOT - BAR) / 2;
              const doneHeight = scale(bucket.done);
              const failedHeight = scale(bucket.failed);
              return (
                <g key={bucket.start}>
                  <title>{`${clock.format(bucket.start)}: ${bucket.done} done, ${bucket.failed} failed`}</title>
                  {/* A transparent full-height rect makes the whole slot hoverable for the title. */}
                  <rect x={i * SLOT} width={SLOT} y={0} height={HEIGHT} fill="transparent" />
                  <rect className="chart__bar chart__bar--done" x={x} width={BAR} y={HEIGHT - doneHeight} height={doneHeight} />
                  <rect
                    className="chart__bar chart__bar--failed"
                    x={x}
                    width={BAR}
                    y={HEIGHT - doneHeight - failedHeight}
                    height={failedHeight}
                  />
                </g>
              );
            })}
            <line className="chart__axis" x1={0} x2={width} y1={HEIGHT} y2={HEIGHT} vectorEffect="non-scaling-stroke" />
          </svg>
        </div>
        <div className="chart__x" aria-hidden="true">
          <span>−{buckets.length} min</span>
          <span>now</span>
        </div>
      </div>
    </figure>
  );
}
