//! The worker's writes after the start ([`super::start`]): finishing an attempt, recording a
//! retry, failing a task.
//!
//! Every status change is conditional on the status the caller expects, so however many
//! deliveries of a task race here, exactly one moves it to DONE or FAILED. The attempt number on
//! the row is a fencing token: only the delivery holding the current attempt may finish the task
//! or record a retry, and another delivery takes an attempt over only when its holder is gone
//! (see [`super::Start`]).
//! The common path costs two statements per task, each its own commit: one UPDATE to start
//! (PENDING → PROCESSING), and one that finishes the task and records its attempt on the row
//! (`attempt_worker`, `attempt_started_at`); other attempts are rows of `task_attempts`. Under
//! load both are shared by many tasks ([`super::start_attempts`], [`finish_attempts`]): a batch takes
//! the common path for all its tasks in one transaction, or, if any task is off that path, each
//! task takes the one-task path that handles every case.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{Connection as _, MySqlConnection, MySqlPool, QueryBuilder};

use super::{KeptConnections, push_id_list};
use crate::domain::{AttemptOutcome, TaskId, TaskStatus, now_micros};

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
    /// The task is PROCESSING under a later attempt, which another delivery took over: this
    /// attempt's holder is fenced out, and its result is only recorded in the history.
    Fenced {
        holder: u32,
    },
    NotFound,
}

/// One attempt, as the history records it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord<'a> {
    pub attempt: u32,
    pub worker: &'a str,
    pub started_at: DateTime<Utc>,
}

/// PROCESSING → DONE or FAILED, and the attempt recorded with its outcome, in one transaction.
/// Only if the task is PROCESSING: of several deliveries racing, one finishes it.
pub async fn finish_attempt(
    pool: &MySqlPool,
    id: TaskId,
    record: AttemptRecord<'_>,
    outcome: TaskStatus,
    message: &str,
) -> anyhow::Result<Transition> {
    let mut conn = super::acquire(pool).await?;
    finish_one(&mut conn, id, record, outcome, message).await
}

async fn finish_one(
    conn: &mut MySqlConnection,
    id: TaskId,
    record: AttemptRecord<'_>,
    outcome: TaskStatus,
    message: &str,
) -> anyhow::Result<Transition> {
    debug_assert!(outcome.is_terminal());
    let now = now_micros();
    // The common path: the task is PROCESSING under this very attempt, which is recorded on the
    // row. One statement, one commit.
    let finished = sqlx::query(
        "UPDATE tasks FORCE INDEX (PRIMARY) \
         SET status = ?, updated_at = ?, finished_at = ?, message = ?, \
         attempt_worker = ?, attempt_started_at = ? \
         WHERE id = ? AND status = 'PROCESSING' AND attempts = ?",
    )
    .bind(outcome.as_str())
    .bind(now.naive_utc())
    .bind(now.naive_utc())
    .bind(message)
    .bind(record.worker)
    .bind(record.started_at.naive_utc())
    .bind(id.to_string())
    .bind(record.attempt)
    .execute(&mut *conn)
    .await
    .with_context(|| format!("moving task {id} to {outcome}"))?;
    if finished.rows_affected() == 1 {
        return Ok(Transition::Applied { updated_at: now });
    }
    finish_in_history(conn, id, record, now).await
}

