//! The attempt number as a fencing token: a duplicate delivery does not start a second run while
//! another delivery holds the task, a redelivery takes an abandoned attempt over, and the fenced
//! holder's late finish or retry changes nothing but the history.

use serde_json::json;
use taskflow_core::db::{self, AttemptRecord, Start, Started, Transition};
use taskflow_core::domain::TaskStatus;
use taskflow_tests::{EVENT_TIMEOUT, TestApp, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_while_another_worker_holds_the_task_does_not_run_it_again() {
    // Arrange: a worker holds attempt 1 (its delivery is out of the queue), and a duplicate of
    // the message (an outbox relay's second publish) waits for another worker.
    let mut app = TestApp::spawn_without_worker().await;
    let id = app.create_task("held", json!({"message": "hi"})).await;
    let original = app.take_message(&app.direct.amqp.queue).await;
    let started = db::start_attempt(&app.pool, Start::new(id)).await.unwrap();
    assert!(matches!(started, Started::Attempt { attempt: 1, .. }));
    app.publish_raw(&original.expect("the task's message").data)
        .await;

    // Act
    app.start_worker().await;

    // Assert: the duplicate was seen and acked unrun; the holder's attempt is untouched.
    let held = poll_until(EVENT_TIMEOUT, async || {
        app.worker_counter("taskflow_deliveries_held_total").await == 1
    });
    assert!(held.await, "the duplicate delivery was not held");
    assert_eq!(app.queue_depth(&app.direct.amqp.queue).await, Some(0));
    assert_eq!(app.stored_status(id).await, TaskStatus::Processing);
    let task = app.get_task(id).await;
    assert_eq!(
        task["attempts"],
        json!([]),
        "no attempt ended or started: {task}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_holder_can_neither_finish_nor_retry_the_task_a_redelivery_took_over() {
    // Arrange: attempt 1's holder lost its channel; the redelivery took the task over.
    let app = TestApp::spawn_without_worker().await;
    let id = app.create_task("fenced", json!({"message": "hi"})).await;
    let first = db::start_attempt(&app.pool, Start::new(id)).await.unwrap();
    let Started::Attempt {
        attempt: 1,
        updated_at: first_started,
        ..
    } = first
    else {
        panic!("{first:?}");
    };
    let redelivery = Start {
        redelivered: true,
        ..Start::new(id)
    };
    let second = db::start_attempt(&app.pool, redelivery).await.unwrap();
    let Started::Attempt {
        attempt: 2,
        from_pending: false,
        updated_at: second_started,
    } = second
    else {
        panic!("{second:?}");
    };
    let stale = AttemptRecord {
        attempt: 1,
        worker: "stale",
        started_at: first_started,
    };

    // Act: the stale holder tries to retry, then to finish.
    let retried = db::record_retry(&app.pool, id, stale, "flaky")
        .await
        .unwrap();
    let finished = db::finish_attempt(&app.pool, id, stale, TaskStatus::Done, "stale result").await;

    // Assert: both rejected, the task still PROCESSING under attempt 2.
    assert!(!retried, "a fenced holder's retry is not recorded");
    assert!(
        matches!(finished, Ok(Transition::Fenced { holder: 2 })),
        "{finished:?}"
    );
    assert_eq!(app.stored_status(id).await, TaskStatus::Processing);

    // And the holder of attempt 2 finishes it, with its own result.
    let holder = AttemptRecord {
        attempt: 2,
        worker: "holder",
        started_at: second_started,
    };
    let finished = db::finish_attempt(&app.pool, id, holder, TaskStatus::Done, "fresh").await;
    assert!(
        matches!(finished, Ok(Transition::Applied { .. })),
        "{finished:?}"
    );
    let task = app.get_task(id).await;
    assert_eq!(task["status"], "DONE");
    assert_eq!(task["message"], "fresh");
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{task}");
    assert_eq!(attempts[0]["worker"], "stale");
    assert!(
        attempts[0]["error"].as_str().unwrap().starts_with("fenced"),
        "{task}"
    );
    assert_eq!(attempts[1]["outcome"], "DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_past_its_lease_is_taken_over_by_any_delivery() {
    // Arrange: attempt 1 started, then its holder went silent past the lease.
    let app = TestApp::spawn_without_worker().await;
    let id = app.create_task("silent", json!({"message": "hi"})).await;
    db::start_attempt(&app.pool, Start::new(id)).await.unwrap();
    let young = Start {
        lease: std::time::Duration::from_secs(3600),
        ..Start::new(id)
    };
    assert_eq!(
        db::start_attempt(&app.pool, young).await.unwrap(),
        Started::Held { attempt: 1 },
        "within the lease the attempt is its holder's"
    );
    sqlx::query("UPDATE tasks SET updated_at = updated_at - INTERVAL 2 HOUR WHERE id = ?")
        .bind(id.to_string())
        .execute(&app.pool)
        .await
        .unwrap();

    // Act: a fresh copy (the stuck-task sweep's), not a redelivery.
    let started = db::start_attempt(&app.pool, young).await.unwrap();

    // Assert
    assert!(
        matches!(
            started,
            Started::Attempt {
                attempt: 2,
                from_pending: false,
                ..
            }
        ),
        "{started:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_first_deliveries_of_one_task_start_exactly_one_attempt() {
    // Arrange: one PENDING task, and fifty copies of its delivery arriving at once.
    let app = TestApp::spawn_without_worker().await;
    let id = app.create_task("crowd", json!({"message": "hi"})).await;

    // Act
    let starts = (0..50).map(|_| db::start_attempt(&app.pool, Start::new(id)));
    let results = futures_util::future::join_all(starts).await;

    // Assert: one start, from PENDING; every other copy is held off by it.
    let started: Vec<_> = results
        .iter()
        .filter(|started| matches!(started, Ok(Started::Attempt { .. })))
        .collect();
    assert_eq!(started.len(), 1, "{results:?}");
    assert!(matches!(
        started[0],
        Ok(Started::Attempt {
            attempt: 1,
            from_pending: true,
            ..
        })
    ));
    let held = results
        .iter()
        .filter(|started| matches!(started, Ok(Started::Held { attempt: 1 })))
        .count();
    assert_eq!(held, 49, "{results:?}");
    assert_eq!(app.stored_status(id).await, TaskStatus::Processing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_duplicate_messages_while_a_holder_works_are_all_acked_unrun() {
    // Arrange: a holder has attempt 1; fifty duplicates of its message are queued.
    let mut app = TestApp::spawn_without_worker().await;
    let id = app
        .create_task("duplicates", json!({"message": "hi"}))
        .await;
    let original = app.take_message(&app.direct.amqp.queue).await;
    let body = original.expect("the task's message").data;
    db::start_attempt(&app.pool, Start::new(id)).await.unwrap();
    for _ in 0..50 {
        app.publish_raw(&body).await;
    }

    // Act
    app.start_worker().await;

    // Assert: every copy was held and acked; the holder's attempt is the only one.
    let held = poll_until(EVENT_TIMEOUT, async || {
        app.worker_counter("taskflow_deliveries_held_total").await == 50
    });
    assert!(held.await, "not every duplicate was held");
    assert_eq!(app.queue_depth(&app.direct.amqp.queue).await, Some(0));
    assert_eq!(app.stored_status(id).await, TaskStatus::Processing);
    assert_eq!(app.get_task(id).await["attempts"], json!([]));
}
