//! MySQL/MariaDB: the connection pool, the migrations, and every query TaskFlow makes.
//!
//! The SQL is in plain sight in this module's files and nowhere else. Two MariaDB facts shape
//! it: its JSON type is `LONGTEXT` with a `CHECK`, and sqlx cannot decode its `ENUM` into a
//! derived enum, so payloads travel as text and statuses as strings parsed into domain types
//! right here.
//!
//! Every status change names its index: `UPDATE tasks FORCE INDEX (PRIMARY) … WHERE id … AND
//! status = …`. Left to itself the optimizer finds the row through `idx_tasks_status` (the
//! status plus the key it carries is as selective as the key), and since that index is the one
//! being changed it must first gather the rows in a buffer ("Using buffer" in `EXPLAIN`), after
//! weighing every status index. By the primary key the same UPDATE costs MariaDB markedly less
//! (docs/performance.md).

mod idempotency;
mod kept;
mod migrations;
mod outbox;
mod processing;
mod retention;
mod start;
pub mod stats;
mod tasks;

use std::future::Future;
use std::str::FromStr;

use anyhow::Context as _;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Connection as _, MySqlConnection, MySqlPool};

pub use self::idempotency::{
    IdempotencyKey, KEY_LIFETIME, KeyedCreate, create_task_with_key, prune_idempotency_keys,
};
pub use self::kept::KeptConnections;
pub use self::migrations::migrate;
pub use self::outbox::{
    DUE_TASKS, DispatchMark, OutboxMessage, RelayReport, mark_dispatched, redispatch_stuck_tasks,
    relay_outbox,
};
pub use self::processing::{
    AttemptRecord, Finish, Transition, fail_task, finish_attempt, finish_attempts, record_retry,
};
pub use self::retention::{Pruned, RetentionLock, prune_finished_batch};
pub use self::start::{Start, Started, start_attempt, start_attempts};
pub use self::tasks::{
    Cursor, ListFilter, RetryOutcome, create_task, create_tasks, get_task, get_task_detail,
    list_query, list_tasks, retry_task,
};
use crate::backoff::retry_connect;
use crate::config::DbSettings;

/// Connects a pool, retrying as `DB_CONNECT_ATTEMPTS` / `DB_CONNECT_BACKOFF` say.
pub async fn connect(settings: &DbSettings) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(&settings.url).context("parsing DB_URL")?;
    let statement_timeout = settings.statement_timeout;
    retry_connect("MySQL", settings.connect, || {
        MySqlPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // READ COMMITTED: no gap locks, and an UPDATE keeps locks only on the rows
                    // it changes. Correctness rests on conditional updates and row locks, which
                    // this level keeps; REPEATABLE READ's range locks only made the API, the
                    // relay's sweeps and the workers wait on each other.
                    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .execute(&mut *conn)
                        .await?;
                    // Strict mode on every table: a value that does not fit is an error, never
                    // silently truncated into something other than what was accepted.
                    sqlx::query(
                        "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES')",
                    )
                    .execute(&mut *conn)
                    .await?;
                    set_statement_timeout(conn, statement_timeout).await
                })
            })
            .connect_with(options.clone())
    })
    .await
}

/// How often a process measures its clock against the database's again (clocks drift).
const CLOCK_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Measures the database's clock against this host's and sets the offset every timestamp is
/// taken with ([`crate::domain::now_micros`]), then again every minute while the pool is open.
pub async fn sync_clock(pool: &MySqlPool) -> anyhow::Result<()> {
    measure_clock(pool).await?;
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CLOCK_SYNC_INTERVAL).await;
            if pool.is_closed() {
                return;
            }
            if let Err(err) = measure_clock(&pool).await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "measuring the database clock failed"
                );
            }
        }
    });
    Ok(())
}

async fn measure_clock(pool: &MySqlPool) -> anyhow::Result<()> {
    let mut conn = acquire(pool).await?;
    let sent = chrono::Utc::now();
    let database: chrono::NaiveDateTime = sqlx::query_scalar("SELECT UTC_TIMESTAMP(6)")
        .fetch_one(&mut *conn)
        .await
        .context("reading the database clock")?;
    let received = chrono::Utc::now();
    // The database read its clock about halfway through the round trip.
    let ours = sent + (received - sent) / 2;
    let offset = database.and_utc() - ours;
    crate::domain::set_clock_offset(offset);
    if offset.num_milliseconds().abs() > 1_000 {
        tracing::warn!(
            offset_ms = offset.num_milliseconds(),
            "this host's clock differs from the database's; timestamps follow the database"
        );
    }
    Ok(())
}