/// A finish off the common path: the task is finished already, or PROCESSING under a later
/// attempt that fenced this one out. Nothing changes but the history, where this attempt's
/// record replaces the guess that it was abandoned.
async fn finish_in_history(
    conn: &mut MySqlConnection,
    id: TaskId,
    record: AttemptRecord<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<Transition> {
    let transition = current_state(&mut *conn, id, record.attempt).await?;
    let note = match transition {
        Transition::Fenced { .. } => "fenced: a later attempt took the task over",
        _ => "superseded: another delivery finished the task",
    };
    insert_attempt(&mut *conn, id, record, now, None, Some(note)).await?;
    Ok(transition)
}

/// One finished attempt, as [`finish_attempts`] takes it.
#[derive(Debug, Clone)]
pub struct Finish {
    pub task_id: TaskId,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    /// DONE or FAILED.
    pub outcome: TaskStatus,
    pub message: String,
}

/// [`finish_attempt`] for many tasks, one result per task. The common case, every task still
/// PROCESSING under the attempt finishing it, is one UPDATE in one transaction.
pub async fn finish_attempts(
    db: &KeptConnections,
    worker: &str,
    finishes: &[Finish],
) -> Vec<anyhow::Result<Transition>> {
    let record = |finish: &Finish| AttemptRecord {
        attempt: finish.attempt,
        worker,
        started_at: finish.started_at,
    };
    if let [finish] = finishes {
        let finished = db
            .run(async |conn| {
                let record = record(finish);
                finish_one(
                    conn,
                    finish.task_id,
                    record,
                    finish.outcome,
                    &finish.message,
                )
                .await
            })
            .await;
        return vec![finished];
    }
    let one_by_one = || {
        futures_util::future::join_all(finishes.iter().map(|finish| {
            finish_attempt(
                db.pool(),
                finish.task_id,
                record(finish),
                finish.outcome,
                &finish.message,
            )
        }))
    };
    let batch = async {
        let applied = db
            .run(async |conn| finish_all_processing(conn, worker, finishes).await)
            .await?;
        Ok(applied.map(|updated_at| vec![Transition::Applied { updated_at }; finishes.len()]))
    };
    super::batch_or_one_by_one(finishes.len(), "finish", batch, one_by_one).await
}

/// Finishes every task of `finishes`, if every one is PROCESSING under the attempt finishing it
/// (and none appears twice); `None`, with nothing changed, otherwise.
async fn finish_all_processing(
    conn: &mut MySqlConnection,
    worker: &str,
    finishes: &[Finish],
) -> anyhow::Result<Option<DateTime<Utc>>> {
    debug_assert!(finishes.iter().all(|finish| finish.outcome.is_terminal()));
    let now = now_micros();
    let mut tx = conn.begin().await.context("starting a transaction")?;
    let mut update = QueryBuilder::new("UPDATE tasks FORCE INDEX (PRIMARY) SET status =");
    push_case(&mut update, finishes, |finish| finish.outcome.as_str());
    update.push(", message =");
    push_case(&mut update, finishes, |finish| finish.message.as_str());
    update.push(", attempt_started_at =");
    push_case(&mut update, finishes, |finish| {
        finish.started_at.naive_utc()
    });
    update
        .push(", attempt_worker = ")
        .push_bind(worker)
        .push(", updated_at = ")
        .push_bind(now.naive_utc())
        .push(", finished_at = ")
        .push_bind(now.naive_utc())
        .push(" WHERE status = 'PROCESSING' AND attempts =");
    push_case(&mut update, finishes, |finish| finish.attempt);
    update.push(" AND id IN ");
    let ids: Vec<TaskId> = finishes.iter().map(|finish| finish.task_id).collect();
    push_id_list(&mut update, &ids);
    let updated = update
        .build()
        .execute(&mut *tx)
        .await
        .with_context(|| format!("finishing {} tasks", finishes.len()))?;
    if updated.rows_affected() != finishes.len() as u64 {
        tx.rollback().await.context("ending the transaction")?;
        return Ok(None);
    }
    tx.commit().await.context(super::CommitUncertain)?;
    Ok(Some(now))
}

/// ` CASE id WHEN ? THEN ? … END`: a value per task, for one statement that changes many rows.
fn push_case<'f, T>(
    query: &mut QueryBuilder<sqlx::MySql>,
    finishes: &'f [Finish],
    value: impl Fn(&'f Finish) -> T,
) where
    T: for<'t> sqlx::Encode<'t, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
{
    query.push(" CASE id");
    for finish in finishes {
        query
            .push(" WHEN ")
            .push_bind(finish.task_id.to_string())
            .push(" THEN ")
            .push_bind(value(finish));
    }
    query.push(" END");
}

/// PENDING or PROCESSING → FAILED: the task is given up on (attempts exhausted, or its message
/// is dead-lettered).
pub async fn fail_task(pool: &MySqlPool, id: TaskId, reason: &str) -> anyhow::Result<Transition> {
    let now = now_micros();
    let result = sqlx::query(
        "UPDATE tasks FORCE INDEX (PRIMARY) \
         SET status = 'FAILED', updated_at = ?, finished_at = ?, message = ? \
         WHERE id = ? AND status IN ('PENDING', 'PROCESSING')",
    )
    .bind(now.naive_utc())
    .bind(now.naive_utc())
    .bind(reason)
    .bind(id.to_string())
    .execute(pool)
    .await
    .with_context(|| format!("failing task {id}"))?;
    if result.rows_affected() == 1 {
        Ok(Transition::Applied { updated_at: now })
    } else {
        current_status(pool, id).await
    }
}

/// Records `record` as a transient failure, if its delivery still holds the attempt: `false`
/// when a later attempt fenced it out (that attempt's holder decides what happens next).
pub async fn record_retry(
    pool: &MySqlPool,
    id: TaskId,
    record: AttemptRecord<'_>,
    error: &str,
) -> anyhow::Result<bool> {
    let recorded = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO task_attempts (task_id, attempt, worker, started_at, finished_at, outcome, error) \
         SELECT id, ?, ?, ?, ?, ?, ? FROM tasks \
         WHERE id = ? AND status = 'PROCESSING' AND attempts = ?{ON_DUPLICATE_ATTEMPT}"
    )))
    .bind(record.attempt)
    .bind(record.worker)
    .bind(record.started_at.naive_utc())
    .bind(now_micros().naive_utc())
    .bind(AttemptOutcome::Retry.as_str())
    .bind(error)
    .bind(id.to_string())
    .bind(record.attempt)
    .execute(pool)
    .await
    .with_context(|| format!("recording attempt {} of task {id}", record.attempt))?;
    // An upsert that changes a row reports 2; one that finds it unchanged, 0 — but only a row
    // that passed the WHERE can be there.
    Ok(recorded.rows_affected() > 0 || holds_attempt(pool, id, record.attempt).await?)
}

