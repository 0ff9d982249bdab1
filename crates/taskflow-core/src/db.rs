//! MySQL/MariaDB: the connection pool, the migrations, and every query on `tasks`.
//!
//! The SQL is in plain sight here and nowhere else. Two MariaDB facts shape it: its JSON type is
//! `LONGTEXT` with a `CHECK`, and sqlx cannot decode its `ENUM` into a derived enum, so payloads
//! travel as text and statuses as strings that are parsed into [`TaskStatus`] right here.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Connection as _, MySqlConnection, MySqlPool, QueryBuilder, Row as _};

use crate::config::DbSettings;
use crate::connect::retry_connect;
use crate::domain::{Payload, Task, TaskId, TaskStatus, Title};

refinery::embed_migrations!("../../migrations");

/// Connects a pool, retrying as `DB_CONNECT_ATTEMPTS` / `DB_CONNECT_BACKOFF` say.
pub async fn connect(settings: &DbSettings) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(&settings.url).context("parsing DB_URL")?;
    retry_connect("MySQL", settings.connect, || {
        MySqlPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
    })
    .await
}

/// Creates the database `DB_URL` names if it does not exist yet, so a fresh server needs no
/// manual step before `migrate`.
pub async fn create_database_if_missing(settings: &DbSettings) -> anyhow::Result<()> {
    let options = MySqlConnectOptions::from_str(&settings.url).context("parsing DB_URL")?;
    let Some(database) = options.get_database().map(str::to_owned) else {
        anyhow::bail!("DB_URL names no database");
    };
    if database.contains('`') {
        anyhow::bail!("the database name in DB_URL contains a backquote");
    }
    // Every account can open information_schema, whatever it was granted.
    let server_options = options.clone().database("information_schema");
    let mut server = retry_connect("MySQL", settings.connect, || {
        MySqlConnection::connect_with(&server_options)
    })
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4"
    )))
    .execute(&mut server)
    .await
    .with_context(|| format!("creating database {database}"))?;
    server.close().await.context("closing the connection")?;
    Ok(())
}

/// Applies every migration in `migrations/` that the database has not seen yet. The one
/// function behind `cargo xtask migrate`, `taskflow-api migrate` and the test harness.
pub async fn migrate(pool: &MySqlPool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool
        .acquire()
        .await
        .context("acquiring a connection to migrate")?;
    let report = migrations::runner()
        .run_async(&mut RefineryConnection(&mut conn))
        .await
        .context("running migrations")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| migration.to_string())
        .collect())
}

/// A round trip to the database, for health checks.
pub async fn ping(pool: &MySqlPool) -> anyhow::Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .context("SELECT 1")?;
    Ok(())
}

/// Inserts a new PENDING task.
pub async fn insert_task(pool: &MySqlPool, task: &Task) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO tasks (id, title, payload, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(task.task_id.to_string())
    .bind(task.title.as_str())
    .bind(task.payload.to_json_text())
    .bind(task.status.as_str())
    .bind(task.created_at.naive_utc())
    .bind(task.updated_at.naive_utc())
    .execute(pool)
    .await
    .with_context(|| format!("inserting task {}", task.task_id))?;
    Ok(())
}

const TASK_COLUMNS: &str = "id, title, CAST(payload AS CHAR) AS payload, status, \
                            created_at, updated_at, finished_at, message";

pub async fn get_task(pool: &MySqlPool, id: TaskId) -> anyhow::Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .with_context(|| format!("reading task {id}"))?;
    row.map(|row| task_from_row(&row)).transpose()
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

/// A page of tasks, newest first; `status` filters, `before` continues a previous page.
pub async fn list_tasks(
    pool: &MySqlPool,
    status: Option<TaskStatus>,
    before: Option<Cursor>,
    limit: u32,
) -> anyhow::Result<Vec<Task>> {
    let mut query = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE TRUE"));
    if let Some(status) = status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(cursor) = before {
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
    let rows = query
        .build()
        .fetch_all(pool)
        .await
        .context("listing tasks")?;
    rows.iter().map(task_from_row).collect()
}

/// What a conditional status change found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// This call made the change; the caller announces it.
    Applied { updated_at: DateTime<Utc> },
    /// The task was not in the expected state: someone else moved it (or it is already where
    /// the caller wanted it). Nothing changed; nothing is to be announced.
    Skipped { current: TaskStatus },
    /// There is no task with this id.
    NotFound,
}

