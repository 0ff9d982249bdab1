//! The outbox, kept on the task row, and the sweeps that use it.
//!
//! A task whose `task.created` message the broker has not confirmed yet has `dispatch_due_at`
//! set: the INSERT that creates the task (or the UPDATE that retries it) sets it, so the task and
//! its pending dispatch are written by one statement, in one commit. The API publishes right
//! after that commit; whatever clears the column first ends the task's dispatch — the worker's
//! start (in the statement that starts it, at no extra cost), or the API a little after the
//! broker confirmed (in batches, for tasks still queued). The relay publishes whatever is still
//! due after the grace, so a task accepted with 201 is dispatched even if the broker was down or
//! the API crashed in between. Relays in several API replicas claim disjoint rows
//! (`FOR UPDATE SKIP LOCKED`, then the claim is committed before the broker is waited on).
//! A delayed task (`run_at` ahead) is written due at its `run_at` and left to the relay alone.
//!
//! Clearing the column sets `updated_at = updated_at`: an UPDATE that names the column keeps
//! MySQL's `ON UPDATE CURRENT_TIMESTAMP` from touching it.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySqlPool, QueryBuilder, Row as _};

use super::push_id_list;
use crate::contract::TaskCreated;
use crate::domain::{TaskId, TaskStatus, now_micros};

/// A message due for publishing.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub task_id: TaskId,
    pub body: Vec<u8>,
    /// For a task PROCESSING (which only the stuck-task sweep makes due): the attempt found
    /// abandoned, which the message's delivery takes over.
    pub supersedes: Option<u32>,
    /// For a delayed task's first dispatch: the `run_at` it was due at, to measure how late it
    /// is published.
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// A task's outbox mark as it was when its message was published: clearing it is a
/// compare-and-set, so a newer mark (an operator's retry since) is never erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchMark {
    pub task_id: TaskId,
    pub due_at: DateTime<Utc>,
}

/// Marks tasks whose message the broker confirmed as dispatched, in one statement: each row
/// whose mark is still the one its message was published for. A task a worker has started is
/// marked already: its row is left as it is, nothing written.
pub async fn mark_dispatched<'e>(
    executor: impl sqlx::MySqlExecutor<'e>,
    marks: &[DispatchMark],
) -> anyhow::Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let ids: Vec<TaskId> = marks.iter().map(|mark| mark.task_id).collect();
    let mut query = QueryBuilder::new(
        "UPDATE tasks FORCE INDEX (PRIMARY) SET dispatch_due_at = NULL, updated_at = updated_at \
         WHERE dispatch_due_at IS NOT NULL AND id IN ",
    );
    push_id_list(&mut query, &ids);
    query.push(" AND CASE id");
    for mark in marks {
        query
            .push(" WHEN ")
            .push_bind(mark.task_id.to_string())
            .push(" THEN dispatch_due_at = ")
            .push_bind(mark.due_at.naive_utc());
    }
    query.push(" ELSE FALSE END");
    query
        .build()
        .execute(executor)
        .await
        .with_context(|| format!("marking {} tasks dispatched", marks.len()))?;
    Ok(())
}

/// What one relay pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
    /// Rows that cannot be made into a message, set FAILED with the reason.
    pub parked: usize,
}

/// The relay's claim query (due time, batch size): a range of `idx_tasks_dispatch_due_at` in due
/// order, so rows due later, however many, are never read.
pub const DUE_TASKS: &str = "SELECT id, CAST(payload AS CHAR) AS payload, created_at, status, \
                             attempts, run_at FROM tasks WHERE dispatch_due_at <= ? \
                             ORDER BY dispatch_due_at LIMIT ? FOR UPDATE SKIP LOCKED";

/// How long the relay's claim on a row lasts: a message whose publish failed (or whose relay
/// died mid-pass) is taken again after it.
const CLAIM: Duration = Duration::from_secs(5);

