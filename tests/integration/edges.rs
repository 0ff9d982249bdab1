//! The edges of what is accepted and of what the worker waits on: inputs at the size limits,
//! services that stop answering without closing, and code that panics.

use std::time::{Duration, Instant};

use serde_json::json;
use taskflow_core::amqp::{Broker, headers};
use taskflow_core::domain::TaskStatus;
use taskflow_core::status_bus::StatusPublisher;
use taskflow_tests::{EVENT_TIMEOUT, Options, Proxied, TestApp, poll_until};

fn options(proxied: Proxied, vars: &[(&'static str, &str)]) -> Options {
    Options {
        proxied,
        vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Options::default()
    }
}

/// How long a call that should give up after a short timeout may take, at most.
const GIVE_UP_BOUND: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_eighty_thousand_bytes_in_emoji_is_done_with_every_character() {
    // Arrange: the default body limit, which admits far more than 64 KiB.
    let app =
        TestApp::spawn_with(options(Proxied::Nothing, &[("MAX_BODY_BYTES", "1048576")])).await;
    let mut ws = app.ws().await;
    let message = "😀".repeat(20_000);
    assert_eq!(message.len(), 80_000);

    // Act
    let id = app
        .create_task("emoji", json!({"message": message.clone()}))
        .await;
    let events = ws.wait_for(id, TaskStatus::Done).await;

    // Assert
    assert_eq!(events.last().unwrap()["message"], message.as_str());
    let task = app.get_task(id).await;
    assert_eq!(task["status"], "DONE");
    assert_eq!(task["message"], message.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pooled_connection_runs_in_strict_sql_mode() {
    // Arrange: a pool as the services connect it, with several connections open at once.
    let app = TestApp::spawn_without_worker().await;
    let pool = taskflow_core::db::connect(&app.direct.db).await.unwrap();
    let mut connections = Vec::new();
    for _ in 0..3 {
        connections.push(pool.acquire().await.unwrap());
    }

    // Act / Assert
    for connection in &mut connections {
        let mode: String = sqlx::query_scalar("SELECT @@SESSION.sql_mode")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert!(mode.split(',').any(|m| m == "STRICT_ALL_TABLES"), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_running_past_the_statement_timeout_is_cancelled() {
    // Arrange
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("DB_STATEMENT_TIMEOUT_MS", "300".to_owned())],
        ..Options::default()
    })
    .await;
    let pool = taskflow_core::db::connect(&app.direct.db).await.unwrap();

    // Act
    let started = Instant::now();
    let slept = sqlx::query_scalar::<_, i64>("SELECT SLEEP(10)")
        .fetch_one(&pool)
        .await;

    // Assert
    assert!(started.elapsed() < GIVE_UP_BOUND, "{:?}", started.elapsed());
    assert!(slept.is_err(), "the statement was not cancelled: {slept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_dead_letters_to_a_stalled_broker_fail_within_the_publish_timeout() {
    // Arrange: a publisher whose broker takes bytes and answers nothing.
    let app = TestApp::spawn_with(Options {
        proxied: Proxied::Workers,
        no_worker: true,
        vars: vec![("PUBLISH_TIMEOUT_MS", "300".to_owned())],
        ..Options::default()
    })
    .await;
    let broker = Broker::connect(&app.worker_settings.amqp).await.unwrap();
    let timeout = app.worker_settings.api.publish_timeout;
    app.proxies.as_ref().unwrap().rabbitmq.stall();

    // Act
    let started = Instant::now();
    let dead_letter = tokio::time::timeout(
        GIVE_UP_BOUND,
        broker.dead_letter(b"{}", headers::build(1, &[], Some("test")), timeout),
    )
    .await;
    let retry = tokio::time::timeout(
        GIVE_UP_BOUND,
        broker.publish_retry(
            b"{}",
            headers::build(2, &[], None),
            2,
            Duration::from_millis(10),
            timeout,
        ),
    )
    .await;

    // Assert
    assert!(
        matches!(dead_letter, Ok(Err(_))),
        "the dead letter did not give up by itself: {dead_letter:?}"
    );
    assert!(
        matches!(retry, Ok(Err(_))),
        "the retry did not give up by itself: {retry:?}"
    );
    assert!(started.elapsed() < GIVE_UP_BOUND, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_publish_to_a_stalled_redis_fails_within_its_timeout() {
    // Arrange
    let app = TestApp::spawn_with(Options {
        proxied: Proxied::Workers,
        no_worker: true,
        ..Options::default()
    })
    .await;
    let publisher = StatusPublisher::connect(&app.worker_settings.redis)
        .await
        .unwrap();
    app.proxies.as_ref().unwrap().redis.stall();
    let event = taskflow_core::contract::StatusEvent::new(
        taskflow_core::domain::TaskId::new(),
        TaskStatus::Done,
        chrono::Utc::now(),
    );

    // Act
    let published = tokio::time::timeout(GIVE_UP_BOUND, publisher.publish(&event)).await;

    // Assert
    assert!(
        matches!(published, Ok(Err(_))),
        "the publish did not give up by itself: {published:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_retried_and_does_not_hold_its_prefetch_slot() {
    // Arrange: one prefetch slot, so a leaked slot stops the worker.
    let app = TestApp::spawn_with(options(Proxied::Nothing, &[("WORKER_PREFETCH", "1")])).await;
    let mut ws = app.ws().await;

    // Act
    let panicking = app
        .create_task(
            "panics once",
            json!({"message": "survived", "simulated_panics": 1}),
        )
        .await;
    let next = app.create_task("next", json!({"message": "next"})).await;

    // Assert
    let seen = ws.statuses_until_finished(&[panicking, next]).await;
    assert_eq!(seen[&panicking].last().unwrap(), "DONE", "{seen:?}");
    assert_eq!(seen[&next].last().unwrap(), "DONE", "{seen:?}");
    assert_eq!(app.get_task(panicking).await["message"], "survived");
    let metrics = reqwest::get(format!("http://{}/metrics", app.worker_metrics.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("taskflow_handler_panics_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_failed_only_once_its_dead_letter_is_confirmed() {
    // Arrange: a task that fails for good on its first attempt, and no dead-letter queue, so
    // its dead letter cannot be published (it is unroutable).
    let app = TestApp::spawn_with(options(
        Proxied::Nothing,
        &[
            ("RETRY_MAX_ATTEMPTS", "1"),
            ("WORKER_PREFETCH", "1"),
            // This test restores the queue while the worker requeues: it must not park first.
            ("WORKER_MAX_REQUEUES", "1000000"),
        ],
    ))
    .await;
    let dead_letters = app.direct.amqp.dead_letter_queue.clone();
    let (connection, channel) = app.amqp_channel().await;
    channel
        .queue_delete(dead_letters.as_str().into(), Default::default())
        .await
        .unwrap();

    // Act: the worker gives up on the task and fails to dead-letter it at least once; then the
    // queue is back.
    let id = app
        .create_task(
            "doomed",
            json!({"message": "never", "transient_failures": 1_000_000}),
        )
        .await;
    let requeued = poll_until(EVENT_TIMEOUT, async || {
        app.worker_counter("taskflow_deliveries_requeued_total")
            .await
            >= 1
    })
    .await;
    assert!(requeued, "the worker never failed to dead-letter the task");
    channel
        .queue_declare(
            dead_letters.as_str().into(),
            lapin::options::QueueDeclareOptions::durable(),
            Default::default(),
        )
        .await
        .unwrap();

    // Assert: FAILED, with its dead letter kept.
    app.wait_for_status(id, TaskStatus::Failed).await;
    let kept = poll_until(EVENT_TIMEOUT, async || {
        app.queue_depth(&dead_letters).await == Some(1)
    })
    .await;
    let _ = connection.close(200, "done".into()).await;
    assert!(kept, "the FAILED task's dead letter was lost");
    let letter = app.take_message(&dead_letters).await.unwrap();
    assert!(
        String::from_utf8_lossy(&letter.data).contains(&id.to_string()),
        "the dead letter is the task's message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_requeued_over_and_over_is_parked_with_its_reason() {
    // Arrange: a task whose dead letter can never be published (no dead-letter queue), so its
    // delivery would be requeued without end.
    let app = TestApp::spawn_with(options(
        Proxied::Nothing,
        &[
            ("RETRY_MAX_ATTEMPTS", "1"),
            ("WORKER_PREFETCH", "1"),
            ("WORKER_MAX_REQUEUES", "3"),
        ],
    ))
    .await;
    let dead_letters = app.direct.amqp.dead_letter_queue.clone();
    let parked = format!("{}.parked", app.direct.amqp.queue);
    let (connection, channel) = app.amqp_channel().await;
    channel
        .queue_delete(dead_letters.as_str().into(), Default::default())
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;

    // Act
    let id = app
        .create_task(
            "doomed",
            json!({"message": "never", "transient_failures": 1_000_000}),
        )
        .await;

    // Assert: parked after the requeues allowed, with a reason, and counted.
    let was_parked = poll_until(EVENT_TIMEOUT, async || {
        app.queue_depth(&parked).await == Some(1)
    })
    .await;
    assert!(was_parked, "the delivery was never parked");
    let letter = app.take_message(&parked).await.unwrap();
    assert!(String::from_utf8_lossy(&letter.data).contains(&id.to_string()));
    let reason = headers::reason(letter.properties.headers().as_ref()).unwrap_or_default();
    assert!(reason.contains("requeued"), "{reason}");
    assert_eq!(
        app.worker_counter("taskflow_deliveries_parked_total").await,
        1
    );
    assert_eq!(
        app.worker_counter("taskflow_deliveries_requeued_total")
            .await,
        3
    );
}
