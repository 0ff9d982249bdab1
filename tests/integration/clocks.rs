//! Hosts whose clocks disagree: every timestamp TaskFlow writes follows the database's clock.

use std::time::Duration;

use serde_json::json;
use taskflow_core::domain::TaskStatus;
use taskflow_tests::TestApp;

use crate::WORKER_BINARY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_clock_is_behind_still_stamps_its_changes_after_the_apis() {
    let app = TestApp::spawn_without_worker().await;
    let mut ws = app.ws().await;
    let _worker =
        app.spawn_worker_process_with_clock_behind(WORKER_BINARY, Duration::from_secs(30));

    let id = app.create_task("skewed", json!({"message": "m"})).await;
    let seen = ws.wait_for(id, TaskStatus::Done).await;

    // Each status change is stamped no earlier than the one before it, on the WebSocket and in
    // the stored task, so a client ordering by time keeps PROCESSING and DONE.
    let stamps: Vec<chrono::DateTime<chrono::Utc>> = seen
        .iter()
        .map(|event| event["updated_at"].as_str().unwrap().parse().unwrap())
        .collect();
    let statuses: Vec<&str> = seen.iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["PENDING", "PROCESSING", "DONE"]);
    assert!(
        stamps.windows(2).all(|pair| pair[0] <= pair[1]),
        "events stamped out of order: {seen:?}"
    );
    let task = app.get_task(id).await;
    let created: chrono::DateTime<chrono::Utc> =
        task["created_at"].as_str().unwrap().parse().unwrap();
    let finished: chrono::DateTime<chrono::Utc> =
        task["finished_at"].as_str().unwrap().parse().unwrap();
    assert!(
        created <= finished,
        "finished before it was created: {task}"
    );
}
