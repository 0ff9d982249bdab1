//! `Idempotency-Key` on `POST /tasks`, and what a client is told when the database does not
//! confirm an INSERT.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_tests::{EVENT_TIMEOUT, Options, Proxied, TestApp, poll_until};

async fn post_with_key(
    app: &TestApp,
    key: &str,
    body: &Value,
) -> (StatusCode, Option<String>, Value) {
    let response = app
        .http
        .post(app.url("/tasks"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("POST /tasks");
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        replayed,
        response.json().await.expect("a JSON answer"),
    )
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&app.pool)
        .await
        .expect("counting")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_keyed_requests_at_once_store_one_task_and_publish_one_message() {
    let app = TestApp::spawn_without_worker().await;
    let body = json!({"title": "once", "payload": {"message": "m"}});

    let answers =
        futures_util::future::join_all((0..50).map(|_| post_with_key(&app, "order-42", &body)))
            .await;

    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(status, _, body)| {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            body["task_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same task");
    let replays = answers
        .iter()
        .filter(|(_, replayed, _)| replayed.as_deref() == Some("true"))
        .count();
    assert_eq!(replays, 49, "all but the first are replays");
    let first = answers.iter().find(|(_, replayed, _)| replayed.is_none());
    assert!(
        answers.iter().all(|(_, _, body)| *body == first.unwrap().2),
        "a replay is the first answer"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tasks").await, 1);
    let id: TaskId = ids.into_iter().next().unwrap().parse().unwrap();
    app.wait_until_dispatched(id).await;
    assert_eq!(app.queue_depth(&app.direct.amqp.queue).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_answers_as_the_first_time_even_after_the_task_ran() {
    let app = TestApp::spawn().await;
    let body = json!({"title": "ran", "payload": {"message": "m"}});
    let (status, _, first) = post_with_key(&app, "k1", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = first["task_id"].as_str().unwrap().parse().unwrap();
    app.wait_for_status(id, TaskStatus::Done).await;

    let (status, replayed, again) = post_with_key(&app, "k1", &body).await;

    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_body_is_refused_and_bad_keys_are_400() {
    let app = TestApp::spawn_without_worker().await;
    let (status, _, _) = post_with_key(&app, "k", &json!({"title": "a"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _, body) = post_with_key(&app, "k", &json!({"title": "b"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different request body")
    );

    let longest = "x".repeat(255);
    let (status, _, body) = post_with_key(&app, &longest, &json!({"title": "c"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for bad in ["x".repeat(256), String::new(), "has space".to_owned()] {
        let (status, _, body) = post_with_key(&app, &bad, &json!({"title": "d"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "key {bad:?}: {body}");
        assert_eq!(body["error"]["field"], "Idempotency-Key");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tasks").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_older_than_a_day_is_pruned_and_free_again() {
    let app = TestApp::spawn_without_worker().await;
    let (status, _, first) = post_with_key(&app, "old", &json!({"title": "a"})).await;
    assert_eq!(status, StatusCode::CREATED);
    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - INTERVAL 25 HOUR")
        .execute(&app.pool)
        .await
        .unwrap();

    // Past its lifetime the key no longer replays: another body is a new task.
    let (status, replayed, second) = post_with_key(&app, "old", &json!({"title": "b"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed, None);
    assert_ne!(first["task_id"], second["task_id"]);

    sqlx::query("UPDATE idempotency_keys SET created_at = created_at - INTERVAL 25 HOUR")
        .execute(&app.pool)
        .await
        .unwrap();
    let now = taskflow_core::domain::now_micros();
    let pruned = taskflow_core::db::prune_idempotency_keys(&app.pool, now, 1000)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM idempotency_keys").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM tasks").await,
        2,
        "tasks stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_committed_without_its_answer_is_not_reported_as_nothing_stored() {
    let app = TestApp::spawn_with(Options {
        proxied: Proxied::Api,
        vars: vec![("OUTBOX_GRACE_MS", "200".to_owned())],
        ..Options::default()
    })
    .await;
    let proxies = app.proxies.as_ref().unwrap();
    // The INSERT writer's connection is open and kept.
    app.create_task("warm", json!({})).await;

    // Act: the INSERT reaches MySQL and commits; its answer never comes back, then the
    // connection breaks.
    proxies.mysql.swallow_answers();
    let request = {
        let http = app.http.clone();
        let url = app.url("/tasks");
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"title": "in doubt", "payload": {"message": "m"}}))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        })
    };
    let stored = poll_until(EVENT_TIMEOUT, async || {
        count(&app, "SELECT COUNT(*) FROM tasks WHERE title = 'in doubt'").await == 1
    });
    assert!(stored.await, "the INSERT reached the database");
    proxies.mysql.cut();
    let (status, body) = tokio::time::timeout(EVENT_TIMEOUT, request)
        .await
        .expect("the API answers once the connection breaks")
        .unwrap();
    proxies.mysql.heal();

    // Assert: not 503 "nothing stored", but a 504 that names the task, which exists and runs.
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "outcome_unknown");
    let id: String = sqlx::query_scalar("SELECT id FROM tasks WHERE title = 'in doubt'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&id),
        "{body}"
    );
    let id: TaskId = id.parse().unwrap();
    let done = poll_until(Duration::from_secs(30), async || {
        app.stored_status(id).await == TaskStatus::Done
    });
    assert!(done.await, "the task in doubt is dispatched and done");
}
