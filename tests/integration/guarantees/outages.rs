//! Outages of MySQL, RabbitMQ and Redis, cut through the harness proxies: work waits or is
//! retried, and everything resumes once the service returns.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_tests::ws::Received;
use taskflow_tests::{Proxied, TestApp};

use super::{assert_each_done_exactly_once, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_accepted_while_the_broker_is_down_is_dispatched_after_it_returns() {
    // Arrange: the API reaches RabbitMQ through a proxy, which is cut.
    let app = TestApp::spawn_with(options(Proxied::Api, &[])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;

    // Act: the task is accepted (its message waits in the outbox), then the broker returns.
    let id = proxies
        .rabbitmq
        .outage(1, async || {
            app.create_task("while down", json!({"message": "made it"}))
                .await
        })
        .await;

    // Assert
    let events = ws.wait_for(id, TaskStatus::Done).await;
    assert_eq!(events.last().unwrap()["message"], "made it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_during_processing_is_retried_with_backoff_until_done() {
    // Arrange: workers reach MySQL through a proxy; the API does not.
    let app = TestApp::spawn_with(options(Proxied::Workers, &[("RETRY_MAX_ATTEMPTS", "50")])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;

    // Act: a task arrives while the worker cannot reach the database; it comes back later.
    let id = proxies
        .mysql
        .outage(2, async || {
            app.create_task("db down", json!({"message": "after the outage"}))
                .await
        })
        .await;

    // Assert: done, after going through the retry queues rather than a hot requeue loop.
    let events = ws.wait_for(id, TaskStatus::Done).await;
    assert_eq!(events.last().unwrap()["message"], "after the outage");
    let first_retry_queue = format!("{}.retry.2", app.settings.amqp.queue);
    assert!(
        app.queue_depth(&first_retry_queue).await.is_some(),
        "the retry went through {first_retry_queue}"
    );
    assert_each_done_exactly_once(&app, &[id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_does_not_stop_processing_and_clients_are_told_to_resync() {
    let app = TestApp::spawn_with(options(Proxied::Both, &[])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;

    proxies
        .redis
        .outage(1, async || {
            let id = app
                .create_task("no redis", json!({"message": "still done"}))
                .await;
            app.wait_for_status(id, TaskStatus::Done).await;
        })
        .await;

    loop {
        match ws.next().await {
            Received::Event(event) if event["event"] == "resync" => break,
            Received::Event(_) => continue,
            Received::Closed(code) => panic!("closed ({code:?}) before the resync notice"),
        }
    }
    // And events flow again.
    let after = app
        .create_task("redis back", json!({"message": "live"}))
        .await;
    ws.wait_for(after, TaskStatus::Done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_worker_survive_a_broker_restart() {
    let app = TestApp::spawn_with(options(Proxied::Both, &[])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;

    // A broker "restart": every connection dies, and new ones are refused for a while.
    proxies.rabbitmq.outage(1, async || {}).await;

    let id = app
        .create_task("after restart", json!({"message": "reconnected"}))
        .await;
    ws.wait_for(id, TaskStatus::Done).await;
    let (status, _, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_names_the_dependency_that_does_not_answer() {
    let app = TestApp::spawn_with(options(Proxied::Api, &[])).await;
    let proxies = app.proxies.as_ref().unwrap();

    proxies.redis.cut();
    let (status, _, body) = app.get("/healthz").await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["components"]["redis"]["status"], "down");
    assert_eq!(body["components"]["mysql"]["status"], "up");
    assert_eq!(body["components"]["rabbitmq"]["status"], "up");
    proxies.redis.heal();
}

/// Random faults on every dependency while tasks stream in; every accepted task must end DONE
/// exactly once. `SOAK_TASKS` sets the size (`cargo xtask soak` runs 5,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_every_accepted_task_finishes_exactly_once_under_random_faults() {
    let tasks: usize = std::env::var("SOAK_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let app = TestApp::spawn_with(options(
        Proxied::Both,
        &[("RETRY_MAX_ATTEMPTS", "100"), ("WORKER_PREFETCH", "16")],
    ))
    .await;
    let proxies = app.proxies.as_ref().unwrap();

    // Faults: cut a random dependency for 50–300 ms, every 100–400 ms, while tasks arrive.
    let (stop_faults, mut faults_stopped) = tokio::sync::watch::channel(false);
    let injected = {
        let targets: Vec<_> = proxies.all().iter().map(|p| p.handle()).collect();
        tokio::spawn(async move {
            let mut injected = 0u32;
            loop {
                let pause = Duration::from_millis(fastrand::u64(100..400));
                tokio::select! {
                    _ = faults_stopped.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(pause) => {}
                }
                let target = &targets[fastrand::usize(..targets.len())];
                target.cut();
                tokio::time::sleep(Duration::from_millis(fastrand::u64(50..300))).await;
                target.heal();
                injected += 1;
            }
            injected
        })
    };

    // Tasks arrive at a steady rate (load shaping, not synchronisation), so faults land
    // throughout the run.
    let rate: u64 = std::env::var("SOAK_RATE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    let mut arrivals = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut nothing_stored = Vec::new();
    for i in 0..tasks {
        arrivals.tick().await;
        let (status, body) = app
            .post_task(&json!({"title": format!("soak {i}"), "payload": {"message": "m"}}))
            .await;
        if status == StatusCode::CREATED {
            accepted.push(body["task_id"].as_str().unwrap().parse::<TaskId>().unwrap());
        } else {
            // While the API's database link is cut: 503 when nothing was stored, 504 when the
            // INSERT was sent and its outcome is unknown.
            assert!(
                [StatusCode::SERVICE_UNAVAILABLE, StatusCode::GATEWAY_TIMEOUT].contains(&status),
                "{status}: {body}"
            );
            if status == StatusCode::SERVICE_UNAVAILABLE {
                nothing_stored.push(format!("soak {i}"));
            }
            refused += 1;
        }
    }
    stop_faults.send(true).unwrap();
    let injected = injected.await.unwrap();
    for proxy in proxies.all() {
        proxy.heal();
    }

    // Every accepted task reaches DONE (there is no event to wait on: Redis was cut too). Each
    // is waited for by id: a count of DONE tasks can be reached early, since a request answered
    // 504 may still have committed (the link was cut after the COMMIT, before its answer), and
    // such a task is dispatched by the relay like any other.
    for id in &accepted {
        app.wait_for_status(*id, TaskStatus::Done).await;
    }
    let done = app.done_attempts().await;
    let lost = accepted.iter().filter(|id| !done.contains_key(id)).count();
    let duplicated = done.values().filter(|count| **count > 1).count();
    let refused_but_done = done.len() - (accepted.len() - lost);
    println!(
        "soak: {} tasks sent, {} accepted, {refused} refused ({refused_but_done} of them committed \
         anyway and done), {injected} faults injected, {lost} lost, {duplicated} duplicated",
        tasks,
        accepted.len()
    );

    assert_eq!(lost, 0);
    assert_eq!(duplicated, 0);
    for title in &nothing_stored {
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE title = ?")
            .bind(title)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(
            stored, 0,
            "{title} was answered 503 \"nothing stored\" but is stored"
        );
    }
    let counts: HashMap<_, _> = done.iter().map(|(id, n)| (*id, *n)).collect();
    assert!(accepted.iter().all(|id| counts[id] == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writers_connection_that_breaks_while_kept_costs_at_most_one_batch() {
    use taskflow_core::db::{self, KeptConnections, Started};

    // Arrange: a batch writer keeps its connection from one batch to the next.
    let app = TestApp::spawn_without_worker().await;
    let [a, b, c, d] = app.create_tasks(4).await.try_into().unwrap();
    let writer = KeptConnections::new(app.pool.clone());
    let connection_id = async || -> u64 {
        writer
            .run(async |conn| {
                let id = sqlx::query_scalar("SELECT CONNECTION_ID()")
                    .fetch_one(conn)
                    .await?;
                Ok(id)
            })
            .await
            .unwrap()
    };
    let kept = connection_id().await;
    assert_eq!(connection_id().await, kept, "the connection is kept");

    // Act: the server drops it; the writer's next two batches follow.
    sqlx::query(sqlx::AssertSqlSafe(format!("KILL CONNECTION {kept}")))
        .execute(&app.pool)
        .await
        .unwrap();
    let first = db::start_attempts(&writer, &[a, b].map(db::Start::new)).await;
    let second = db::start_attempts(&writer, &[c, d].map(db::Start::new)).await;

    // Assert: the first batch may fail whole (nothing written), the next one works.
    let started = |result: &anyhow::Result<Started>| {
        matches!(
            result,
            Ok(Started::Attempt {
                attempt: 1,
                from_pending: true,
                ..
            })
        )
    };
    assert!(second.iter().all(started), "{second:?}");
    if first.iter().all(started) {
        assert_ne!(connection_id().await, kept);
    } else {
        assert!(first.iter().all(Result::is_err), "{first:?}");
        for id in [a, b] {
            assert_eq!(app.stored_status(id).await, TaskStatus::Pending);
        }
    }
}
