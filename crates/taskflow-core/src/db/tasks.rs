//! The `tasks` table: creating a task (due for dispatch), reading, listing, and the operator's
//! retry.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool, QueryBuilder, Row as _};

use super::KeptConnections;
use crate::domain::{Attempt, Payload, Task, TaskDetail, TaskId, TaskStatus, Title, now_micros};

const TASK_COLUMNS: &str = "id, title, CAST(payload AS CHAR) AS payload, status, \
                            created_at, updated_at, finished_at, message, run_at";

/// Inserts a new PENDING task, due for dispatch after `grace`: one statement, one commit. Once
/// this returns, the task will be dispatched even if the publish that follows fails (the relay
/// publishes what is still due after the grace the fast path had).
pub async fn create_task(pool: &MySqlPool, task: &Task, grace: Duration) -> anyhow::Result<()> {
    let mut conn = super::acquire(pool).await?;
    insert_one(&mut conn, task, grace).await
}

pub(super) async fn insert_one(
    conn: &mut MySqlConnection,
    task: &Task,
    grace: Duration,
) -> anyhow::Result<()> {
    insert_tasks(
        conn,
        std::slice::from_ref(task),
        &[task.payload.to_json_text()],
        grace,
    )
    .await
    .with_context(|| format!("inserting task {}", task.task_id))
}

/// Payload bytes one multi-row INSERT carries at most; a batch above it inserts its tasks one by
/// one, so a burst of large payloads never meets `max_allowed_packet` (4 MiB on MySQL 5.7).
const BATCH_PAYLOAD_BYTES: usize = 1 << 20;

/// [`create_task`] for many tasks at once, on a batch writer's connection: one multi-row
/// INSERT, one commit, one result per task. Should the batch be refused, each task is inserted
/// on its own, so one task's problem is not every task's (unless the database cannot be reached
/// at all).
pub async fn create_tasks(
    db: &KeptConnections,
    tasks: &[Task],
    grace: Duration,
) -> Vec<anyhow::Result<()>> {
    if let [task] = tasks {
        return vec![
            db.run(async |conn| insert_one(conn, task, grace).await)
                .await,
        ];
    }
    let one_by_one = || {
        futures_util::future::join_all(tasks.iter().map(|task| create_task(db.pool(), task, grace)))
    };
    let payloads: Vec<Option<String>> = tasks
        .iter()
        .map(|task| task.payload.to_json_text())
        .collect();
    if payloads.iter().flatten().map(String::len).sum::<usize>() > BATCH_PAYLOAD_BYTES {
        return one_by_one().await;
    }
    let batch = async {
        db.run(async |conn| insert_tasks(conn, tasks, &payloads, grace).await)
            .await?;
        Ok(Some(vec![(); tasks.len()]))
    };
    super::batch_or_one_by_one(tasks.len(), "insert", batch, one_by_one).await
}

async fn insert_tasks(
    conn: &mut MySqlConnection,
    tasks: &[Task],
    payloads: &[Option<String>],
    grace: Duration,
) -> anyhow::Result<()> {
    let mut query = QueryBuilder::new(
        "INSERT INTO tasks (id, title, payload, status, created_at, updated_at, dispatch_due_at, run_at) ",
    );
    query.push_values(tasks.iter().zip(payloads), |mut row, (task, payload)| {
        row.push_bind(task.task_id.to_string())
            .push_bind(task.title.as_str())
            .push_bind(payload.as_deref())
            .push_bind(task.status.as_str())
            .push_bind(task.created_at.naive_utc())
            .push_bind(task.updated_at.naive_utc())
            .push_bind(task.dispatch_due_at(grace).naive_utc())
            .push_bind(task.run_at.map(|at| at.naive_utc()));
    });
    query
        .build()
        .execute(conn)
        .await
        .with_context(|| format!("inserting {} tasks", tasks.len()))?;
    Ok(())
}

pub async fn get_task(pool: &MySqlPool, id: TaskId) -> anyhow::Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .with_context(|| format!("reading task {id}"))?;
    row.map(|row| task_from_row(&row)).transpose()
}