/// Makes the server abort any statement of this session that runs longer than `timeout` (none
/// when zero), so no caller waits on a statement without end. MariaDB calls it
/// `max_statement_time` (seconds, every statement); MySQL `max_execution_time` (milliseconds,
/// SELECTs only: its writes end by `innodb_lock_wait_timeout`).
pub(crate) async fn set_statement_timeout(
    conn: &mut MySqlConnection,
    timeout: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let mariadb = sqlx::query("SET SESSION max_statement_time = ?")
        .bind(timeout.as_secs_f64())
        .execute(&mut *conn)
        .await;
    match mariadb {
        Ok(_) => Ok(()),
        // ER_UNKNOWN_SYSTEM_VARIABLE: not MariaDB.
        Err(sqlx::Error::Database(err))
            if err
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|err| err.number() == 1193) =>
        {
            sqlx::query("SET SESSION max_execution_time = ?")
                .bind(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
                .execute(conn)
                .await
                .map(|_| ())
        }
        Err(err) => Err(err),
    }
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

/// A round trip to the database, for health checks.
pub async fn ping(pool: &MySqlPool) -> anyhow::Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .context("SELECT 1")?;
    Ok(())
}

/// Appends `(?, ?, …)` binding `ids`.
fn push_id_list(query: &mut sqlx::QueryBuilder<sqlx::MySql>, ids: &[impl std::fmt::Display]) {
    if ids.is_empty() {
        // Matches nothing, and is valid SQL (an empty `IN ()` is not).
        query.push("(NULL)");
        return;
    }
    let mut list = query.separated(", ");
    list.push_unseparated("(");
    for id in ids {
        list.push_bind(id.to_string());
    }
    list.push_unseparated(")");
}

/// Writes `count` tasks with `batch`, the fast path; where it cannot take them all (`Ok(None)`,
/// nothing written) or is refused, with `one_by_one`, the path that handles every case. A batch
/// that must fail whole (see [`must_fail_whole`]) fails every task with its error.
async fn batch_or_one_by_one<R, O>(
    count: usize,
    what: &str,
    batch: impl Future<Output = anyhow::Result<Option<Vec<R>>>>,
    one_by_one: impl FnOnce() -> O,
) -> Vec<anyhow::Result<R>>
where
    O: Future<Output = Vec<anyhow::Result<R>>>,
{
    match batch.await {
        Ok(Some(done)) => return done.into_iter().map(Ok).collect(),
        Ok(None) => {}
        Err(err) if must_fail_whole(&err) => return crate::batch::fail_all(err, count),
        Err(err) => tracing::warn!(
            tasks = count,
            error = format!("{err:#}"),
            "batch {what} failed; writing the tasks one by one"
        ),
    }
    one_by_one().await
}

/// A batch's COMMIT failed: it may or may not have happened, so the batch's tasks must not be
/// tried again one by one (the redelivery that follows handles either case).
#[derive(Debug)]
pub(crate) struct CommitUncertain;

impl std::fmt::Display for CommitUncertain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("committing the batch failed; it may or may not have been applied")
    }
}

/// A connection from the pool, for work that takes several statements on one connection.
async fn acquire(pool: &MySqlPool) -> anyhow::Result<sqlx::pool::PoolConnection<sqlx::MySql>> {
    pool.acquire().await.context("taking a database connection")
}

/// Whether a failed batch must fail as a whole rather than be retried task by task: the
/// database is unreachable (each retry would wait as long again), or the batch's commit is in
/// doubt (a retry could apply a change twice).
fn must_fail_whole(err: &anyhow::Error) -> bool {
    is_unreachable(err) || err.downcast_ref::<CommitUncertain>().is_some()
}

/// Whether a write that failed with `err` was never sent to the database (no connection could be
/// had), so nothing of it is stored. Any other failure after the statement was sent — a broken
/// connection, an uncertain commit — leaves its outcome unknown.
pub fn write_never_sent(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
        )
    })
}

/// Whether the database answered `err` by refusing the statement, so it changed nothing.
pub fn refused_by_database(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Database(_))
        )
    })
}

/// Whether `err` says the database cannot be reached (rather than that it refused a statement):
/// the caller may retry later, and a batch need not be retried task by task.
pub fn is_unreachable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        )
    })
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[test]
    fn an_uncertain_commit_fails_the_batch_whole_and_a_refused_statement_does_not() {
        let commit: anyhow::Result<()> =
            Err(sqlx::Error::Protocol("lost".into())).context(CommitUncertain);
        assert!(must_fail_whole(&commit.unwrap_err()));
        let refused = anyhow::Error::new(sqlx::Error::Protocol("refused".into()));
        assert!(!must_fail_whole(&refused));
        let unreachable = anyhow::Error::new(sqlx::Error::PoolTimedOut).context("inserting");
        assert!(must_fail_whole(&unreachable));
    }
}
