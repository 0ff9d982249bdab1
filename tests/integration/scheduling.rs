//! Delayed tasks: `run_at` on `POST /tasks`, published by the outbox relay once due.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskflow_core::db;
use taskflow_core::domain::{TaskId, TaskStatus, now_micros};
use taskflow_tests::{EVENT_TIMEOUT, Options, TestApp, poll_until};

/// Creates a task to run at `run_at`; returns its id and the answer.
async fn create_delayed(app: &TestApp, title: &str, run_at: DateTime<Utc>) -> (TaskId, Value) {
    let (status, body) = app
        .post_task(&json!({"title": title, "payload": {"message": "later"}, "run_at": run_at.to_rfc3339()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "POST /tasks answered {body}");
    (body["task_id"].as_str().unwrap().parse().unwrap(), body)
}

/// When the task's (finishing) attempt started.
async fn started_at(app: &TestApp, id: TaskId) -> DateTime<Utc> {
    let at: NaiveDateTime = sqlx::query_scalar("SELECT attempt_started_at FROM tasks WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    at.and_utc()
}

fn json_time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_task_is_not_dispatched_before_its_run_at_then_runs() {
    let app = TestApp::spawn().await;
    let run_at = now_micros() + Duration::from_secs(3);

    let (id, created) = create_delayed(&app, "delayed", run_at).await;

    assert_eq!(json_time(&created["run_at"]), run_at);
    assert_eq!(app.get_task(id).await["status"], "PENDING");
    app.wait_for_status(id, TaskStatus::Done).await;
    assert!(
        started_at(&app, id).await >= run_at,
        "the task started before its run_at"
    );
    let shown = app.get_task(id).await;
    assert_eq!(json_time(&shown["run_at"]), run_at, "{shown}");
    let (_, _, listed) = app.get("/tasks").await;
    assert_eq!(json_time(&listed[0]["run_at"]), run_at, "{listed}");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("taskflow_scheduled_dispatch_lag_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_at_in_the_past_runs_now_through_the_fast_path() {
    // The relay is kept out of the way: only the publish right after the commit can run it.
    let app = TestApp::spawn_with(Options {
        vars: vec![("OUTBOX_SWEEP_INTERVAL_MS", "3600000".to_owned())],
        ..Options::default()
    })
    .await;
    let run_at = now_micros() - Duration::from_secs(3600);

    let (id, created) = create_delayed(&app, "overdue", run_at).await;

    app.wait_for_status(id, TaskStatus::Done).await;
    assert_eq!(json_time(&created["run_at"]), run_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_or_too_distant_run_at_is_refused_with_422_naming_the_field() {
    let app = TestApp::spawn_with(Options {
        vars: vec![("MAX_DELAY", "1h".to_owned())],
        ..Options::default()
    })
    .await;
    let too_far = (now_micros() + Duration::from_secs(3600 + 60)).to_rfc3339();
    for run_at in [
        json!("tomorrow"),
        json!("2026-13-01T00:00:00Z"),
        json!("2026-12-07 10:00"),
        json!(17),
        json!(too_far),
    ] {
        let (status, body) = app
            .post_task(&json!({"title": "t", "payload": null, "run_at": run_at}))
            .await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{run_at}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{body}");
        assert_eq!(body["error"]["field"], "run_at", "{body}");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "a refused task was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_task_survives_a_restart_of_the_api_and_the_worker() {
    let mut app = TestApp::spawn().await;
    // The worker stops first, so what reaches the queue stays there to be counted.
    app.stop_worker().await.expect("the worker stops cleanly");
    let run_at = now_micros() + Duration::from_secs(3);
    let (id, _) = create_delayed(&app, "survivor", run_at).await;
    // A task to run now, created after it: once its message is queued, the delayed task's
    // would be too, had it been published at once.
    let marker = app.create_task("now", json!({"message": "now"})).await;
    let queue = app.direct.amqp.queue.clone();
    assert!(
        poll_until(EVENT_TIMEOUT, async || app.queue_depth(&queue).await
            >= Some(1))
        .await
    );
    assert_eq!(
        app.queue_depth(&queue).await,
        Some(1),
        "the delayed task was queued early"
    );

    // The API stops too before it is due, and both stay down until it is overdue.
    app.stop_api().await.expect("the API stops cleanly");
    assert!(poll_until(EVENT_TIMEOUT, async || now_micros() > run_at).await);
    assert_eq!(app.stored_status(id).await, TaskStatus::Pending);
    app.restart_api().await;
    app.start_worker().await;

    app.wait_for_status(id, TaskStatus::Done).await;
    app.wait_for_status(marker, TaskStatus::Done).await;
    assert!(started_at(&app, id).await >= run_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_tasks_are_relayed_in_full_batches_in_due_order() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("OUTBOX_SWEEP_INTERVAL_MS", "3600000".to_owned())],
        ..Options::default()
    })
    .await;
    // Created in an order unlike their due order.
    let base = now_micros() + Duration::from_secs(3);
    let mut offsets: Vec<u64> = (0..450).collect();
    fastrand::shuffle(&mut offsets);
    let created = futures_util::future::join_all(offsets.iter().map(async |&offset| {
        let (id, _) = create_delayed(&app, "batch", base + Duration::from_millis(offset)).await;
        (offset, id)
    }));
    let mut expected = created.await;
    expected.sort();
    let expected: Vec<TaskId> = expected.into_iter().map(|(_, id)| id).collect();
    assert!(
        poll_until(EVENT_TIMEOUT, async || now_micros()
            > base + Duration::from_millis(450))
        .await
    );

    let mut batches = Vec::new();
    loop {
        let published = std::sync::Mutex::new(Vec::new());
        let report = db::relay_outbox(&app.pool, 200, |message: db::OutboxMessage| {
            published.lock().unwrap().push(message.task_id);
            async { Ok(()) }
        })
        .await
        .unwrap();
        if report.published == 0 {
            break;
        }
        batches.push(published.into_inner().unwrap());
    }

    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [200, 200, 50]);
    assert_eq!(batches.concat(), expected, "not relayed in due order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reads_due_rows_through_the_due_time_index_whatever_waits_later() {
    let app = TestApp::spawn_without_worker().await;
    // Many tasks due far ahead, written straight to the table.
    let far = (now_micros() + Duration::from_secs(20 * 86_400)).naive_utc();
    for _ in 0..20 {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO tasks (id, title, status, created_at, updated_at, dispatch_due_at, run_at) ",
        );
        insert.push_values(0..500, |mut row, _| {
            row.push_bind(TaskId::new().to_string())
                .push_bind("far")
                .push_bind("PENDING")
                .push_bind(now_micros().naive_utc())
                .push_bind(now_micros().naive_utc())
                .push_bind(far)
                .push_bind(far);
        });
        insert.build().execute(&app.pool).await.unwrap();
    }
    sqlx::query("ANALYZE TABLE tasks")
        .execute(&app.pool)
        .await
        .unwrap();

    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {}", db::DUE_TASKS));
    let plan = sqlx::query(explain)
        .bind(now_micros().naive_utc())
        .bind(200)
        .fetch_one(&app.pool)
        .await
        .unwrap();

    use sqlx::Row as _;
    let key: Option<String> = plan.try_get("key").unwrap();
    let rows: Option<i64> = plan
        .try_get::<Option<i64>, _>("rows")
        .or_else(|_| {
            plan.try_get::<Option<u64>, _>("rows")
                .map(|rows| rows.map(|r| r as i64))
        })
        .or_else(|_| {
            plan.try_get::<Option<String>, _>("rows")
                .map(|rows| rows.and_then(|r| r.parse().ok()))
        })
        .unwrap();
    assert_eq!(key.as_deref(), Some("idx_tasks_dispatch_due_at"));
    assert!(
        rows.unwrap_or(0) < 100,
        "the relay would read {rows:?} rows"
    );
}