/// A task with its attempts, oldest first: those in `task_attempts`, and the one that finished
/// the task, kept on its row (unless `task_attempts` has that attempt too).
pub async fn get_task_detail(pool: &MySqlPool, id: TaskId) -> anyhow::Result<Option<TaskDetail>> {
    let Some(task) = get_task(pool, id).await? else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT attempt, worker, started_at, finished_at, CAST(outcome AS CHAR) AS outcome, error \
         FROM task_attempts WHERE task_id = ? \
         UNION ALL \
         SELECT attempts, COALESCE(attempt_worker, 'unknown'), attempt_started_at, finished_at, \
         CAST(status AS CHAR), IF(status = 'FAILED', message, NULL) \
         FROM tasks WHERE id = ? AND attempt_started_at IS NOT NULL \
         AND status IN ('DONE', 'FAILED') AND NOT EXISTS \
         (SELECT 1 FROM task_attempts WHERE task_id = tasks.id AND attempt = tasks.attempts) \
         ORDER BY attempt",
    )
    .bind(id.to_string())
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .with_context(|| format!("reading the attempts of task {id}"))?;
    let attempts = rows
        .iter()
        .map(|row| {
            let started_at: NaiveDateTime = row.try_get("started_at")?;
            let finished_at: Option<NaiveDateTime> = row.try_get("finished_at")?;
            let outcome: Option<String> = row.try_get("outcome")?;
            let attempt: i32 = row.try_get("attempt")?;
            Ok(Attempt {
                attempt: attempt
                    .try_into()
                    .context("decoding task_attempts.attempt")?,
                worker: row.try_get("worker")?,
                started_at: started_at.and_utc(),
                finished_at: finished_at.map(|at| at.and_utc()),
                outcome: outcome
                    .map(|o| o.parse())
                    .transpose()
                    .context("decoding task_attempts.outcome")?,
                error: row.try_get("error")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Some(TaskDetail { task, attempts }))
}

/// Where a page of the newest-first listing starts: strictly older than this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub task_id: TaskId,
}

impl Cursor {
    pub fn after(task: &Task) -> Self {
        Self {
            created_at: task.created_at,
            task_id: task.task_id,
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.created_at.timestamp_micros(), self.task_id)
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (micros, id) = s.split_once('_').ok_or(())?;
        let created_at = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(())?;
        let task_id = id.parse().map_err(|_| ())?;
        Ok(Self {
            created_at,
            task_id,
        })
    }
}

/// What `GET /tasks` narrows the list to; every filter is served by an index (the
/// `list_queries_use_an_index` test runs `EXPLAIN` on each).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<TaskStatus>,
    /// Continues a previous page.
    pub before: Option<Cursor>,
    pub title_prefix: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub created_before: Option<DateTime<Utc>>,
    /// Only these tasks (a dashboard reading the tasks it heard of in one request).
    pub ids: Option<Vec<TaskId>>,
}

/// A page of tasks, newest first.
pub async fn list_tasks(
    pool: &MySqlPool,
    filter: &ListFilter,
    limit: u32,
) -> anyhow::Result<Vec<Task>> {
    let rows = list_query("SELECT", filter, limit)
        .build()
        .fetch_all(pool)
        .await
        .context("listing tasks")?;
    rows.iter().map(task_from_row).collect()
}

