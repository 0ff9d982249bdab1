//! Read-only statistics for operators and the dashboard, each answered from an index.

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySqlPool, Row as _};

use crate::domain::{TaskStatus, now_micros};

/// Tasks per status (`idx_tasks_status`: an index-only count per status).
pub async fn count_by_status(pool: &MySqlPool) -> anyhow::Result<Vec<(TaskStatus, u64)>> {
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
        .fetch_all(pool)
        .await
        .context("counting tasks by status")?;
    rows.iter()
        .map(|row| {
            let status: String = row.try_get("status")?;
            let count: i64 = row.try_get("n")?;
            Ok((
                status.parse().context("decoding tasks.status")?,
                count.max(0) as u64,
            ))
        })
        .collect()
}

/// Per minute since `since`, how many tasks ended DONE and FAILED (`idx_tasks_finished_at`).
pub async fn finished_per_minute(
    pool: &MySqlPool,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<(DateTime<Utc>, u64, u64)>> {
    let rows = sqlx::query(
        "SELECT CAST(DATE_FORMAT(finished_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS minute, \
         CAST(SUM(status = 'DONE') AS SIGNED) AS done, \
         CAST(SUM(status = 'FAILED') AS SIGNED) AS failed \
         FROM tasks WHERE finished_at >= ? GROUP BY minute ORDER BY minute",
    )
    .bind(since.naive_utc())
    .fetch_all(pool)
    .await
    .context("counting finished tasks per minute")?;
    rows.iter()
        .map(|row| {
            let minute: NaiveDateTime = row.try_get("minute")?;
            let done: i64 = row.try_get("done")?;
            let failed: i64 = row.try_get("failed")?;
            Ok((minute.and_utc(), done.max(0) as u64, failed.max(0) as u64))
        })
        .collect()
}

/// The age of the oldest PENDING task: the signal to add workers on.
pub async fn oldest_pending_age(pool: &MySqlPool) -> anyhow::Result<Option<f64>> {
    let oldest: Option<NaiveDateTime> =
        sqlx::query_scalar("SELECT MIN(created_at) FROM tasks WHERE status = 'PENDING'")
            .fetch_one(pool)
            .await
            .context("finding the oldest PENDING task")?;
    Ok(oldest.map(|at| (now_micros() - at.and_utc()).as_seconds_f64().max(0.0)))
}

/// How long the longest-running PROCESSING task has gone without a change
/// (`idx_tasks_status`: PROCESSING tasks are few): past `TASK_LEASE_SECONDS` it is re-dispatched.
pub async fn oldest_processing_age(pool: &MySqlPool) -> anyhow::Result<Option<f64>> {
    let oldest: Option<NaiveDateTime> =
        sqlx::query_scalar("SELECT MIN(updated_at) FROM tasks WHERE status = 'PROCESSING'")
            .fetch_one(pool)
            .await
            .context("finding the oldest PROCESSING task")?;
    Ok(oldest.map(|at| (now_micros() - at.and_utc()).as_seconds_f64().max(0.0)))
}

/// Tasks still due for dispatch: not started by a worker, nor marked by the API after the
/// broker's confirm (a fifth of the grace later); those past the grace are the relay's.
pub async fn outbox_backlog(pool: &MySqlPool) -> anyhow::Result<u64> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE dispatch_due_at IS NOT NULL")
            .fetch_one(pool)
            .await
            .context("counting the outbox")?;
    Ok(count.max(0) as u64)
}
