//! The worker's writes: starting an attempt, finishing it, recording a retry, failing a task.
//!
//! Every status change is conditional on the status the caller expects and made in one
//! transaction with its attempt record, so however many deliveries of a task race here, exactly
//! one moves it to DONE or FAILED, and each transaction costs one commit.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{MySqlPool, Row as _};

use crate::domain::{AttemptOutcome, TaskId, TaskStatus, now_micros};

/// What [`start_attempt`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The task is PROCESSING under a new attempt. `from_pending` says this call moved it there
    /// (and should announce it); otherwise it resumes a task whose earlier attempt never ended
    /// (a worker died, or the message was redelivered).
    Attempt {
        attempt: u32,
        from_pending: bool,
        updated_at: DateTime<Utc>,
    },
    /// The task is already DONE or FAILED: nothing to do.
    Finished(TaskStatus),
    NotFound,
}

/// PENDING → PROCESSING (or resume PROCESSING), recording the attempt, in one transaction.
pub async fn start_attempt(pool: &MySqlPool, id: TaskId, worker: &str) -> anyhow::Result<Started> {
    let now = now_micros();
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let row = sqlx::query("SELECT status, attempts FROM tasks WHERE id = ? FOR UPDATE")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .with_context(|| format!("locking task {id}"))?;
    let Some(row) = row else {
        tx.rollback().await.context("ending the transaction")?;
        return Ok(Started::NotFound);
    };
    let status: TaskStatus = row
        .try_get::<String, _>("status")?
        .parse()
        .context("decoding tasks.status")?;
    if status.is_terminal() {
        tx.rollback().await.context("releasing the task row")?;
        return Ok(Started::Finished(status));
    }
    let attempt = u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0) + 1;
    if status == TaskStatus::Processing {
        // An earlier attempt never ended: its worker died or its message came back.
        sqlx::query(
            "UPDATE task_attempts SET finished_at = ?, outcome = 'RETRY', \
             error = 'abandoned: the message was delivered again' \
             WHERE task_id = ? AND finished_at IS NULL",
        )
        .bind(now.naive_utc())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .with_context(|| format!("closing the abandoned attempt of task {id}"))?;
    }
    sqlx::query(
        "UPDATE tasks SET status = 'PROCESSING', attempts = ?, updated_at = ? WHERE id = ?",
    )
    .bind(attempt)
    .bind(now.naive_utc())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .with_context(|| format!("marking task {id} PROCESSING"))?;
    sqlx::query(
        "INSERT INTO task_attempts (task_id, attempt, worker, started_at) VALUES (?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(attempt)
    .bind(worker)
    .bind(now.naive_utc())
    .execute(&mut *tx)
    .await
    .with_context(|| format!("recording attempt {attempt} of task {id}"))?;
    tx.commit().await.context("committing the attempt start")?;
    Ok(Started::Attempt {
        attempt,
        from_pending: status == TaskStatus::Pending,
        updated_at: now,
    })
}

/// What a conditional status change found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// This call made the change; the caller announces it.
    Applied {
        updated_at: DateTime<Utc>,
    },
    /// The task was not in a state this change starts from: someone else moved it. Nothing
    /// changed; nothing is to be announced.
    Skipped {
        current: TaskStatus,
    },
    NotFound,
}

/// PROCESSING → DONE or FAILED for `attempt`, only if the task is PROCESSING.
pub async fn finish_attempt(
    pool: &MySqlPool,
    id: TaskId,
    attempt: u32,
    outcome: TaskStatus,
    message: &str,
) -> anyhow::Result<Transition> {
    debug_assert!(outcome.is_terminal());
    finish(
        pool,
        id,
        &[TaskStatus::Processing],
        outcome,
        message,
        Some(attempt),
    )
    .await
}