/// An attempt's own record replaces an earlier guess about it. `VALUES()` stays although MySQL
/// 8.0.20 deprecates it: MariaDB rejects MySQL's `AS new` row alias, and both servers run this.
const ON_DUPLICATE_ATTEMPT: &str = " ON DUPLICATE KEY UPDATE worker = VALUES(worker), \
     started_at = VALUES(started_at), finished_at = VALUES(finished_at), \
     outcome = VALUES(outcome), error = VALUES(error)";

/// Writes the attempt's record; what the attempt itself reports replaces an earlier guess (an
/// attempt another delivery took for abandoned while it was still running).
async fn insert_attempt<'e>(
    executor: impl sqlx::MySqlExecutor<'e>,
    id: TaskId,
    record: AttemptRecord<'_>,
    finished_at: DateTime<Utc>,
    outcome: Option<AttemptOutcome>,
    error: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO task_attempts (task_id, attempt, worker, started_at, finished_at, outcome, error) \
         VALUES (?, ?, ?, ?, ?, ?, ?){ON_DUPLICATE_ATTEMPT}"
    )))
    .bind(id.to_string())
    .bind(record.attempt)
    .bind(record.worker)
    .bind(record.started_at.naive_utc())
    .bind(finished_at.naive_utc())
    .bind(outcome.map(|outcome| outcome.as_str()))
    .bind(error)
    .execute(executor)
    .await
    .with_context(|| format!("recording attempt {} of task {id}", record.attempt))?;
    Ok(())
}

/// Whether the task is PROCESSING under `attempt`.
async fn holds_attempt(pool: &MySqlPool, id: TaskId, attempt: u32) -> anyhow::Result<bool> {
    Ok(matches!(
        current_state(pool, id, attempt).await?,
        Transition::Skipped {
            current: TaskStatus::Processing
        }
    ))
}

/// Where the task stands for the holder of `attempt`, after a change that did not apply.
async fn current_state<'e>(
    executor: impl sqlx::MySqlExecutor<'e>,
    id: TaskId,
    attempt: u32,
) -> anyhow::Result<Transition> {
    let row: Option<(String, i32)> =
        sqlx::query_as("SELECT status, attempts FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(executor)
            .await
            .with_context(|| format!("reading the status of task {id}"))?;
    let Some((status, attempts)) = row else {
        return Ok(Transition::NotFound);
    };
    let current: TaskStatus = status.parse().context("decoding tasks.status")?;
    let holder = u32::try_from(attempts).unwrap_or(0);
    if current == TaskStatus::Processing && holder != attempt {
        return Ok(Transition::Fenced { holder });
    }
    Ok(Transition::Skipped { current })
}

async fn current_status<'e>(
    executor: impl sqlx::MySqlExecutor<'e>,
    id: TaskId,
) -> anyhow::Result<Transition> {
    let current: Option<String> = sqlx::query_scalar("SELECT status FROM tasks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(executor)
        .await
        .with_context(|| format!("reading the status of task {id}"))?;
    match current {
        None => Ok(Transition::NotFound),
        Some(status) => Ok(Transition::Skipped {
            current: status.parse().context("decoding tasks.status")?,
        }),
    }
}
