//! The transactional outbox and the sweeps that use it.
//!
//! A `task.created` message is written to `task_outbox` in the transaction that creates (or
//! retries) its task. The API publishes it right after the commit and then deletes the row; the
//! relay publishes whatever is still there once it is due, so a task accepted with 201 is
//! dispatched even if the broker was down or the API crashed in between. Relays in several API
//! replicas take disjoint rows (`FOR UPDATE SKIP LOCKED`), so none is published twice by them.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySql, MySqlPool, QueryBuilder, Row as _, Transaction};

use crate::contract::TaskCreated;
use crate::domain::{TaskId, now_micros};

/// A message waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub task_id: TaskId,
    pub body: Vec<u8>,
}

/// Writes (or replaces) the task's outbox row, due at `due`.
pub(super) async fn insert(
    tx: &mut Transaction<'_, MySql>,
    message: &TaskCreated,
    due: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO task_outbox (task_id, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE body = VALUES(body), attempts = 0, \
         next_attempt_at = VALUES(next_attempt_at)",
    )
    .bind(message.task_id.to_string())
    .bind(String::from_utf8(message.to_json()).expect("JSON is UTF-8"))
    .bind(message.requested_at.naive_utc())
    .bind(due.naive_utc())
    .execute(&mut **tx)
    .await
    .with_context(|| format!("writing the outbox row of task {}", message.task_id))?;
    Ok(())
}

/// Deletes the outbox rows of messages the broker confirmed, in one statement.
pub async fn delete_from_outbox(pool: &MySqlPool, ids: &[TaskId]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::new("DELETE FROM task_outbox WHERE task_id IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    query.push(")");
    query
        .build()
        .execute(pool)
        .await
        .with_context(|| format!("deleting {} sent outbox rows", ids.len()))?;
    Ok(())
}

/// What one relay pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

/// Publishes up to `limit` due outbox messages with `publish` (which must return only once the
/// broker confirmed), deletes those that were confirmed and postpones the others with a growing
/// delay. The rows stay locked for the pass, so other relays skip them.
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
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let rows = sqlx::query(
        "SELECT task_id, body, attempts FROM task_outbox WHERE next_attempt_at <= ? \
         ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(now.naive_utc())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .context("claiming due outbox rows")?;
    if rows.is_empty() {
        // End the transaction now: a rollback left to the drop would run only when the
        // connection is next used, holding a metadata lock on the table until then.
        tx.rollback().await.context("ending the relay pass")?;
        return Ok(RelayReport::default());
    }
    let mut due = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("task_id")?;
        let body: String = row.try_get("body")?;
        let attempts: i32 = row.try_get("attempts")?;
        due.push((
            OutboxMessage {
                task_id: id.parse().context("decoding task_outbox.task_id")?,
                body: body.into_bytes(),
            },
            attempts,
        ));
    }

    // Publish them all at once: confirms are asynchronous, so this costs one round trip.
    let results =
        futures_util::future::join_all(due.iter().map(|(message, _)| publish(message.clone())))
            .await;
    let mut sent = Vec::new();
    let mut report = RelayReport::default();
    for ((message, attempts), result) in due.iter().zip(results) {
        match result {
            Ok(()) => sent.push(message.task_id),
            Err(err) => {
                report.failed += 1;
                let retry_at = now + postpone_after(*attempts);
                tracing::warn!(task_id = %message.task_id, error = format!("{err:#}"), "outbox publish failed; will retry");
                sqlx::query(
                    "UPDATE task_outbox SET attempts = attempts + 1, next_attempt_at = ? \
                     WHERE task_id = ?",
                )
                .bind(retry_at.naive_utc())
                .bind(message.task_id.to_string())
                .execute(&mut *tx)
                .await
                .context("postponing an outbox row")?;
            }
        }
    }
    if !sent.is_empty() {
        let mut query = QueryBuilder::new("DELETE FROM task_outbox WHERE task_id IN (");
        let mut list = query.separated(", ");
        for id in &sent {
            list.push_bind(id.to_string());
        }
        query.push(")");
        query
            .build()
            .execute(&mut *tx)
            .await
            .context("deleting relayed outbox rows")?;
    }
    tx.commit().await.context("committing the relay pass")?;
    report.published = sent.len();
    Ok(report)
}

/// 1 s, 2 s, 4 s, … up to a minute between publish attempts of one row.
fn postpone_after(attempts: i32) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 6)).min(Duration::from_secs(60))
}

/// Finds tasks PENDING or PROCESSING without any change for `lease` — their message was lost, or
/// the worker holding them vanished with it — and puts a new `task.created` for each in the
/// outbox, due now. Renewing `updated_at` keeps the next sweep from taking them again at once.
pub async fn redispatch_stuck_tasks(
    pool: &MySqlPool,
    lease: Duration,
    limit: u32,
) -> anyhow::Result<Vec<TaskId>> {
    let now = now_micros();
    let cutoff: NaiveDateTime = (now - lease).naive_utc();
    let mut tx = pool.begin().await.context("starting a transaction")?;
    let rows = sqlx::query(
        "SELECT id, CAST(payload AS CHAR) AS payload FROM tasks \
         WHERE status IN ('PENDING', 'PROCESSING') AND updated_at < ? \
         ORDER BY updated_at LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .context("finding stuck tasks")?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: TaskId = row
            .try_get::<String, _>("id")?
            .parse()
            .context("decoding tasks.id")?;
        let payload: Option<String> = row.try_get("payload")?;
        let payload = match payload {
            Some(text) => serde_json::from_str(&text).context("decoding tasks.payload")?,
            None => serde_json::Value::Null,
        };
        let message = TaskCreated {
            task_id: id,
            payload,
            requested_at: now,
        };
        sqlx::query(
            "INSERT IGNORE INTO task_outbox (task_id, body, created_at, next_attempt_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(String::from_utf8(message.to_json()).expect("JSON is UTF-8"))
        .bind(now.naive_utc())
        .bind(now.naive_utc())
        .execute(&mut *tx)
        .await
        .context("queueing a stuck task")?;
        sqlx::query("UPDATE tasks SET updated_at = ? WHERE id = ?")
            .bind(now.naive_utc())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .context("renewing a stuck task's lease")?;
        ids.push(id);
    }
    tx.commit()
        .await
        .context("committing the stuck-task sweep")?;
    Ok(ids)
}
