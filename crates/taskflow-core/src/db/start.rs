//! Starting an attempt: PENDING → PROCESSING under a new attempt number, or the take-over of an
//! attempt whose holder is gone (see [`Start`]). Starting a task also clears its outbox mark
//! (`dispatch_due_at`): a message that reached a worker is dispatched.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{Connection as _, MySqlConnection, MySqlPool, QueryBuilder, Row as _};

use super::{KeptConnections, push_id_list};
use crate::domain::{TaskId, TaskStatus, now_micros};

/// What [`start_attempt`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The task is PROCESSING under attempt `attempt`. `from_pending` says this call moved it
    /// there (and should announce it); otherwise it resumes a task whose earlier attempt never
    /// ended (a worker died, or the message was redelivered).
    Attempt {
        attempt: u32,
        from_pending: bool,
        updated_at: DateTime<Utc>,
    },
    /// Not for this delivery: the task is DONE or FAILED already, or PENDING again after an
    /// operator's retry (whose own message will start it).
    Skipped(TaskStatus),
    /// Another delivery holds the task's current attempt and may still be running it: this one
    /// is a duplicate, and starting a second run would race the first.
    Held {
        attempt: u32,
    },
    NotFound,
}

/// A delivery asking to start its task. If the task is PROCESSING, the delivery takes the
/// attempt over only when the attempt's holder is gone or let it go: the delivery is
/// `redelivered`, or it `supersedes` that attempt, or the attempt is older than `lease`. Any
/// other copy is a duplicate while the holder works, and starts nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub task_id: TaskId,
    /// The broker's `redelivered` flag: this very message reached a consumer before, which let
    /// it go unsettled (its channel closed: it died or lost the broker).
    pub redelivered: bool,
    /// The attempt this message was published to follow: a retry names the attempt that
    /// failed, the stuck-task sweep the attempt it found abandoned.
    pub supersedes: Option<u32>,
    /// `TASK_LEASE_SECONDS`: an attempt unchanged for this long is abandoned.
    pub lease: Duration,
}

impl Start {
    /// A first delivery, with the default lease: as a test or a tool starts a task.
    pub fn new(task_id: TaskId) -> Self {
        Self {
            task_id,
            redelivered: false,
            supersedes: None,
            lease: Duration::from_secs(300),
        }
    }
}

/// PENDING → PROCESSING under a new attempt number, or a take-over of an abandoned attempt.
pub async fn start_attempt(pool: &MySqlPool, start: Start) -> anyhow::Result<Started> {
    let mut conn = super::acquire(pool).await?;
    start_one(&mut conn, start).await
}

async fn start_one(conn: &mut MySqlConnection, start: Start) -> anyhow::Result<Started> {
    let id = start.task_id;
    let now = now_micros();
    // The common path in one statement: LAST_INSERT_ID(expr) hands the new attempt number back
    // in the OK packet, so no SELECT is needed.
    let started = sqlx::query(
        "UPDATE tasks FORCE INDEX (PRIMARY) \
         SET status = 'PROCESSING', attempts = LAST_INSERT_ID(attempts + 1), updated_at = ?, \
         dispatch_due_at = NULL WHERE id = ? AND status = 'PENDING'",
    )
    .bind(now.naive_utc())
    .bind(id.to_string())
    .execute(&mut *conn)
    .await
    .with_context(|| format!("marking task {id} PROCESSING"))?;
    if started.rows_affected() == 1 {
        return Ok(Started::Attempt {
            attempt: u32::try_from(started.last_insert_id()).unwrap_or(u32::MAX),
            from_pending: true,
            updated_at: now,
        });
    }
    resume_attempt(conn, start, now).await
}

/// [`start_attempt`] for many tasks, on a batch writer's connection, one result per start. The
/// common case, every task PENDING and never attempted (a new task), is one UPDATE in one
/// transaction: each gets attempt 1.
pub async fn start_attempts(
    db: &KeptConnections,
    starts: &[Start],
) -> Vec<anyhow::Result<Started>> {
    if let [start] = starts {
        return vec![db.run(async |conn| start_one(conn, *start).await).await];
    }
    let one_by_one = || {
        futures_util::future::join_all(starts.iter().map(|&start| start_attempt(db.pool(), start)))
    };
    let ids: Vec<TaskId> = starts.iter().map(|start| start.task_id).collect();
    let batch = db.run(async |conn| start_all_new(conn, &ids).await);
    super::batch_or_one_by_one(starts.len(), "start", batch, one_by_one).await
}