/// The statement behind [`list_tasks`], after `verb` (`SELECT`, or `EXPLAIN SELECT` in tests).
pub fn list_query(verb: &str, filter: &ListFilter, limit: u32) -> QueryBuilder<sqlx::MySql> {
    let mut query = QueryBuilder::new(format!("{verb} {TASK_COLUMNS} FROM tasks WHERE TRUE"));
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(prefix) = &filter.title_prefix {
        // A prefix LIKE is a range on the title index once its wildcards are escaped.
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query
            .push(" AND title LIKE ")
            .push_bind(format!("{escaped}%"));
    }
    if let Some(after) = filter.created_after {
        query
            .push(" AND created_at >= ")
            .push_bind(after.naive_utc());
    }
    if let Some(before) = filter.created_before {
        query
            .push(" AND created_at < ")
            .push_bind(before.naive_utc());
    }
    if let Some(ids) = &filter.ids {
        let mut list = query.push(" AND id IN (").separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        query.push(")");
    }
    if let Some(cursor) = filter.before {
        // Spelled out rather than as a row comparison, which MySQL does not serve from an index.
        let created_at = cursor.created_at.naive_utc();
        query
            .push(" AND (created_at < ")
            .push_bind(created_at)
            .push(" OR (created_at = ")
            .push_bind(created_at)
            .push(" AND id < ")
            .push_bind(cursor.task_id.to_string())
            .push("))");
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    query
}

/// What an operator's retry found.
#[derive(Debug)]
pub enum RetryOutcome {
    /// The task is PENDING again and its message is in the outbox.
    Retried(Task),
    /// Only FAILED tasks can be retried.
    NotFailed(TaskStatus),
    NotFound,
}

/// FAILED → PENDING and due for dispatch. The attempt that failed it, if kept on the row, moves
/// into `task_attempts` in the same transaction.
pub async fn retry_task(
    pool: &MySqlPool,
    id: TaskId,
    grace: Duration,
) -> anyhow::Result<RetryOutcome> {
    let now = now_micros();
    let mut tx = pool.begin().await.context("starting a transaction")?;
    sqlx::query(
        "INSERT IGNORE INTO task_attempts \
         (task_id, attempt, worker, started_at, finished_at, outcome, error) \
         SELECT id, attempts, COALESCE(attempt_worker, 'unknown'), attempt_started_at, \
         finished_at, 'FAILED', message \
         FROM tasks WHERE id = ? AND status = 'FAILED' AND attempt_started_at IS NOT NULL \
         FOR UPDATE",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .with_context(|| format!("keeping the failed attempt of task {id}"))?;
    let result = sqlx::query(
        "UPDATE tasks FORCE INDEX (PRIMARY) \
         SET status = 'PENDING', updated_at = ?, finished_at = NULL, message = NULL, \
         attempt_worker = NULL, attempt_started_at = NULL, dispatch_due_at = ? \
         WHERE id = ? AND status = 'FAILED'",
    )
    .bind(now.naive_utc())
    .bind((now + grace).naive_utc())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .with_context(|| format!("resetting task {id}"))?;
    tx.commit().await.context("committing the retry")?;
    let task = get_task(pool, id).await?;
    Ok(match task {
        None => RetryOutcome::NotFound,
        Some(task) if result.rows_affected() == 1 => RetryOutcome::Retried(task),
        Some(task) => RetryOutcome::NotFailed(task.status),
    })
}

pub(super) fn task_from_row(row: &sqlx::mysql::MySqlRow) -> anyhow::Result<Task> {
    let id: String = row.try_get("id")?;
    let payload: Option<String> = row.try_get("payload")?;
    let payload = match payload {
        None => Payload::none(),
        Some(text) => {
            let value = serde_json::from_str(&text).context("decoding tasks.payload")?;
            // A row written by another producer may hold any JSON; show it rather than fail.
            Payload::parse(value).unwrap_or_default()
        }
    };
    let status: String = row.try_get("status")?;
    let created_at: NaiveDateTime = row.try_get("created_at")?;
    let updated_at: NaiveDateTime = row.try_get("updated_at")?;
    let finished_at: Option<NaiveDateTime> = row.try_get("finished_at")?;
    let run_at: Option<NaiveDateTime> = row.try_get("run_at")?;
    Ok(Task {
        task_id: id.parse().context("decoding tasks.id")?,
        title: Title::parse(row.try_get("title")?).context("decoding tasks.title")?,
        payload,
        status: status.parse().context("decoding tasks.status")?,
        created_at: created_at.and_utc(),
        updated_at: updated_at.and_utc(),
        finished_at: finished_at.map(|at| at.and_utc()),
        message: row.try_get("message")?,
        run_at: run_at.map(|at| at.and_utc()),
    })
}
