//! The pipeline end to end: create → PROCESSING → DONE/FAILED seen on real WebSockets, and the
//! worker's idempotence against duplicated, redelivered and poison messages.

use chrono::Utc;
use serde_json::json;
use taskflow_core::contract::TaskCreated;
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_tests::{Options, TestApp};

fn statuses(events: &[serde_json::Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["status"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_a_message_is_seen_processing_then_done_over_the_websocket() {
    // Arrange
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    // Act
    let id = app
        .create_task("t", json!({"message": "hi", "nested": {"ü": [1, 2]}}))
        .await;
    let events = ws.wait_for(id, TaskStatus::Done).await;

    // Assert
    assert_eq!(statuses(&events), ["PENDING", "PROCESSING", "DONE"]);
    assert_eq!(events[2]["message"], "hi");
    let task = app.get_task(id).await;
    assert_eq!(task["status"], "DONE");
    assert_eq!(task["message"], "hi");
    assert_eq!(
        task["payload"],
        json!({"message": "hi", "nested": {"ü": [1, 2]}})
    );
    assert!(
        task["finished_at"].is_string(),
        "finished_at is set: {task}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_a_message_fails_with_a_reason() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    let id = app.create_task("no message", json!({"value": 42})).await;
    let events = ws.wait_for(id, TaskStatus::Failed).await;

    assert_eq!(statuses(&events), ["PENDING", "PROCESSING", "FAILED"]);
    assert_eq!(events[2]["message"], "payload has no `message` field");
    let task = app.get_task(id).await;
    assert_eq!(task["status"], "FAILED");
    assert!(task["finished_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_with_a_null_payload_fails() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    let id = app
        .create_task("null payload", serde_json::Value::Null)
        .await;

    assert_eq!(
        statuses(&ws.wait_for(id, TaskStatus::Failed).await),
        ["PENDING", "PROCESSING", "FAILED"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_websocket_client_receives_every_event() {
    let app = TestApp::spawn().await;
    let mut first = app.ws().await;
    let mut second = app.ws().await;

    let done = app.create_task("a", json!({"message": "one"})).await;
    let failed = app.create_task("b", json!({})).await;

    for client in [&mut first, &mut second] {
        let seen = client.statuses_until_finished(&[done, failed]).await;
        assert_eq!(seen[&done], ["PENDING", "PROCESSING", "DONE"]);
        assert_eq!(seen[&failed], ["PENDING", "PROCESSING", "FAILED"]);
    }
}

/// A client that stops reading fills its socket; the server then stops writing to it, and once
/// it is more than `WS_CLIENT_BUFFER` events behind it is sent a resync notice. Nothing is lost
/// silently: what the client receives is in order, every gap comes right after a notice, and the
/// client catches up to the last event. (Events waiting for a client go out several per write,
/// so this also checks that gathering them keeps their order.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_told_to_resync_and_never_loses_events_silently() {
    use redis::AsyncCommands as _;
    use taskflow_core::contract::StatusEvent;

    let app = TestApp::spawn_with(Options {
        vars: vec![("WS_CLIENT_BUFFER", "16".to_owned())],
        no_worker: true,
        ..Options::default()
    })
    .await;
    let mut slow = app.ws().await;
    // 600 events of 32 KiB, about 19 MiB: more than the kernel buffers between the server and
    // a client that does not read (a few MiB each way), so the server must fall behind.
    const EVENTS: usize = 600;
    let filler = "x".repeat(32 * 1024);
    let redis = redis::Client::open(app.direct.redis.url.as_str()).expect("a Redis URL");
    let mut publisher = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    for seq in 0..EVENTS {
        let event = StatusEvent {
            message: Some(format!("{seq} {filler}")),
            ..StatusEvent::new(TaskId::new(), TaskStatus::Done, Utc::now())
        };
        let _: i64 = publisher
            .publish(&app.direct.redis.channel, event.to_json())
            .await
            .expect("publishing a status event");
    }

    let mut last: Option<usize> = None;
    let mut notices = 0;
    let mut after_notice = false;
    while last != Some(EVENTS - 1) {
        let taskflow_tests::ws::Received::Event(event) = slow.next().await else {
            panic!("the stream closed");
        };
        if event["event"] == "resync" {
            notices += 1;
            after_notice = true;
            continue;
        }
        let message = event["message"].as_str().expect("a message");
        let seq: usize = message.split(' ').next().unwrap().parse().unwrap();
        let expected = last.map_or(0, |last| last + 1);
        assert!(
            seq == expected || (after_notice && seq > expected),
            "event {seq} after {last:?} with no resync notice in between"
        );
        last = Some(seq);
        after_notice = false;
    }
    assert!(
        notices > 0,
        "a client {EVENTS} events behind was never told to resync"
    );
}

/// Publishes `message` again for a finished task, then a sentinel task. With a prefetch of 1 the
/// worker handles deliveries one after the other, so once the sentinel is DONE the duplicate has
/// been handled, and no event for it may have been seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_message_for_a_finished_task_changes_nothing_and_announces_nothing() {
    let app = TestApp::spawn_with(Options {
        vars: vec![("WORKER_PREFETCH", "1".to_owned())],
        ..Options::default()
    })
    .await;
    let mut ws = app.ws().await;
    let id = app
        .create_task("once", json!({"message": "only once"}))
        .await;
    ws.wait_for(id, TaskStatus::Done).await;
    let before = app.get_task(id).await;

    let duplicate = TaskCreated {
        task_id: id,
        payload: json!({"message": "twice?"}),
        requested_at: Utc::now(),
    };
    let mark = ws.history().len();
    app.publish_raw(&duplicate.to_json()).await;
    app.publish_raw(&duplicate.to_json()).await;
    let sentinel = app
        .create_task("sentinel", json!({"message": "after"}))
        .await;
    let seen = ws.wait_for(sentinel, TaskStatus::Done).await;

    // The sentinel's events are the positive signal: the duplicates were handled before it.
    assert_eq!(statuses(&seen), ["PENDING", "PROCESSING", "DONE"]);
    assert_eq!(
        app.get_task(id).await,
        before,
        "the finished task is untouched"
    );
    let announced: Vec<_> = ws.history()[mark..]
        .iter()
        .filter(|event| event["task_id"] == id.to_string())
        .collect();
    assert!(
        announced.is_empty(),
        "the duplicates announced {announced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_redelivered_after_a_worker_died_mid_task_finishes_it_once() {
    // Arrange: a consumer took the message and started the task, then died without settling.
    let mut app = TestApp::spawn_without_worker().await;
    let mut ws = app.ws().await;
    let id = app
        .create_task("resumed", json!({"message": "resumed"}))
        .await;
    app.wait_until_dispatched(id).await;
    app.take_and_abandon(async || {
        taskflow_core::db::start_attempt(&app.pool, taskflow_core::db::Start::new(id))
            .await
            .unwrap();
    })
    .await;

    // Act: the broker redelivers the unacked message to a new worker.
    app.start_worker().await;
    let events = ws.wait_for(id, TaskStatus::Done).await;

    // Assert: one terminal event, and no second PROCESSING; the redelivery took the attempt over.
    assert_eq!(statuses(&events), ["PENDING", "DONE"]);
    let task = app.get_task(id).await;
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{task}");
    assert_eq!(attempts[1]["outcome"], "DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_do_not_stop_the_processing_of_later_tasks() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    app.publish_raw(b"this is not JSON").await;
    app.publish_raw(br#"{"task_id": 42, "payload": {}}"#).await;
    app.publish_raw(br#"["an", "array"]"#).await;
    let unknown = TaskCreated {
        task_id: TaskId::new(),
        payload: json!({"message": "who am I?"}),
        requested_at: Utc::now(),
    };
    app.publish_raw(&unknown.to_json()).await;
    let id = app
        .create_task("after the poison", json!({"message": "still here"}))
        .await;

    assert_eq!(
        statuses(&ws.wait_for(id, TaskStatus::Done).await),
        ["PENDING", "PROCESSING", "DONE"]
    );
    let (status, _, _) = app.get(&format!("/tasks/{}", unknown.task_id)).await;
    assert_eq!(
        status, 404,
        "the unknown task was not created by the worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_the_python_api_is_processed() {
    // The Python API writes the row, then publishes a naive `requested_at`.
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;
    let id = TaskId::new();
    sqlx::query("INSERT INTO tasks (id, title, payload, status) VALUES (?, 'py', '{\"message\": \"from python\"}', 'PENDING')")
        .bind(id.to_string())
        .execute(&app.pool)
        .await
        .unwrap();

    app.publish_raw(
        format!(r#"{{"task_id": "{id}", "payload": {{"message": "from python"}}, "requested_at": "2025-10-13T02:30:00.123456"}}"#)
            .as_bytes(),
    )
    .await;

    let events = ws.wait_for(id, TaskStatus::Done).await;
    assert_eq!(events.last().unwrap()["message"], "from python");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_each_make_exactly_one_terminal_transition() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    let mut ids = Vec::new();
    for i in 0..40 {
        let payload = if i % 4 == 0 {
            json!({})
        } else {
            json!({"message": format!("m{i}")})
        };
        ids.push(app.create_task(&format!("task {i}"), payload).await);
    }

    let seen = ws.statuses_until_finished(&ids).await;

    for (i, id) in ids.iter().enumerate() {
        let expected = if i % 4 == 0 { "FAILED" } else { "DONE" };
        assert_eq!(seen[id], ["PENDING", "PROCESSING", expected], "task {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_api_closes_websockets_with_going_away() {
    let mut app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    app.stop_api().await.expect("the API stops cleanly");

    assert_eq!(
        ws.next().await,
        taskflow_tests::ws::Received::Closed(Some(1001))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_starts_and_finishes_give_each_task_what_one_by_one_calls_would() {
    use taskflow_core::db::{self, Finish, Started, Transition};

    // Arrange: four PENDING tasks, and one already DONE.
    let app = TestApp::spawn_without_worker().await;
    let writer = db::KeptConnections::new(app.pool.clone());
    let [a, b, c, d, e, retried, done] = app.create_tasks(7).await.try_into().unwrap();
    let finish = |id: TaskId, attempt: u32| Finish {
        task_id: id,
        attempt,
        started_at: Utc::now(),
        outcome: TaskStatus::Done,
        message: format!("done {id}"),
    };
    db::start_attempt(&app.pool, taskflow_core::db::Start::new(done))
        .await
        .unwrap();
    let finished = db::finish_attempts(&writer, "w", &[finish(done, 1)]).await;
    assert!(matches!(finished[..], [Ok(Transition::Applied { .. })]));

    // Act + assert: every task PENDING takes the one-transaction path.
    let started = db::start_attempts(&writer, &[a, b].map(db::Start::new)).await;
    for result in started {
        assert!(matches!(
            result.unwrap(),
            Started::Attempt {
                attempt: 1,
                from_pending: true,
                ..
            }
        ));
    }
    // A task an operator retried keeps its count: its next attempt is 2, in any batch.
    db::start_attempt(&app.pool, taskflow_core::db::Start::new(retried))
        .await
        .unwrap();
    let failed = Finish {
        outcome: TaskStatus::Failed,
        ..finish(retried, 1)
    };
    db::finish_attempts(&writer, "w", &[failed]).await[0]
        .as_ref()
        .unwrap();
    db::retry_task(&app.pool, retried, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let started: Vec<Started> = db::start_attempts(&writer, &[e, retried].map(db::Start::new))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(matches!(started[0], Started::Attempt { attempt: 1, .. }));
    assert!(matches!(started[1], Started::Attempt { attempt: 2, .. }));
    // A batch with a finished task and a repeated id falls back to one call per task.
    let started: Vec<Started> = db::start_attempts(&writer, &[c, done, d, d].map(db::Start::new))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(matches!(started[0], Started::Attempt { attempt: 1, .. }));
    assert_eq!(started[1], Started::Skipped(TaskStatus::Done));
    let d_started = &started[2..];
    assert!(
        d_started.contains(&Started::Held { attempt: 1 })
            && d_started
                .iter()
                .any(|started| matches!(started, Started::Attempt { attempt: 1, .. })),
        "one delivery of d starts it, the other finds it held: {d_started:?}"
    );

    // One batch finishes each task with its own outcome and message, whatever their lengths.
    let long = "é🎉".repeat(10_000);
    let failed = Finish {
        outcome: TaskStatus::Failed,
        message: long.clone(),
        ..finish(b, 1)
    };
    let finished = db::finish_attempts(&writer, "w", &[finish(a, 1), failed]).await;
    assert!(
        finished
            .iter()
            .all(|result| matches!(result, Ok(Transition::Applied { .. })))
    );
    let finished = db::finish_attempts(&writer, "w", &[finish(c, 1), finish(done, 2)]).await;
    assert!(matches!(finished[0], Ok(Transition::Applied { .. })));
    assert!(matches!(
        finished[1],
        Ok(Transition::Skipped {
            current: TaskStatus::Done
        })
    ));

    // The rows say the same: finished with their messages, one attempt each.
    for id in [a, c] {
        let detail = db::get_task_detail(&app.pool, id).await.unwrap().unwrap();
        assert_eq!(detail.task.status, TaskStatus::Done);
        assert_eq!(detail.task.message.as_deref(), Some(&*format!("done {id}")));
        assert_eq!(detail.attempts.len(), 1, "{:?}", detail.attempts);
    }
    let detail = db::get_task_detail(&app.pool, b).await.unwrap().unwrap();
    assert_eq!(detail.task.status, TaskStatus::Failed);
    assert_eq!(detail.task.message.as_deref(), Some(&*long));
    assert_eq!(detail.attempts.len(), 1, "{:?}", detail.attempts);
    assert_eq!(app.stored_status(d).await, TaskStatus::Processing);
    let done_attempts = app.done_attempts().await;
    assert_eq!(done_attempts.get(&done), Some(&1));
}
