//! `idempotency_keys`: a client's retry of `POST /tasks` with the same `Idempotency-Key` gets the
//! task its first request created instead of a second one.
//!
//! The key row and the task are inserted in one transaction, key first: a concurrent request
//! with the same key waits on the key's row lock until the first commits, then finds the key
//! taken and replays its stored answer. So however many identical requests race, one task is
//! stored and one message published.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::{Connection as _, MySqlConnection, MySqlPool, Row as _};

use crate::domain::Task;

/// How long a key holds: a retry within it replays, after it the key is free again.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A request's key and the SHA-256 of its body.
pub struct IdempotencyKey<'a> {
    pub key: &'a str,
    pub request_hash: [u8; 32],
}

/// What a keyed create did.
#[derive(Debug, PartialEq)]
pub enum KeyedCreate {
    /// The task was stored, with the key.
    Created,
    /// The key was used before with the same body: its first answer.
    Replay(String),
    /// The key was used before with another body.
    Mismatch,
}

/// Stores `task` and its key together, unless the key is already taken (see the module doc).
/// `response` is what the caller will answer, kept for replays.
pub async fn create_task_with_key(
    pool: &MySqlPool,
    task: &Task,
    grace: Duration,
    key: &IdempotencyKey<'_>,
    response: &str,
) -> anyhow::Result<KeyedCreate> {
    let now = task.created_at;
    let expired_before = now - KEY_LIFETIME;
    // A deadlock can end the wait of requests racing one that rolled back; one of them then
    // takes the key and the others find it, on another try.
    for _ in 0..3 {
        let mut conn = super::acquire(pool).await?;
        let mut tx = conn.begin().await.context("beginning a keyed create")?;
        sqlx::query("DELETE FROM idempotency_keys WHERE idem_key = ? AND created_at < ?")
            .bind(key.key.as_bytes())
            .bind(expired_before.naive_utc())
            .execute(&mut *tx)
            .await
            .context("removing an expired idempotency key")?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (idem_key, request_hash, task_id, response, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(key.key.as_bytes())
        .bind(&key.request_hash[..])
        .bind(task.task_id.to_string())
        .bind(response)
        .bind(now.naive_utc())
        .execute(&mut *tx)
        .await;
        match claimed {
            Ok(_) => {}
            Err(err) if is_duplicate(&err) || is_deadlock(&err) => {
                tx.rollback().await.context("rolling back a keyed create")?;
                // On the same connection: requests that wait on a key must not need a second one.
                if let Some(found) = find(&mut conn, key, expired_before).await? {
                    return Ok(found);
                }
                continue;
            }
            Err(err) => {
                let _ = tx.rollback().await;
                return Err(err).context("storing the idempotency key");
            }
        }
        if let Err(err) = super::tasks::insert_one(&mut tx, task, grace).await {
            let _ = tx.rollback().await;
            return Err(err);
        }
        tx.commit().await.context(super::CommitUncertain)?;
        return Ok(KeyedCreate::Created);
    }
    anyhow::bail!("idempotency key {:?} stayed contended", key.key)
}

async fn find(
    conn: &mut MySqlConnection,
    key: &IdempotencyKey<'_>,
    expired_before: DateTime<Utc>,
) -> anyhow::Result<Option<KeyedCreate>> {
    let row = sqlx::query(
        "SELECT request_hash, response FROM idempotency_keys WHERE idem_key = ? AND created_at >= ?",
    )
    .bind(key.key.as_bytes())
    .bind(expired_before.naive_utc())
    .fetch_optional(conn)
    .await
    .context("reading an idempotency key")?;
    Ok(row.map(|row| {
        let hash: Vec<u8> = row.get("request_hash");
        if hash == key.request_hash {
            KeyedCreate::Replay(row.get("response"))
        } else {
            KeyedCreate::Mismatch
        }
    }))
}

/// Deletes keys older than [`KEY_LIFETIME`], at most `limit` of them; returns how many.
pub async fn prune_idempotency_keys(
    pool: &MySqlPool,
    now: DateTime<Utc>,
    limit: u32,
) -> anyhow::Result<u64> {
    let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?")
        .bind((now - KEY_LIFETIME).naive_utc())
        .bind(limit)
        .execute(pool)
        .await
        .context("pruning idempotency keys")?;
    Ok(deleted.rows_affected())
}

fn is_duplicate(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|err| err.is_unique_violation())
}

fn is_deadlock(err: &sqlx::Error) -> bool {
    // ER_LOCK_DEADLOCK; its SQLSTATE 40001 is shared with other serialization failures.
    err.as_database_error()
        .and_then(|err| err.code())
        .is_some_and(|code| code == "40001")
}
