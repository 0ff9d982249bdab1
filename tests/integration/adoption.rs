//! Adopting a running Python deployment: `migrate` on the database its alembic migration
//! created keeps that table and its rows, and both services' flows work on the result.

use serde_json::json;
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_tests::{Options, TestApp, migrate_seeded_database};

/// What the Python services' alembic migration leaves: the original design's `tasks` table and
/// alembic's version table with its row.
const ALEMBIC_SCHEMA: &str = "
CREATE TABLE tasks (
  id           CHAR(36) PRIMARY KEY,
  title        VARCHAR(255) NOT NULL,
  payload      JSON NULL,
  status       ENUM('PENDING','PROCESSING','DONE','FAILED') NOT NULL,
  created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                ON UPDATE CURRENT_TIMESTAMP(6),
  finished_at  DATETIME(6) NULL
);
CREATE INDEX idx_tasks_status ON tasks (status);
CREATE TABLE alembic_version (
  version_num VARCHAR(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) VALUES ('0001');
";

/// A row as the Python API inserts it: only the original design's columns.
fn python_insert(id: TaskId, title: &str, status: &str) -> String {
    format!(
        "INSERT INTO tasks (id, title, payload, status) \
         VALUES ('{id}', '{title}', '{{\"message\": \"from python\"}}', '{status}');"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_created_by_alembic_is_adopted_with_its_rows_and_serves_both_services() {
    // Arrange: the Python deployment's database, with a finished and a waiting task.
    let done = TaskId::new();
    let pending = TaskId::new();
    let seed = format!(
        "{ALEMBIC_SCHEMA}{}{}UPDATE tasks SET finished_at = CURRENT_TIMESTAMP(6) WHERE id = '{done}';",
        python_insert(done, "py-done", "DONE"),
        python_insert(pending, "py-pending", "PENDING"),
    );

    // Act: the harness migrates it as `cargo xtask migrate` does, then starts our services.
    let app = TestApp::spawn_with(Options {
        seed: Some(seed),
        ..Options::default()
    })
    .await;

    // Assert: V1 is recorded, not run, and every later migration applied after it.
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM refinery_schema_history ORDER BY version")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(versions.first(), Some(&1));
    assert!(versions.len() >= 12, "applied: {versions:?}");
    assert!(
        versions.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "applied: {versions:?}"
    );
    let alembic: Vec<String> = sqlx::query_scalar("SELECT version_num FROM alembic_version")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(alembic, ["0001"]);
    // Every row is kept, and readable through our API.
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let task = app.get_task(done).await;
    assert_eq!(task["title"], "py-done");
    assert_eq!(task["status"], "DONE");
    assert_eq!(app.get_task(pending).await["status"], "PENDING");

    // The Python API still writes rows (the new columns are nullable or defaulted), and ours
    // reads them.
    let later = TaskId::new();
    sqlx::raw_sql(sqlx::AssertSqlSafe(python_insert(
        later, "py-later", "PENDING",
    )))
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(app.get_task(later).await["title"], "py-later");

    // A task our API creates on the adopted database is processed by our worker.
    let ours = app.create_task("ours", json!({"message": "adopted"})).await;
    app.wait_for_status(ours, TaskStatus::Done).await;
    assert_eq!(app.get_task(ours).await["message"], "adopted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_table_of_another_shape_stops_the_migration_naming_the_difference() {
    // Arrange: a `tasks` table that is not the original design's.
    let seed = "CREATE TABLE tasks (
        id CHAR(36) PRIMARY KEY,
        title VARCHAR(100) NOT NULL,
        status VARCHAR(16) NOT NULL
    );
    INSERT INTO tasks VALUES ('a', 'kept', 'new');";

    // Act
    let (result, tables) = migrate_seeded_database(seed).await;

    // Assert: refused, each difference named, and nothing created or run.
    let message = format!(
        "{:#}",
        result.expect_err("the migration must refuse the table")
    );
    for difference in [
        "column `title` is varchar(100), expected varchar(255)",
        "column `status` is varchar(16), expected enum('pending','processing','done','failed')",
        "column `payload` (json) is missing",
    ] {
        assert!(message.contains(difference), "{message}");
    }
    assert_eq!(tables, ["tasks"]);
}
