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
async fn a_task_accepted_while_the_broker_is_down_is_dispatched_after_it_returns() {
    // Arrange: the API reaches RabbitMQ through a proxy, which is cut.
    let app = TestApp::spawn_with(options(Proxied::Api, &[])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;
    let refused = proxies.rabbitmq.refused();
    proxies.rabbitmq.cut();

    // Act: the task is accepted (its message waits in the outbox), then the broker returns.
    let id = app
        .create_task("while down", json!({"message": "made it"}))
        .await;
    proxies.rabbitmq.wait_for_refusals(refused).await;
    proxies.rabbitmq.heal();

    // Assert
    let events = ws.wait_for(id, TaskStatus::Done).await;
    assert_eq!(events.last().unwrap()["message"], "made it");
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
async fn a_database_outage_during_processing_is_retried_with_backoff_until_done() {
    // Arrange: workers reach MySQL through a proxy; the API does not.
    let app = TestApp::spawn_with(options(Proxied::Workers, &[("RETRY_MAX_ATTEMPTS", "50")])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;
    let refused = proxies.mysql.refused();
    proxies.mysql.cut();

    // Act: a task arrives while the worker cannot reach the database; it comes back later.
    let id = app
        .create_task("db down", json!({"message": "after the outage"}))
        .await;
    proxies.mysql.wait_for_refusals(refused + 1).await;
    proxies.mysql.heal();

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
    let response = app
        .http
        .post(app.url(&format!("/tasks/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Assert
    let replay = ws.wait_for(id, TaskStatus::Done).await;
    let statuses: Vec<&str> = replay
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["PENDING", "PROCESSING", "DONE"]);
    let response = app
        .http
        .post(app.url(&format!("/tasks/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
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
    let response = app
        .http
        .post(app.url(&format!("/tasks/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_does_not_stop_processing_and_clients_are_told_to_resync() {
    let app = TestApp::spawn_with(options(Proxied::Both, &[])).await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;

    let refused = proxies.redis.refused();
    proxies.redis.cut();
    let id = app
        .create_task("no redis", json!({"message": "still done"}))
        .await;
    app.wait_for_status(id, TaskStatus::Done).await;
    proxies.redis.wait_for_refusals(refused).await;
    proxies.redis.heal();

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
    let refused = proxies.rabbitmq.refused();
    proxies.rabbitmq.cut();
    proxies.rabbitmq.wait_for_refusals(refused).await;
    proxies.rabbitmq.heal();

    let id = app
        .create_task("after restart", json!({"message": "reconnected"}))
        .await;
    ws.wait_for(id, TaskStatus::Done).await;
    let (status, _, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
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