/// PENDING → PROCESSING, only if the task is PENDING.
pub async fn mark_processing(pool: &MySqlPool, id: TaskId) -> anyhow::Result<Transition> {
    transition(pool, id, TaskStatus::Pending, TaskStatus::Processing, None).await
}

/// PROCESSING → DONE or FAILED, only if the task is PROCESSING: however many deliveries of one
/// task race here, exactly one of them finishes it.
pub async fn mark_finished(
    pool: &MySqlPool,
    id: TaskId,
    outcome: TaskStatus,
    message: &str,
) -> anyhow::Result<Transition> {
    debug_assert!(outcome.is_terminal());
    transition(pool, id, TaskStatus::Processing, outcome, Some(message)).await
}

async fn transition(
    pool: &MySqlPool,
    id: TaskId,
    from: TaskStatus,
    to: TaskStatus,
    message: Option<&str>,
) -> anyhow::Result<Transition> {
    debug_assert!(from.can_become(to));
    let now = crate::domain::now_micros();
    let finished_at = to.is_terminal().then(|| now.naive_utc());
    let result = sqlx::query(
        "UPDATE tasks SET status = ?, updated_at = ?, finished_at = ?, message = ? \
         WHERE id = ? AND status = ?",
    )
    .bind(to.as_str())
    .bind(now.naive_utc())
    .bind(finished_at)
    .bind(message)
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(pool)
    .await
    .with_context(|| format!("moving task {id} from {from} to {to}"))?;
    if result.rows_affected() == 1 {
        return Ok(Transition::Applied { updated_at: now });
    }
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

fn task_from_row(row: &sqlx::mysql::MySqlRow) -> anyhow::Result<Task> {
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
    Ok(Task {
        task_id: id.parse().context("decoding tasks.id")?,
        title: Title::parse(row.try_get("title")?).context("decoding tasks.title")?,
        payload,
        status: status.parse().context("decoding tasks.status")?,
        created_at: created_at.and_utc(),
        updated_at: updated_at.and_utc(),
        finished_at: finished_at.map(|at| at.and_utc()),
        message: row.try_get("message")?,
    })
}

/// Lets refinery run its migrations over a sqlx connection, so TaskFlow needs one MySQL driver,
/// not two. Each call runs its statements in one transaction (MySQL commits DDL implicitly, which
/// is why each migration file holds one DDL concern).
struct RefineryConnection<'c>(&'c mut MySqlConnection);

impl refinery_core::traits::r#async::AsyncTransaction for RefineryConnection<'_> {
    type Error = sqlx::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut tx = self.0.begin().await?;
        let mut count = 0;
        for query in queries {
            sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_owned()))
                .execute(&mut *tx)
                .await?;
            count += 1;
        }
        tx.commit().await?;
        Ok(count)
    }
}

impl refinery_core::traits::r#async::AsyncQuery<Vec<refinery_core::Migration>>
    for RefineryConnection<'_>
{
    async fn query(&mut self, query: &str) -> Result<Vec<refinery_core::Migration>, Self::Error> {
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|row| {
                let version: i32 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let applied_on: String = row.try_get(2)?;
                let checksum: String = row.try_get(3)?;
                let applied_on = time::OffsetDateTime::parse(
                    &applied_on,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|err| sqlx::Error::Decode(err.into()))?;
                let checksum = checksum
                    .parse()
                    .map_err(|err: std::num::ParseIntError| sqlx::Error::Decode(err.into()))?;
                Ok(refinery_core::Migration::applied(
                    version, name, applied_on, checksum,
                ))
            })
            .collect()
    }
}

impl refinery_core::AsyncMigrate for RefineryConnection<'_> {}