/// Starts attempt 1 of every task of `ids`, if every one is PENDING and has no attempt yet (and
/// none appears twice); `None`, with nothing changed, otherwise. An operator's retry keeps the
/// count, so a retried task takes the one-task path, which reads its number.
async fn start_all_new(
    conn: &mut MySqlConnection,
    ids: &[TaskId],
) -> anyhow::Result<Option<Vec<Started>>> {
    let now = now_micros();
    let mut tx = conn.begin().await.context("starting a transaction")?;
    let mut update = QueryBuilder::new(
        "UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'PROCESSING', updated_at = ",
    );
    update
        .push_bind(now.naive_utc())
        .push(", attempts = 1, dispatch_due_at = NULL")
        .push(" WHERE status = 'PENDING' AND attempts = 0 AND id IN ");
    push_id_list(&mut update, ids);
    let updated = update
        .build()
        .execute(&mut *tx)
        .await
        .with_context(|| format!("marking {} tasks PROCESSING", ids.len()))?;
    if updated.rows_affected() != ids.len() as u64 {
        tx.rollback().await.context("ending the transaction")?;
        return Ok(None);
    }
    tx.commit().await.context(super::CommitUncertain)?;
    let started = Started::Attempt {
        attempt: 1,
        from_pending: true,
        updated_at: now,
    };
    Ok(Some(vec![started; ids.len()]))
}

/// The task was not PENDING: finished already, unknown, or PROCESSING under an attempt. That
/// attempt is taken over only if its holder is gone or let it go (see [`Start`]): it is closed
/// in the history as abandoned, and the new attempt number fences its holder out.
async fn resume_attempt(
    conn: &mut MySqlConnection,
    start: Start,
    now: DateTime<Utc>,
) -> anyhow::Result<Started> {
    let id = start.task_id;
    let mut tx = conn.begin().await.context("starting a transaction")?;
    let row = sqlx::query("SELECT status, attempts, updated_at FROM tasks WHERE id = ? FOR UPDATE")
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
    if status != TaskStatus::Processing {
        // Terminal; or PENDING again by now (an operator's retry raced us): the next delivery
        // of its message starts it.
        tx.rollback().await.context("releasing the task row")?;
        return Ok(Started::Skipped(status));
    }
    let previous = u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0);
    let since: NaiveDateTime = row.try_get("updated_at")?;
    let lease = chrono::TimeDelta::from_std(start.lease).unwrap_or(chrono::TimeDelta::MAX);
    let abandoned = since.and_utc() + lease <= now;
    let handed_over = start.supersedes == Some(previous);
    if !start.redelivered && !handed_over && !abandoned {
        tx.rollback().await.context("releasing the task row")?;
        return Ok(Started::Held { attempt: previous });
    }
    if previous > 0 {
        // IGNORE: the attempt may have recorded its own end (a retry) before it was abandoned.
        sqlx::query(
            "INSERT IGNORE INTO task_attempts \
             (task_id, attempt, worker, started_at, finished_at, outcome, error) \
             VALUES (?, ?, 'unknown', ?, ?, 'RETRY', 'abandoned: the message was delivered again')",
        )
        .bind(id.to_string())
        .bind(previous)
        .bind(since)
        .bind(now.naive_utc())
        .execute(&mut *tx)
        .await
        .with_context(|| format!("closing the abandoned attempt of task {id}"))?;
    }
    let attempt = previous + 1;
    sqlx::query(
        "UPDATE tasks SET attempts = ?, updated_at = ?, dispatch_due_at = NULL WHERE id = ?",
    )
    .bind(attempt)
    .bind(now.naive_utc())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .with_context(|| format!("starting attempt {attempt} of task {id}"))?;
    tx.commit().await.context("committing the attempt start")?;
    Ok(Started::Attempt {
        attempt,
        from_pending: false,
        updated_at: now,
    })
}
