//! Several API replicas and several workers against the same services just work.

use std::collections::HashSet;

use serde_json::json;
use taskflow_core::domain::TaskId;
use taskflow_tests::{Options, TestApp, WsClient};

use crate::WORKER_BINARY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_three_workers_share_the_work_and_every_client_sees_every_event() {
    // Arrange: the harness's API, a second replica, three worker processes, and two WebSocket
    // clients on each API.
    let app = TestApp::spawn_with(Options {
        no_worker: true,
        vars: vec![("WORKER_PREFETCH", "2".to_owned())],
        ..Options::default()
    })
    .await;
    let replica = app.spawn_replica().await;
    let _workers: Vec<_> = (1..=3)
        .map(|n| app.spawn_named_worker_process(WORKER_BINARY, &format!("scale-worker-{n}")))
        .collect();
    let mut clients = vec![
        app.ws().await,
        app.ws().await,
        WsClient::connect(&replica.ws_url()).await,
        WsClient::connect(&replica.ws_url()).await,
    ];
    app.wait_for_consumers(3).await;

    // Act: 120 tasks, alternately through each API.
    let mut ids: Vec<TaskId> = Vec::new();
    for i in 0..120 {
        let url = if i % 2 == 0 {
            app.url("/tasks")
        } else {
            replica.url("/tasks")
        };
        let body: serde_json::Value = app
            .http
            .post(url)
            .json(&json!({"title": format!("scale {i}"), "payload": {"message": "m"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(body["task_id"].as_str().unwrap().parse().unwrap());
    }

    // Assert: every client on either API saw every task's whole life.
    for client in &mut clients {
        let seen = client.statuses_until_finished(&ids).await;
        for id in &ids {
            assert_eq!(seen[id], ["PENDING", "PROCESSING", "DONE"], "task {id}");
        }
    }
    // ... and all three workers took a share.
    let workers: Vec<String> = sqlx::query_scalar(
        "SELECT attempt_worker FROM tasks WHERE status = 'DONE' AND attempt_worker IS NOT NULL \
             UNION SELECT worker FROM task_attempts WHERE outcome = 'DONE'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let workers: HashSet<String> = workers.into_iter().collect();
    for n in 1..=3 {
        assert!(
            workers.contains(&format!("scale-worker-{n}")),
            "scale-worker-{n} took a share: {workers:?}"
        );
    }
}
