//! No task lost, stuck or done twice: each guarantee of the README's "Guarantees" section,
//! proven against real services with faults injected by the harness's proxies and by killing
//! real worker processes.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_tests::ws::Received;
use taskflow_tests::{Options, Proxied, TestApp};

use crate::WORKER_BINARY;

mod dead_letters;
mod outages;

fn options(proxied: Proxied, vars: &[(&'static str, &str)]) -> Options {
    Options {
        proxied,
        vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Options::default()
    }
}

/// Every task of `ids` is DONE, and the attempt history shows exactly one DONE attempt for each.
async fn assert_each_done_exactly_once(app: &TestApp, ids: &[TaskId]) {
    let done = app.done_attempts().await;
    for id in ids {
        assert_eq!(app.stored_status(*id).await, TaskStatus::Done, "task {id}");
        assert_eq!(done.get(id), Some(&1), "task {id} has one DONE attempt");
    }
}

/// Reads events until `count` DONE ones have arrived: the worker is well into its batch.
async fn wait_for_done_events(ws: &mut taskflow_tests::WsClient, count: usize) {
    let mut finished = 0;
    while finished < count {
        if let Received::Event(event) = ws.next().await {
            finished += usize::from(event["status"] == "DONE");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_task_no_worker_takes_is_marked_dispatched_and_published_once() {
    // Arrange: no worker, so the task's message waits in the queue; the relay would publish a
    // task still due after the grace (5 s here; the API marks a fifth of it after the confirm).
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("OUTBOX_GRACE_MS", "5000".to_owned())],
        ..Options::default()
    })
    .await;

    // Act
    let id = app.create_task("queued", json!({"message": "hi"})).await;
    app.wait_until_dispatched(id).await;

    // Assert: marked by the API, not by the relay after publishing it again (once a task is not
    // due, no relay takes it).
    assert_eq!(app.queue_depth(&app.direct.amqp.queue).await, Some(1));
    assert_eq!(app.stored_status(id).await, TaskStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_task_ends_its_dispatch_without_waiting_for_the_apis_mark() {
    // Arrange: an API that marks confirmed tasks only after twelve minutes (a fifth of the
    // grace), and a task whose message is in the queue.
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("OUTBOX_GRACE_MS", "3600000".to_owned())],
        ..Options::default()
    })
    .await;
    let id = app.create_task("started", json!({"message": "hi"})).await;
    app.take_message(&app.direct.amqp.queue)
        .await
        .expect("the task's message");
    assert!(app.dispatch_due(id).await, "the API marks it only later");

    // Act: a worker starts it.
    taskflow_core::db::start_attempt(&app.pool, taskflow_core::db::Start::new(id))
        .await
        .unwrap();

    // Assert
    assert!(!app.dispatch_due(id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_leaves_every_task_finished_exactly_once() {
    // Arrange: 200 tasks queued, then a worker process starts on them.
    let app = TestApp::spawn_without_worker().await;
    let mut ws = app.ws().await;
    let ids = app.create_tasks(200).await;
    let mut doomed = app.spawn_worker_process(WORKER_BINARY);

    // Act: SIGKILL it once it is well into the batch, then start another worker.
    wait_for_done_events(&mut ws, 20).await;
    doomed.kill();
    let _successor = app.spawn_worker_process(WORKER_BINARY);

    // Assert: every task finished, none twice. (The database decides: a worker killed between
    // its commit and its Redis publish leaves that one event unsent, by design.)
    app.wait_for_done_count(ids.len()).await;
    assert_each_done_exactly_once(&app, &ids).await;
    // A task created after all of them is announced after their events: its DONE is the
    // signal that every announcement there will be has arrived.
    let sentinel = app
        .create_task("sentinel", json!({"message": "last"}))
        .await;
    ws.wait_for(sentinel, TaskStatus::Done).await;
    let mut terminal_events: HashMap<String, usize> = HashMap::new();
    for event in ws.history() {
        if event["status"] == "DONE" || event["status"] == "FAILED" {
            *terminal_events
                .entry(event["task_id"].to_string())
                .or_default() += 1;
        }
    }
    assert!(
        terminal_events.values().all(|n| *n == 1),
        "no task announced twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_burst_finishes_what_was_taken_and_loses_nothing() {
    let mut app = TestApp::spawn_without_worker().await;
    let mut ws = app.ws().await;
    let ids = app.create_tasks(100).await;
    let mut draining = app.spawn_worker_process(WORKER_BINARY);

    wait_for_done_events(&mut ws, 10).await;
    draining.terminate();
    let status = draining.wait(Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "the worker exits cleanly on SIGTERM: {status}"
    );
    app.start_worker().await;

    // A graceful stop announces everything it finished, so the events alone tell.
    ws.statuses_until_finished(&ids).await;
    assert_each_done_exactly_once(&app, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stuck_processing_with_its_message_lost_is_dispatched_again() {
    // Arrange: a worker took the task and died, and the broker lost the message.
    let mut app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("TASK_LEASE_SECONDS", "1".to_owned())],
        ..Options::default()
    })
    .await;
    let mut ws = app.ws().await;
    let id = app
        .create_task("orphan", json!({"message": "recovered"}))
        .await;
    app.take_message(&app.direct.amqp.queue)
        .await
        .expect("the task's message, now lost");
    taskflow_core::db::start_attempt(&app.pool, taskflow_core::db::Start::new(id))
        .await
        .unwrap();

    // Act
    app.start_worker().await;

    // Assert: the lease ran out, the task was dispatched again and finished.
    let events = ws.wait_for(id, TaskStatus::Done).await;
    assert_eq!(events.last().unwrap()["message"], "recovered");
    let task = app.get_task(id).await;
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{task}");
    assert_eq!(
        attempts[0]["outcome"], "RETRY",
        "the dead worker's attempt is closed"
    );
    assert_eq!(attempts[1]["outcome"], "DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stuck_task_sweep_never_waits_on_a_task_that_is_not_stuck() {
    // Arrange: a task being worked on right now, its row locked by an open transaction (as a
    // worker's finish holds it).
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        ..Options::default()
    })
    .await;
    let id = app.create_task("busy", json!({"message": "hi"})).await;
    taskflow_core::db::start_attempt(&app.pool, taskflow_core::db::Start::new(id))
        .await
        .unwrap();
    let mut finishing = app.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM tasks WHERE id = ? FOR UPDATE")
        .bind(id.to_string())
        .fetch_one(&mut *finishing)
        .await
        .unwrap();

    // Act: a sweep for tasks unchanged for an hour, which this one is not.
    let sweep =
        taskflow_core::db::redispatch_stuck_tasks(&app.pool, Duration::from_secs(3600), 100);
    let swept = tokio::time::timeout(Duration::from_secs(10), sweep).await;

    // Assert: it neither waited for the lock (a locking scan of the active tasks would, up to
    // innodb_lock_wait_timeout) nor took the task.
    let swept = swept.expect("the sweep waited on a task that is not stuck");
    assert_eq!(swept.unwrap(), 0);
    finishing.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_api_reports_not_ready_then_closes_websockets_with_1001() {
    let mut app =
        TestApp::spawn_with(options(Proxied::Nothing, &[("SHUTDOWN_DELAY_MS", "3000")])).await;
    let mut ws = app.ws().await;

    app.begin_api_shutdown();
    let mut draining = false;
    for _ in 0..100 {
        let (status, _, body) = app.get("/healthz").await;
        if body["status"] == "draining" {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            draining = true;
            break;
        }
    }
    assert!(draining, "healthz reported draining");

    assert_eq!(ws.next().await, Received::Closed(Some(1001)));
    app.stop_api().await.expect("the API stops cleanly");
}