/// PENDING or PROCESSING → FAILED: the task is given up on (attempts exhausted, or its message
/// is dead-lettered). Closes its open attempt, if any.
pub async fn fail_task(pool: &MySqlPool, id: TaskId, reason: &str) -> anyhow::Result<Transition> {
    finish(
        pool,
        id,
        &[TaskStatus::Pending, TaskStatus::Processing],
        TaskStatus::Failed,
        reason,
        None,
    )
    .await
}

async fn finish(
    pool: &MySqlPool,
    id: TaskId,
    from: &[TaskStatus],
    to: TaskStatus,
    message: &str,
    attempt: Option<u32>,
) -> anyhow::Result<Transition> {
    let now = now_micros();
    let outcome = if to == TaskStatus::Done {
        AttemptOutcome::Done
    } else {
        AttemptOutcome::Failed
    };
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let result = sqlx::query(
        "UPDATE tasks SET status = ?, updated_at = ?, finished_at = ?, message = ? \
         WHERE id = ? AND status IN (?, ?)",
    )
    .bind(to.as_str())
    .bind(now.naive_utc())
    .bind(now.naive_utc())
    .bind(message)
    .bind(id.to_string())
    .bind(from[0].as_str())
    .bind(from.last().expect("at least one status").as_str())
    .execute(&mut *tx)
    .await
    .with_context(|| format!("moving task {id} to {to}"))?;
    if result.rows_affected() == 0 {
        tx.rollback().await.context("ending the transaction")?;
        if let Some(attempt) = attempt {
            close_superseded(pool, id, attempt).await?;
        }
        return current_status(pool, id).await;
    }
    // The attempt that ends here: the given one, or whichever is still open.
    let error = (to == TaskStatus::Failed).then_some(message);
    sqlx::query(
        "UPDATE task_attempts SET finished_at = ?, outcome = ?, error = ? \
         WHERE task_id = ? AND (attempt = ? OR (? IS NULL AND finished_at IS NULL))",
    )
    .bind(now.naive_utc())
    .bind(outcome.as_str())
    .bind(error)
    .bind(id.to_string())
    .bind(attempt)
    .bind(attempt)
    .execute(&mut *tx)
    .await
    .with_context(|| format!("closing the attempt of task {id}"))?;
    tx.commit().await.context("committing the status change")?;
    Ok(Transition::Applied { updated_at: now })
}

/// Another delivery finished the task while this attempt ran: close it without an outcome.
async fn close_superseded(pool: &MySqlPool, id: TaskId, attempt: u32) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE task_attempts SET finished_at = ?, \
         error = 'superseded: another delivery finished the task' \
         WHERE task_id = ? AND attempt = ? AND finished_at IS NULL",
    )
    .bind(now_micros().naive_utc())
    .bind(id.to_string())
    .bind(attempt)
    .execute(pool)
    .await
    .with_context(|| format!("closing attempt {attempt} of task {id}"))?;
    Ok(())
}

async fn current_status(pool: &MySqlPool, id: TaskId) -> anyhow::Result<Transition> {
    let current: Option<String> = sqlx::query_scalar("SELECT status FROM tasks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .with_context(|| format!("reading the status of task {id}"))?;
    match current {
        None => Ok(Transition::NotFound),
        Some(status) => Ok(Transition::Skipped {
            current: status.parse().context("decoding tasks.status")?,
        }),
    }
}

/// Closes `attempt` as a transient failure that will be retried. Best effort: the database may
/// be what failed.
pub async fn record_retry(
    pool: &MySqlPool,
    id: TaskId,
    attempt: u32,
    error: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE task_attempts SET finished_at = ?, outcome = 'RETRY', error = ? \
         WHERE task_id = ? AND attempt = ? AND finished_at IS NULL",
    )
    .bind(now_micros().naive_utc())
    .bind(error)
    .bind(id.to_string())
    .bind(attempt)
    .execute(pool)
    .await
    .with_context(|| format!("recording the retry of task {id}"))?;
    Ok(())
}
