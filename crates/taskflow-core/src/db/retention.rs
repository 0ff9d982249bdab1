//! Retention (`TASK_RETENTION`): deleting DONE and FAILED tasks finished long ago, with their
//! attempts and idempotency keys, a small batch per transaction, by one process at a time.
//!
//! The process that prunes holds the MySQL advisory lock `taskflow.retention.<database>` on one
//! connection of its own for the whole run: `GET_LOCK(…, 0)` does not wait, so other workers
//! skip the run instead of competing for the same rows. The lock is released explicitly; a
//! connection whose release is in doubt is closed, never returned to the pool still holding it.

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{Connection as _, MySqlConnection, MySqlPool, QueryBuilder};

use super::push_id_list;

/// The advisory lock's name for the connection's database; MySQL allows 64 characters.
const LOCK_NAME: &str = "LEFT(CONCAT('taskflow.retention.', DATABASE()), 64)";

/// Rows deleted by one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub tasks: u64,
    pub attempts: u64,
    pub keys: u64,
}

/// The retention lock, held on a connection taken out of the pool for it.
pub struct RetentionLock {
    conn: Option<MySqlConnection>,
}

impl RetentionLock {
    /// Takes the lock without waiting; `None` when another process holds it.
    pub async fn try_acquire(pool: &MySqlPool) -> anyhow::Result<Option<Self>> {
        // Detached: the pool must never hand this connection to anyone while it holds the lock.
        let mut conn = super::acquire(pool).await?.detach();
        let got: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT GET_LOCK({LOCK_NAME}, 0)"
        )))
        .fetch_one(&mut conn)
        .await
        .context("taking the retention lock")?;
        if got == Some(1) {
            Ok(Some(Self { conn: Some(conn) }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The connection that holds the lock, for the pruning itself.
    pub fn connection(&mut self) -> &mut MySqlConnection {
        self.conn.as_mut().expect("the lock is held until released")
    }

    /// Releases the lock and closes its connection (closing releases it too, should the
    /// release fail).
    pub async fn release(mut self) -> anyhow::Result<()> {
        let mut conn = self.conn.take().expect("released once");
        let released = sqlx::query(sqlx::AssertSqlSafe(format!("DO RELEASE_LOCK({LOCK_NAME})")))
            .execute(&mut conn)
            .await
            .context("releasing the retention lock");
        let _ = conn.close().await;
        released.map(|_| ())
    }
}

/// Deletes up to `batch` DONE or FAILED tasks finished before `cutoff`, oldest first, with their
/// `task_attempts` rows and idempotency keys, in one transaction. The candidates are found on
/// `idx_tasks_finished_at` without locks, then locked by primary key with their state checked
/// again, so a task an operator retries meanwhile is kept.
pub async fn prune_finished_batch(
    conn: &mut MySqlConnection,
    cutoff: DateTime<Utc>,
    batch: u32,
) -> anyhow::Result<Pruned> {
    let cutoff: NaiveDateTime = cutoff.naive_utc();
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tasks FORCE INDEX (idx_tasks_finished_at) WHERE finished_at < ? \
         AND status IN ('DONE', 'FAILED') ORDER BY finished_at LIMIT ?",
    )
    .bind(cutoff)
    .bind(batch)
    .fetch_all(&mut *conn)
    .await
    .context("finding tasks past their retention")?;
    if candidates.is_empty() {
        return Ok(Pruned::default());
    }
    let mut tx = conn.begin().await.context("starting a retention batch")?;
    let result = async {
        let mut lock = QueryBuilder::new("SELECT id FROM tasks FORCE INDEX (PRIMARY) WHERE id IN ");
        push_id_list(&mut lock, &candidates);
        lock.push(" AND status IN ('DONE', 'FAILED') AND finished_at < ")
            .push_bind(cutoff)
            .push(" FOR UPDATE");
        let ids: Vec<String> = lock
            .build_query_scalar()
            .fetch_all(&mut *tx)
            .await
            .context("locking tasks past their retention")?;
        if ids.is_empty() {
            return Ok(Pruned::default());
        }
        let mut attempts = QueryBuilder::new("DELETE FROM task_attempts WHERE task_id IN ");
        push_id_list(&mut attempts, &ids);
        let attempts = attempts
            .build()
            .execute(&mut *tx)
            .await
            .context("pruning attempts")?
            .rows_affected();
        // A task's key is as old as the task: the created_at range keeps this on its index.
        let mut keys = QueryBuilder::new("DELETE FROM idempotency_keys WHERE created_at < ");
        keys.push_bind(cutoff).push(" AND task_id IN ");
        push_id_list(&mut keys, &ids);
        let keys = keys
            .build()
            .execute(&mut *tx)
            .await
            .context("pruning idempotency keys")?
            .rows_affected();
        let mut tasks = QueryBuilder::new("DELETE FROM tasks WHERE id IN ");
        push_id_list(&mut tasks, &ids);
        let tasks = tasks
            .build()
            .execute(&mut *tx)
            .await
            .context("pruning tasks")?
            .rows_affected();
        anyhow::Ok(Pruned {
            tasks,
            attempts,
            keys,
        })
    }
    .await;
    match result {
        Ok(pruned) => {
            tx.commit().await.context("committing a retention batch")?;
            Ok(pruned)
        }
        Err(err) => {
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}
