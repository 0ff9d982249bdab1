//! The periodic pruning of finished tasks past `TASK_RETENTION` (see `db::RetentionLock`): once
//! shortly after start, then every minute, by whichever worker takes the lock.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use taskflow_core::db;
use taskflow_core::domain::now_micros;
use tokio::sync::watch;

use crate::metrics::WorkerMetrics;

/// Tasks deleted per transaction, at most: each batch's locks are short.
const BATCH: u32 = 500;
/// Soon after start, so a fleet restarted often still prunes.
const FIRST_RUN: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_secs(60);

/// Prunes every [`INTERVAL`] until `stop` turns true; a run under way stops between batches.
pub async fn run(
    pool: MySqlPool,
    retention: Duration,
    metrics: Arc<WorkerMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now() + FIRST_RUN;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        next = tokio::time::Instant::now() + INTERVAL;
        if let Err(err) = prune(&pool, retention, &metrics, &stop).await {
            tracing::warn!(error = format!("{err:#}"), "retention run failed");
        }
    }
}

/// One run: nothing when another process holds the lock.
async fn prune(
    pool: &MySqlPool,
    retention: Duration,
    metrics: &WorkerMetrics,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(mut lock) = db::RetentionLock::try_acquire(pool).await? else {
        tracing::debug!("another process is pruning");
        return Ok(());
    };
    let cutoff = now_micros() - retention;
    let mut total = db::Pruned::default();
    let pruned = loop {
        if *stop.borrow() {
            break Ok(());
        }
        match db::prune_finished_batch(lock.connection(), cutoff, BATCH).await {
            Ok(batch) => {
                metrics.record_pruned(&batch);
                total.tasks += batch.tasks;
                total.attempts += batch.attempts;
                total.keys += batch.keys;
                if batch.tasks < u64::from(BATCH) {
                    break Ok(());
                }
            }
            Err(err) => break Err(err),
        }
    };
    let released = lock.release().await;
    if total.tasks > 0 {
        tracing::info!(
            tasks = total.tasks,
            attempts = total.attempts,
            keys = total.keys,
            "pruned finished tasks past TASK_RETENTION"
        );
    }
    pruned.and(released)
}
