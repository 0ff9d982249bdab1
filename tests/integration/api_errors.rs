//! Bad input gets the one JSON error envelope and the right status, and loses nothing: the API
//! keeps serving afterwards. Also `/healthz` and the listing's paging.

use reqwest::StatusCode;
use serde_json::json;
use taskflow_tests::{Options, TestApp};

/// Every error answer has `{"error": {"code", "message", "field"?}}`.
fn assert_envelope(body: &serde_json::Value, code: &str, field: Option<&str>) {
    assert_eq!(body["error"]["code"], code, "envelope: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "envelope: {body}"
    );
    match field {
        Some(field) => assert_eq!(body["error"]["field"], field, "envelope: {body}"),
        None => assert!(body["error"].get("field").is_none(), "envelope: {body}"),
    }
}

fn no_worker() -> Options {
    Options {
        no_worker: true,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_invalid_task_bodies_are_refused_with_the_error_envelope() {
    let app = TestApp::spawn_with(no_worker()).await;
    let cases: Vec<(&str, String, StatusCode, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            "{\"title\": ".into(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            None,
        ),
        (
            "empty body",
            String::new(),
            StatusCode::BAD_REQUEST,
            "bad_request",
            None,
        ),
        (
            "not an object",
            "[1, 2]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            None,
        ),
        (
            "missing title",
            json!({"payload": {}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (
            "null title",
            json!({"title": null}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (
            "title of wrong type",
            json!({"title": 7}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (
            "empty title",
            json!({"title": ""}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (
            "blank title",
            json!({"title": "   "}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (
            "title over 255",
            json!({"title": "x".repeat(256)}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("title"),
        ),
        (
            "payload array",
            json!({"title": "t", "payload": [1]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("payload"),
        ),
        (
            "payload string",
            json!({"title": "t", "payload": "x"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("payload"),
        ),
    ];
    for (case, body, status, code, field) in cases {
        let (got, answer) = app.post_raw(body, "application/json").await;
        assert_eq!(got, status, "{case}: {answer}");
        assert_envelope(&answer, code, field);
    }

    let (status, _, tasks) = app.get("/tasks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tasks, json!([]), "no refused request created a task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_of_exactly_255_characters_is_accepted() {
    let app = TestApp::spawn_with(no_worker()).await;
    let title = "é".repeat(255);

    let (status, body) = app.post_task(&json!({"title": title})).await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["title"], title);
    assert_eq!(body["payload"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_refused_with_415() {
    let app = TestApp::spawn_with(no_worker()).await;

    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, body) = app
            .post_raw(json!({"title": "t"}).to_string(), content_type)
            .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_envelope(&body, "unsupported_media_type", None);
    }
    let (status, _) = app
        .post_raw(
            json!({"title": "t"}).to_string(),
            "application/json; charset=utf-8",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a charset parameter is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413_and_the_api_keeps_serving() {
    let app = TestApp::spawn_with(no_worker()).await;
    let limit = app.settings.api.max_body_bytes;
    let big = json!({"title": "big", "payload": {"blob": "x".repeat(limit)}}).to_string();

    let (status, body) = app.post_raw(big, "application/json").await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&body, "payload_too_large", None);
    let (status, _) = app.post_task(&json!({"title": "small"})).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_ids_that_are_not_uuids_get_400_and_unknown_ones_404() {
    let app = TestApp::spawn_with(no_worker()).await;

    let (status, _, body) = app.get("/tasks/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "bad_request", Some("task_id"));

    let (status, _, body) = app.get("/tasks/%27%3B%20DROP%20TABLE%20tasks%3B--").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, _, body) = app.get(&format!("/tasks/{}", uuid_like())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found", None);
}

fn uuid_like() -> String {
    taskflow_core::domain::TaskId::new().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_the_error_envelope() {
    let app = TestApp::spawn_with(no_worker()).await;

    let (status, _, body) = app.get("/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "not_found", None);

    let response = app.http.delete(app.url("/tasks")).send().await.unwrap();
    assert!(response.status().is_client_error());
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listing_parameters_get_400_naming_the_parameter() {
    let app = TestApp::spawn_with(no_worker()).await;

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("status=RUNNING", "status"),
        ("status=done", "status"),
        ("before=garbage", "before"),
        ("before=123_not-a-uuid", "before"),
    ] {
        let (status, _, body) = app.get(&format!("/tasks?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_envelope(&body, "bad_request", Some(field));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_pages_newest_first_with_a_cursor_and_filters_by_status() {
    let app = TestApp::spawn_with(no_worker()).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            app.create_task(&format!("task {i}"), json!({"message": "m"}))
                .await,
        );
    }
    created.reverse(); // newest first

    // Page through two at a time.
    let mut seen = Vec::new();
    let mut path = "/tasks?limit=2".to_owned();
    loop {
        let (status, headers, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        let page = page.as_array().unwrap().clone();
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .map(|task| task["task_id"].as_str().unwrap().to_owned()),
        );
        match headers.get(taskflow_api::NEXT_CURSOR_HEADER) {
            Some(cursor) => path = format!("/tasks?limit=2&before={}", cursor.to_str().unwrap()),
            None => break,
        }
    }
    let expected: Vec<String> = created.iter().map(|id| id.to_string()).collect();
    assert_eq!(seen, expected);

    // Move one task along and filter.
    taskflow_core::db::start_attempt(&app.pool, taskflow_core::db::Start::new(created[1]))
        .await
        .unwrap();
    let (_, _, processing) = app.get("/tasks?status=PROCESSING").await;
    assert_eq!(processing.as_array().unwrap().len(), 1);
    assert_eq!(processing[0]["task_id"], created[1].to_string());
    let (_, headers, pending) = app.get("/tasks?status=PENDING&limit=4").await;
    assert_eq!(pending.as_array().unwrap().len(), 4);
    assert!(
        headers.get(taskflow_api::NEXT_CURSOR_HEADER).is_none(),
        "exactly 4 PENDING: no next page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_every_dependency_up() {
    let app = TestApp::spawn_with(no_worker()).await;

    let (status, _, body) = app.get("/healthz").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "status": "ok",
            "components": {
                "mysql": {"status": "up"},
                "rabbitmq": {"status": "up"},
                "redis": {"status": "up"}
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_for_the_dashboard() {
    let app = TestApp::spawn_with(no_worker()).await;

    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/tasks"))
        .header("origin", "http://localhost:5001")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();

    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}
