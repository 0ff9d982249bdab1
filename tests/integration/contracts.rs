//! The JSON shapes other programs depend on, pinned: the REST answers, the RabbitMQ
//! `task.created` message and the Redis/WebSocket status event. A renamed or dropped field
//! fails here before it breaks the Python services or the dashboard.

use insta::assert_json_snapshot;
use serde_json::json;
use taskflow_core::domain::TaskStatus;
use taskflow_tests::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_answers_keep_their_shape() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    let (_, created) = app
        .post_task(&json!({"title": "Example Task", "payload": {"message": "Task complete"}}))
        .await;
    assert_json_snapshot!("post_tasks_201", created, {
        ".task_id" => "[uuid]", ".created_at" => "[time]", ".updated_at" => "[time]"
    });

    for field in ["created_at", "updated_at"] {
        let text = created[field].as_str().unwrap();
        assert!(text.ends_with('Z'), "{field} is RFC 3339 in UTC: {text}");
        chrono::DateTime::parse_from_rfc3339(text).unwrap();
    }
    let id = created["task_id"].as_str().unwrap().parse().unwrap();
    ws.wait_for(id, TaskStatus::Done).await;
    assert_json_snapshot!("get_task_done", app.get_task(id).await, {
        ".task_id" => "[uuid]", ".created_at" => "[time]", ".updated_at" => "[time]", ".finished_at" => "[time]",
        ".attempts[].started_at" => "[time]", ".attempts[].finished_at" => "[time]", ".attempts[].worker" => "[worker]"
    });

    let (_, _, list) = app.get("/tasks").await;
    assert_json_snapshot!("get_tasks", list, {
        "[].task_id" => "[uuid]", "[].created_at" => "[time]", "[].updated_at" => "[time]", "[].finished_at" => "[time]"
    });

    let (_, body) = app.post_task(&json!({"title": ""})).await;
    assert_json_snapshot!("error_envelope", body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_event_keeps_its_shape() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws().await;

    let id = app.create_task("t", json!({"message": "hi"})).await;
    let events = ws.wait_for(id, TaskStatus::Done).await;

    assert_json_snapshot!("status_events", events, {
        "[].task_id" => "[uuid]", "[].updated_at" => "[time]"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_created_message_keeps_its_shape() {
    let app = TestApp::spawn_without_worker().await;

    let id = app.create_task("t", json!({"message": "hi"})).await;

    let message = app
        .take_message(&app.settings.amqp.queue)
        .await
        .expect("the task.created message is in the queue");
    assert_eq!(message.routing_key.as_str(), "task.created");
    assert_eq!(message.properties.delivery_mode(), &Some(2), "persistent");
    let body: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
    assert_eq!(body["task_id"], id.to_string());
    assert_json_snapshot!("task_created_message", body, {
        ".task_id" => "[uuid]", ".requested_at" => "[time]"
    });
}
