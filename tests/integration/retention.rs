//! Retention: finished tasks past `TASK_RETENTION` are pruned with their attempts and keys.

use std::time::Duration;

use serde_json::json;
use taskflow_core::db;
use taskflow_core::domain::{TaskId, now_micros};
use taskflow_tests::{EVENT_TIMEOUT, Options, TestApp, poll_until};

/// A task row in `status`, finished `age` ago (if finished), with one attempt and a key.
async fn arrange(app: &TestApp, status: &str, age: Duration) -> TaskId {
    let id = TaskId::new();
    let at = (now_micros() - age).naive_utc();
    let finished = matches!(status, "DONE" | "FAILED").then_some(at);
    sqlx::query(
        "INSERT INTO tasks (id, title, status, created_at, updated_at, finished_at, attempts) \
         VALUES (?, 'old', ?, ?, ?, ?, 1)",
    )
    .bind(id.to_string())
    .bind(status)
    .bind(at)
    .bind(at)
    .bind(finished)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO task_attempts (task_id, attempt, worker, started_at, finished_at, outcome) \
         VALUES (?, 1, 'w', ?, ?, 'RETRY')",
    )
    .bind(id.to_string())
    .bind(at)
    .bind(at)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (idem_key, request_hash, task_id, response, created_at) \
         VALUES (?, ?, ?, '{}', ?)",
    )
    .bind(id.to_string())
    .bind(&[0u8; 32][..])
    .bind(id.to_string())
    .bind(at)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

/// How many rows of `table` belong to the task.
async fn rows(app: &TestApp, table: &str, id: TaskId) -> i64 {
    let column = if table == "tasks" { "id" } else { "task_id" };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE {column} = ?"
    )))
    .bind(id.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn all_rows(app: &TestApp, id: TaskId) -> [i64; 3] {
    [
        rows(app, "tasks", id).await,
        rows(app, "task_attempts", id).await,
        rows(app, "idempotency_keys", id).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_prunes_old_finished_tasks_with_their_attempts_and_keys_and_keeps_the_rest() {
    let mut app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("TASK_RETENTION", "1d".to_owned())],
        ..Options::default()
    })
    .await;
    let two_days = Duration::from_secs(2 * 86_400);
    let old_done = arrange(&app, "DONE", two_days).await;
    let old_failed = arrange(&app, "FAILED", two_days).await;
    let recent_done = arrange(&app, "DONE", Duration::from_secs(3600)).await;
    let old_pending = arrange(&app, "PENDING", two_days).await;
    let old_processing = arrange(&app, "PROCESSING", two_days).await;

    app.start_worker().await;

    let pruned = poll_until(EVENT_TIMEOUT, async || {
        app.worker_counter("taskflow_retention_pruned_total{table=\"tasks\"}")
            .await
            == 2
    });
    assert!(
        pruned.await,
        "the worker did not prune the two old finished tasks"
    );
    assert_eq!(all_rows(&app, old_done).await, [0, 0, 0]);
    assert_eq!(all_rows(&app, old_failed).await, [0, 0, 0]);
    for kept in [recent_done, old_pending, old_processing] {
        assert_eq!(
            all_rows(&app, kept).await,
            [1, 1, 1],
            "task {kept} was touched"
        );
    }
    assert_eq!(
        app.worker_counter("taskflow_retention_pruned_total{table=\"task_attempts\"}")
            .await,
        2
    );
    // The API keeps serving them, and a new task still runs.
    let id = app
        .create_task("after pruning", json!({"message": "ok"}))
        .await;
    app.wait_for_status(id, taskflow_core::domain::TaskStatus::Done)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_pruners_only_one_takes_the_lock_until_it_is_released() {
    let app = TestApp::spawn_without_worker().await;

    let first = db::RetentionLock::try_acquire(&app.pool).await.unwrap();
    let second = db::RetentionLock::try_acquire(&app.pool).await.unwrap();

    assert!(first.is_some(), "the first pruner did not take the lock");
    assert!(second.is_none(), "both pruners took the lock");
    first.unwrap().release().await.unwrap();
    let after = db::RetentionLock::try_acquire(&app.pool).await.unwrap();
    assert!(after.is_some(), "the lock was not released");
    after.unwrap().release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_goes_in_batches_of_the_size_asked_oldest_first() {
    let app = TestApp::spawn_without_worker().await;
    let mut ids = Vec::new();
    for days in [5, 4, 3] {
        ids.push(arrange(&app, "DONE", Duration::from_secs(days * 86_400)).await);
    }
    let mut lock = db::RetentionLock::try_acquire(&app.pool)
        .await
        .unwrap()
        .unwrap();
    let cutoff = now_micros() - Duration::from_secs(86_400);

    let first = db::prune_finished_batch(lock.connection(), cutoff, 2)
        .await
        .unwrap();
    let oldest_gone = [
        rows(&app, "tasks", ids[0]).await,
        rows(&app, "tasks", ids[1]).await,
    ];
    let second = db::prune_finished_batch(lock.connection(), cutoff, 2)
        .await
        .unwrap();
    lock.release().await.unwrap();

    assert_eq!((first.tasks, first.attempts, first.keys), (2, 2, 2));
    assert_eq!(oldest_gone, [0, 0]);
    assert_eq!(rows(&app, "tasks", ids[2]).await, 0);
    assert_eq!(second.tasks, 1);
}
