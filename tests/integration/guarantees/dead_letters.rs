//! Tasks that keep failing or cannot be read: dead-lettered with their reason, and replayable.

use reqwest::StatusCode;
use serde_json::json;
use taskflow_core::domain::TaskStatus;
use taskflow_tests::{Proxied, TestApp};

use super::options;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_keeps_failing_transiently_is_failed_dead_lettered_and_can_be_replayed() {
    let app = TestApp::spawn_with(options(Proxied::Nothing, &[("RETRY_MAX_ATTEMPTS", "3")])).await;
    let mut ws = app.ws().await;

    // Act: three attempts, three transient failures.
    let id = app
        .create_task(
            "flaky",
            json!({"message": "fixed", "transient_failures": 3}),
        )
        .await;
    let events = ws.wait_for(id, TaskStatus::Failed).await;

    // Assert: FAILED with the reason, each attempt in the history, the message dead-lettered.
    let reason = events.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
    let task = app.get_task(id).await;
    assert_eq!(task["status"], "FAILED");
    assert_eq!(task["message"], reason);
    let outcomes: Vec<&str> = task["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["RETRY", "RETRY", "RETRY"]);

    let dead = app
        .take_message(&app.direct.amqp.dead_letter_queue)
        .await
        .expect("the message is in the dead-letter queue");
    let headers = dead.properties.headers().clone();
    assert_eq!(
        taskflow_core::amqp::headers::errors(headers.as_ref()).len(),
        3,
        "the attempt history travels with the dead letter"
    );
    let dead_reason = taskflow_core::amqp::headers::reason(headers.as_ref()).unwrap();
    assert_eq!(dead_reason, reason);
    let body: serde_json::Value = serde_json::from_slice(&dead.data).unwrap();
    assert_eq!(body["task_id"], id.to_string());

    // Act: an operator replays it (the fourth attempt succeeds).
    assert_eq!(app.retry_task(id).await, StatusCode::OK);

    // Assert
    let replay = ws.wait_for(id, TaskStatus::Done).await;
    let statuses: Vec<&str> = replay
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["PENDING", "PROCESSING", "DONE"]);
    assert_eq!(
        app.retry_task(id).await,
        StatusCode::CONFLICT,
        "a DONE task cannot be retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_retry_keeps_the_attempt_that_failed_the_task_in_the_timeline() {
    // Arrange: a task failed by its first attempt (no message), whose record is kept on the row.
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;
    let id = app.create_task("no message", json!({})).await;
    ws.wait_for(id, TaskStatus::Failed).await;
    let failed = app.get_task(id).await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");

    // Act: an operator retries it, and it fails again.
    assert_eq!(app.retry_task(id).await, StatusCode::OK);
    ws.wait_for(id, TaskStatus::Failed).await;

    // Assert: both attempts, each with its worker, outcome and reason.
    let task = app.get_task(id).await;
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{task}");
    for (n, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], n + 1, "{task}");
        assert_eq!(attempt["outcome"], "FAILED", "{task}");
        assert_eq!(attempt["error"], "payload has no `message` field", "{task}");
        let worker = attempt["worker"].as_str().unwrap();
        assert!(worker.starts_with("test-worker-"), "{task}");
        assert!(attempt["finished_at"].is_string(), "{task}");
    }
    assert_eq!(
        attempts[0]["started_at"],
        failed["attempts"][0]["started_at"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    app.publish_raw(b"not JSON at all").await;
    let sentinel = app.create_task("after", json!({"message": "ok"})).await;
    ws.wait_for(sentinel, TaskStatus::Done).await;

    let dead = app
        .take_message(&app.direct.amqp.dead_letter_queue)
        .await
        .expect("the poison message is in the dead-letter queue");
    assert_eq!(&*dead.data, b"not JSON at all");
    let reason = taskflow_core::amqp::headers::reason(dead.properties.headers().as_ref());
    assert!(
        reason
            .as_deref()
            .unwrap()
            .starts_with("not a valid task.created message"),
        "{reason:?}"
    );
}
