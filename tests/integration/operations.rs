//! Operating TaskFlow: metrics that move with real tasks, the OpenAPI document, statistics,
//! request ids, access control and connection limits.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;
use taskflow_core::domain::TaskStatus;

use taskflow_tests::{Options, TestApp, WsClient};

fn with_vars(vars: &[(&'static str, &str)]) -> Options {
    Options {
        vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Options::default()
    }
}

/// Reads a Prometheus text page into `name{labels}` → value.
async fn scrape(http: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let response = http.get(url).send().await.expect("scraping metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_really_happened() {
    // Arrange
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    // Act: two tasks DONE, one FAILED.
    let ids = [
        app.create_task("a", json!({"message": "1"})).await,
        app.create_task("b", json!({"message": "2"})).await,
        app.create_task("c", json!({})).await,
    ];
    ws.statuses_until_finished(&ids).await;

    // Assert: the API's counters and gauges.
    let api = scrape(&app.http, &app.url("/metrics")).await;
    assert_eq!(api["taskflow_tasks_created_total"], 3.0);
    assert_eq!(
        api["taskflow_task_transitions_total{status=\"PENDING\"}"],
        3.0
    );
    assert_eq!(api["taskflow_websocket_clients"], 1.0);
    assert!(
        api["taskflow_websocket_messages_sent_total"] >= 9.0,
        "3 events per task"
    );
    assert_eq!(api["taskflow_queue_messages{queue=\"work\"}"], 0.0);
    assert_eq!(api["taskflow_oldest_pending_task_age_seconds"], 0.0);
    let posts = api
        .iter()
        .filter(|(name, _)| {
            name.starts_with("taskflow_http_request_duration_seconds_count")
                && name.contains("route=\"/tasks\"")
                && name.contains("method=\"POST\"")
                && name.contains("status=\"201\"")
        })
        .map(|(_, count)| *count)
        .sum::<f64>();
    assert_eq!(posts, 3.0, "latency is recorded by route pattern");

    // Assert: the worker's counters and histograms, on its own port.
    let worker_url = format!("http://{}/metrics", app.worker_metrics.unwrap());
    let worker = scrape(&app.http, &worker_url).await;
    assert_eq!(
        worker["taskflow_task_transitions_total{status=\"PROCESSING\"}"],
        3.0
    );
    assert_eq!(
        worker["taskflow_task_transitions_total{status=\"DONE\"}"],
        2.0
    );
    assert_eq!(
        worker["taskflow_task_transitions_total{status=\"FAILED\"}"],
        1.0
    );
    for phase in ["queue_wait", "run", "end_to_end"] {
        assert_eq!(
            worker[&format!("taskflow_task_duration_seconds_count{{phase=\"{phase}\"}}")],
            3.0,
            "{phase}"
        );
    }
    let live = app
        .http
        .get(format!("http://{}/livez", app.worker_metrics.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_dead_letters_are_counted() {
    let app = TestApp::spawn_with(with_vars(&[("RETRY_MAX_ATTEMPTS", "2")])).await;
    let mut ws = app.ws().await;

    let id = app
        .create_task("flaky", json!({"message": "x", "transient_failures": 5}))
        .await;
    ws.wait_for(id, TaskStatus::Failed).await;
    app.publish_raw(b"poison").await;
    let sentinel = app.create_task("after", json!({"message": "ok"})).await;
    ws.wait_for(sentinel, TaskStatus::Done).await;

    let worker_url = format!("http://{}/metrics", app.worker_metrics.unwrap());
    let worker = scrape(&app.http, &worker_url).await;
    assert_eq!(worker["taskflow_task_retries_total"], 1.0);
    assert_eq!(
        worker["taskflow_tasks_dead_lettered_total{reason=\"exhausted\"}"],
        1.0
    );
    assert_eq!(
        worker["taskflow_tasks_dead_lettered_total{reason=\"poison\"}"],
        1.0
    );
    let api = scrape(&app.http, &app.url("/metrics")).await;
    assert_eq!(api["taskflow_queue_messages{queue=\"dead_letter\"}"], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn_without_worker().await;

    let (status, _, doc) = app.get("/openapi.json").await;

    assert_eq!(status, StatusCode::OK);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/tasks",
        "/tasks/{task_id}",
        "/tasks/{task_id}/retry",
        "/stats",
        "/ws",
        "/healthz",
        "/livez",
        "/metrics",
    ] {
        assert!(paths.iter().any(|p| *p == path), "{path} in {paths:?}");
    }
    insta::assert_json_snapshot!("openapi", doc);
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("/openapi.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_by_status_and_minute() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;
    let ids = [
        app.create_task("a", json!({"message": "1"})).await,
        app.create_task("b", json!({})).await,
    ];
    ws.statuses_until_finished(&ids).await;

    let (status, _, stats) = app.get("/stats").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats["counts"],
        json!({"PENDING": 0, "PROCESSING": 0, "DONE": 1, "FAILED": 1})
    );
    let minutes = stats["finished_per_minute"].as_array().unwrap();
    let done: u64 = minutes.iter().map(|m| m["done"].as_u64().unwrap()).sum();
    let failed: u64 = minutes.iter().map(|m| m["failed"].as_u64().unwrap()).sum();
    assert_eq!((done, failed), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_dashboards_asking_for_stats_at_once_cost_one_query() {
    // Arrange
    let app = TestApp::spawn_without_worker().await;
    app.create_task("counted", json!({"message": "1"})).await;

    // Act: a hundred tabs poll at the same moment.
    let asks = (0..100).map(|_| app.get("/stats"));
    let answers = futures_util::future::join_all(asks).await;

    // Assert: every tab got the same answer, from one computation.
    for (status, headers, stats) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(stats["counts"]["PENDING"], 1, "{stats}");
        assert_eq!(headers["cache-control"], "private, max-age=2");
    }
    let api = scrape(&app.http, &app.url("/metrics")).await;
    assert_eq!(api["taskflow_stats_computed_total"], 1.0);

    // And a later ask, past the interval, sees a change.
    app.create_task("counted later", json!({"message": "2"}))
        .await;
    let refreshed = taskflow_tests::poll_until(taskflow_tests::EVENT_TIMEOUT, async || {
        app.get("/stats").await.2["counts"]["PENDING"] == 2
    });
    assert!(refreshed.await, "the statistics were never recomputed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn_without_worker().await;

    let (_, headers, _) = app.get("/livez").await;
    assert!(!headers["x-request-id"].is_empty());
    let echoed = app
        .http
        .get(app.url("/livez"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_writes_need_it_and_reads_stay_open() {
    let app = TestApp::spawn_with(with_vars(&[("API_TOKEN", "s3cret")])).await;
    let body = json!({"title": "t", "payload": {"message": "m"}}).to_string();

    let refused = app
        .http
        .post(app.url("/tasks"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let envelope: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], "unauthorized");

    let wrong = app
        .http
        .post(app.url("/tasks"))
        .bearer_auth("s3creT")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let accepted = app
        .http
        .post(app.url("/tasks"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);

    let (status, _, _) = app.get("/tasks").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "reads are open unless API_TOKEN_READS"
    );
    // And so is the WebSocket (`ws()` fails the test if the handshake is refused).
    let _ws = app.ws().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_for_reads_everything_but_probes_needs_it_including_the_websocket() {
    let app = TestApp::spawn_with(with_vars(&[
        ("API_TOKEN", "s3cret"),
        ("API_TOKEN_READS", "true"),
    ]))
    .await;

    let (status, _, _) = app.get("/tasks").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for open in ["/livez", "/healthz", "/metrics", "/openapi.json"] {
        let response = app.http.get(app.url(open)).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{open} stays open for probes and clients"
        );
    }
    let authorized = app
        .http
        .get(app.url("/tasks"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), StatusCode::OK);

    let refused = tokio_tungstenite::connect_async(app.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED.as_u16());
        }
        other => panic!("the WebSocket without a token must be refused, got {other:?}"),
    }
    let mut ws = WsClient::connect_with_token(&app.ws_url(), Some("s3cret")).await;
    let id = app.create_task_with_token("s3cret").await;
    ws.wait_for(id, TaskStatus::Done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_past_the_limit_are_refused_cleanly() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("WS_MAX_CLIENTS", "2".to_owned())],
        ..Options::default()
    })
    .await;
    let first = app.ws().await;
    let _second = app.ws().await;

    let third = tokio_tungstenite::connect_async(app.ws_url()).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE.as_u16());
        }
        other => panic!("a third client must be refused with 503, got {other:?}"),
    }

    // A slot frees when a client leaves.
    drop(first);
    let mut admitted = None;
    for _ in 0..100 {
        if let Ok((stream, _)) = tokio_tungstenite::connect_async(app.ws_url()).await {
            admitted = Some(stream);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(admitted.is_some(), "a freed slot admits a new client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_answers_pings_is_dropped() {
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![
            ("WS_PING_INTERVAL_SECONDS", "1".to_owned()),
            ("WS_IDLE_TIMEOUT_SECONDS", "1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    // A raw client: it completes the handshake and then reads bytes without ever answering a
    // ping (a real WebSocket library would answer them for us).
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(app.address).await.unwrap();
    socket
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                app.address
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    // The server pings, hears nothing, and closes: the stream ends.
    let mut buffer = [0u8; 1024];
    let ended = tokio::time::timeout(taskflow_tests::EVENT_TIMEOUT, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the idle client was disconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_the_built_dashboard_gzipped_with_deep_links() {
    // Arrange: a stand-in for `frontend/dist`.
    let dist = std::env::temp_dir().join(format!("taskflow-dist-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><div id=root></div>",
    )
    .unwrap();
    std::fs::write(
        dist.join("assets/app.js"),
        "console.log('taskflow');\n".repeat(400),
    )
    .unwrap();
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("STATIC_DIR", dist.display().to_string())],
        ..Options::default()
    })
    .await;

    // Act & Assert: the page, a deep link, and an asset, compressed for a client that asks.
    for path in [
        "/",
        "/?task=01a22375-910a-7565-8234-00aa7955a721",
        "/some/deep/path",
    ] {
        let page = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert!(
            page.text().await.unwrap().contains("id=root"),
            "{path} serves index.html"
        );
    }
    let asset = app
        .http
        .get(app.url("/assets/app.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(asset.headers()["content-encoding"], "gzip");
    assert!(
        asset.bytes().await.unwrap().len() < 2_000,
        "10 kB of JavaScript, compressed"
    );
    // The API itself is unchanged.
    let (status, _, tasks) = app.get("/tasks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(tasks.is_array());
    std::fs::remove_dir_all(&dist).ok();
}