/// Publishes up to `limit` due messages with `publish` (which must return only once the broker
/// confirmed) and marks those dispatched. Rows are claimed by moving their mark `CLAIM` ahead in
/// a short transaction (`SKIP LOCKED`, so relays in several replicas take disjoint rows); no
/// row lock is held while the broker is waited on. A published message clears its claim by
/// compare-and-set; a failed one stays claimed until the claim runs out, then is retried. A row
/// that cannot be made into a message is parked: FAILED, with the reason, never retried.
pub async fn relay_outbox<F, Fut>(
    pool: &MySqlPool,
    limit: u32,
    publish: F,
) -> anyhow::Result<RelayReport>
where
    F: Fn(OutboxMessage) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let now = now_micros();
    let claimed_until = now + CLAIM;
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let rows = sqlx::query(DUE_TASKS)
        .bind(now.naive_utc())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .context("claiming due tasks")?;
    if rows.is_empty() {
        // End the transaction now: a rollback left to the drop would run only when the
        // connection is next used, holding a metadata lock on the table until then.
        tx.rollback().await.context("ending the relay pass")?;
        return Ok(RelayReport::default());
    }
    let mut due = Vec::with_capacity(rows.len());
    let mut claimed = Vec::with_capacity(rows.len());
    let mut parked = Vec::new();
    for row in &rows {
        let raw_id: String = row.try_get("id").context("reading tasks.id")?;
        match outbox_message(row) {
            Ok(message) => {
                claimed.push(raw_id);
                due.push(message);
            }
            Err(err) => {
                tracing::error!(task_id = %raw_id, error = format!("{err:#}"), "parking a task that cannot be dispatched");
                parked.push((raw_id, format!("parked by the outbox relay: {err:#}")));
            }
        }
    }
    if !claimed.is_empty() {
        let mut claim =
            QueryBuilder::new("UPDATE tasks FORCE INDEX (PRIMARY) SET dispatch_due_at = ");
        claim
            .push_bind(claimed_until.naive_utc())
            .push(", updated_at = updated_at WHERE id IN ");
        push_id_list(&mut claim, &claimed);
        claim
            .build()
            .execute(&mut *tx)
            .await
            .context("claiming due tasks")?;
    }
    for (id, reason) in &parked {
        sqlx::query(
            "UPDATE tasks FORCE INDEX (PRIMARY) SET status = 'FAILED', message = ?, \
             finished_at = ?, updated_at = ?, dispatch_due_at = NULL WHERE id = ?",
        )
        .bind(reason.chars().take(1000).collect::<String>())
        .bind(now.naive_utc())
        .bind(now.naive_utc())
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("parking a task")?;
    }
    tx.commit().await.context("committing the relay's claim")?;

    // Publish them all at once: confirms are asynchronous, so this costs one round trip.
    let results =
        futures_util::future::join_all(due.iter().map(|message| publish(message.clone()))).await;
    let mut sent = Vec::new();
    let mut failed = 0;
    for (message, result) in due.iter().zip(results) {
        match result {
            Ok(()) => sent.push(DispatchMark {
                task_id: message.task_id,
                due_at: claimed_until,
            }),
            Err(err) => {
                tracing::warn!(task_id = %message.task_id, error = format!("{err:#}"), "relay publish failed; will retry");
                failed += 1;
            }
        }
    }
    mark_dispatched(pool, &sent)
        .await
        .context("recording the relay pass")?;
    Ok(RelayReport {
        published: sent.len(),
        failed,
        parked: parked.len(),
    })
}

/// The `task.created` message of a due row, with the time the task was first requested.
fn outbox_message(row: &sqlx::mysql::MySqlRow) -> anyhow::Result<OutboxMessage> {
    let task_id: TaskId = row
        .try_get::<String, _>("id")?
        .parse()
        .context("tasks.id is not a UUID")?;
    let payload: Option<String> = row.try_get("payload")?;
    let payload = match payload {
        Some(text) => serde_json::from_str(&text).context("tasks.payload is not JSON")?,
        None => serde_json::Value::Null,
    };
    let created_at: NaiveDateTime = row.try_get("created_at")?;
    let message = TaskCreated {
        task_id,
        payload,
        requested_at: created_at.and_utc(),
    };
    let status: TaskStatus = row
        .try_get::<String, _>("status")?
        .parse()
        .context("decoding tasks.status")?;
    let attempts: i32 = row.try_get("attempts")?;
    let run_at: Option<NaiveDateTime> = row.try_get("run_at")?;
    let never_started = status == TaskStatus::Pending && attempts == 0;
    Ok(OutboxMessage {
        task_id,
        body: message.to_json(),
        supersedes: (status == TaskStatus::Processing)
            .then(|| u32::try_from(attempts).unwrap_or(0)),
        scheduled_for: run_at
            .map(|at| at.and_utc())
            .filter(|at| never_started && *at > message.requested_at),
    })
}

/// Finds tasks PENDING or PROCESSING without any change for `lease` (a delayed task: nor since
/// its `run_at`, as its row is not changed by its dispatch) — their message was lost, or
/// the worker holding them vanished with it — and makes them due for dispatch now. Renewing
/// `updated_at` keeps the next sweep from taking them again at once. Returns how many.
///
/// Candidates are found by a plain read, then updated by primary key with the conditions checked
/// again. A single `UPDATE … WHERE status IN …` would lock every PENDING and PROCESSING row it
/// scans, stuck or not (InnoDB locks what a locking read examines), holding up the workers'
/// status changes, and it would take `idx_tasks_status` before the rows, the reverse of their
/// order: a deadlock with a worker's finish, seen in the bench.
pub async fn redispatch_stuck_tasks(
    pool: &MySqlPool,
    lease: Duration,
    limit: u32,
) -> anyhow::Result<u64> {
    let now = now_micros();
    let cutoff: NaiveDateTime = (now - lease).naive_utc();
    let stuck: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE status IN ('PENDING', 'PROCESSING') AND updated_at < ? \
         AND dispatch_due_at IS NULL AND (run_at IS NULL OR run_at < ?) LIMIT ?",
    )
    .bind(cutoff)
    .bind(cutoff)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("finding stuck tasks")?;
    if stuck.is_empty() {
        return Ok(0);
    }
    let mut update = QueryBuilder::new("UPDATE tasks FORCE INDEX (PRIMARY) SET dispatch_due_at = ");
    update
        .push_bind(now.naive_utc())
        .push(", updated_at = ")
        .push_bind(now.naive_utc())
        .push(" WHERE status IN ('PENDING', 'PROCESSING') AND updated_at < ")
        .push_bind(cutoff)
        .push(" AND dispatch_due_at IS NULL AND (run_at IS NULL OR run_at < ")
        .push_bind(cutoff)
        .push(") AND id IN ");
    push_id_list(&mut update, &stuck);
    let result = update
        .build()
        .execute(pool)
        .await
        .context("re-dispatching stuck tasks")?;
    Ok(result.rows_affected())
}
