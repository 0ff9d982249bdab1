//! The outbox relay against hostile rows and slow brokers.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;
use taskflow_core::contract::TaskCreated;
use taskflow_core::db::{self, DispatchMark, OutboxMessage};
use taskflow_core::domain::TaskId;
use taskflow_tests::{Options, TestApp};

/// An API whose own relay stays out of the way: each test runs its passes itself.
async fn spawn_without_relay() -> TestApp {
    TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("OUTBOX_SWEEP_INTERVAL_MS", "3600000".to_owned())],
        ..Options::default()
    })
    .await
}

/// Makes the task due for the relay now.
async fn make_due(app: &TestApp, id: TaskId) {
    sqlx::query("UPDATE tasks SET dispatch_due_at = ? WHERE id = ?")
        .bind((taskflow_core::domain::now_micros() - Duration::from_secs(1)).naive_utc())
        .bind(id.to_string())
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_holds_no_row_lock_while_it_waits_for_the_broker() {
    let app = spawn_without_relay().await;
    let id = app
        .create_task("slow broker", json!({"message": "m"}))
        .await;
    app.wait_until_dispatched(id).await;
    make_due(&app, id).await;
    let (publishing, mut is_publishing) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (release, released) = tokio::sync::watch::channel(false);

    let pool = app.pool.clone();
    let pass = tokio::spawn(async move {
        db::relay_outbox(&pool, 10, |_message: OutboxMessage| {
            let publishing = publishing.clone();
            let mut released = released.clone();
            async move {
                publishing.send(()).unwrap();
                released.wait_for(|go| *go).await.unwrap();
                Ok(())
            }
        })
        .await
    });
    is_publishing.recv().await.expect("the relay publishes");

    // While the broker has not confirmed, a worker can lock the row at once.
    let mut conn = sqlx::MySqlConnection::connect(&app.direct.db.url)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    let locked = sqlx::query("SELECT id FROM tasks WHERE id = ? FOR UPDATE")
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    release.send(true).unwrap();
    let report = pass.await.unwrap().unwrap();

    assert!(
        locked.is_ok(),
        "the row was locked during the publish: {locked:?}"
    );
    assert_eq!(report.published, 1);
    assert!(
        !app.dispatch_due(id).await,
        "a confirmed publish clears the claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_a_message_is_parked_and_the_rest_still_go_out() {
    let app = spawn_without_relay().await;
    let good = app.create_task("good", json!({"message": "m"})).await;
    app.wait_until_dispatched(good).await;
    make_due(&app, good).await;
    // Another producer sharing the table wrote an id that is not a UUID.
    sqlx::query(
        "INSERT INTO tasks (id, title, status, created_at, updated_at, dispatch_due_at) \
         VALUES ('not-a-uuid', 'foreign', 'PENDING', NOW(6), NOW(6), NOW(6) - INTERVAL 1 SECOND)",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let published = std::sync::Mutex::new(Vec::new());
    let report = db::relay_outbox(&app.pool, 10, |message: OutboxMessage| {
        published.lock().unwrap().push(message);
        async { Ok(()) }
    })
    .await
    .expect("one bad row does not stop the pass");

    assert_eq!((report.published, report.parked), (1, 1));
    let (status, message): (String, Option<String>) =
        sqlx::query_as("SELECT status, message FROM tasks WHERE id = 'not-a-uuid'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "FAILED");
    assert!(message.unwrap().contains("not a UUID"));
    let again = db::relay_outbox(&app.pool, 10, |_| async { Ok(()) })
        .await
        .unwrap();
    assert_eq!(
        again,
        db::RelayReport::default(),
        "parked rows are not taken again"
    );

    // The relayed message keeps the time the task was requested, not the relay's.
    let published = published.into_inner().unwrap();
    let message: TaskCreated = serde_json::from_slice(&published[0].body).unwrap();
    let task = app.get_task(good).await;
    let created_at: chrono::DateTime<chrono::Utc> =
        task["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(message.requested_at, created_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_a_task_dispatched_never_erases_a_newer_mark() {
    let app = spawn_without_relay().await;
    let id = app
        .create_task("retried since", json!({"message": "m"}))
        .await;
    app.wait_until_dispatched(id).await;
    let old = taskflow_core::domain::now_micros();
    let newer = old + Duration::from_secs(60);
    sqlx::query("UPDATE tasks SET dispatch_due_at = ? WHERE id = ?")
        .bind(newer.naive_utc())
        .bind(id.to_string())
        .execute(&app.pool)
        .await
        .unwrap();

    // The confirm of the older dispatch arrives late.
    let stale = DispatchMark {
        task_id: id,
        due_at: old,
    };
    db::mark_dispatched(&app.pool, &[stale]).await.unwrap();
    assert!(app.dispatch_due(id).await, "the newer mark stays");

    let current = DispatchMark {
        task_id: id,
        due_at: newer,
    };
    db::mark_dispatched(&app.pool, &[current]).await.unwrap();
    assert!(!app.dispatch_due(id).await);
}
