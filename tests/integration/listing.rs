//! `GET /tasks` filters: what each returns, how bad values are refused, and that each is served
//! by an index.

use reqwest::StatusCode;
use serde_json::json;
use taskflow_core::db::{self, ListFilter};
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_tests::TestApp;

async fn titled(app: &TestApp, count: usize) -> Vec<TaskId> {
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(
            app.create_task(&format!("job-{n:03}"), json!({"message": "m"}))
                .await,
        );
    }
    ids
}

fn listed(page: &serde_json::Value) -> Vec<String> {
    let tasks = page.as_array().expect("a list");
    tasks
        .iter()
        .map(|task| task["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_by_title_prefix_creation_time_and_ids() {
    let app = TestApp::spawn_without_worker().await;
    let ids = titled(&app, 12).await;
    let (_, _, eleventh) = app.get(&format!("/tasks?ids={}", ids[10])).await;
    let cut = eleventh[0]["created_at"].as_str().unwrap().to_owned();
    let cut = urlencode(&cut);

    let (_, _, page) = app.get("/tasks?title_prefix=job-01").await;
    assert_eq!(listed(&page), ["job-011", "job-010"]);
    let (_, _, page) = app.get("/tasks?title_prefix=job_").await;
    assert_eq!(
        listed(&page),
        Vec::<String>::new(),
        "a wildcard is a character"
    );
    let (_, _, page) = app.get(&format!("/tasks?created_after={cut}")).await;
    assert_eq!(listed(&page), ["job-011", "job-010"]);
    let (_, _, page) = app
        .get(&format!(
            "/tasks?created_before={cut}&title_prefix=job-00&limit=2"
        ))
        .await;
    assert_eq!(listed(&page), ["job-009", "job-008"]);
    let (_, headers, page) = app
        .get(&format!(
            "/tasks?ids={},{},{}",
            ids[0],
            ids[5],
            TaskId::new()
        ))
        .await;
    assert_eq!(
        listed(&page),
        ["job-005", "job-000"],
        "unknown ids are left out"
    );
    assert!(headers.get(taskflow_api::NEXT_CURSOR_HEADER).is_none());
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_refused_naming_the_parameter() {
    let app = TestApp::spawn_without_worker().await;
    let too_many = (0..101)
        .map(|_| TaskId::new().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for (query, field) in [
        ("ids=nope".to_owned(), "ids"),
        ("ids=".to_owned(), "ids"),
        (format!("ids={too_many}"), "ids"),
        ("created_after=yesterday".to_owned(), "created_after"),
        (
            "created_before=2026-13-01T00:00:00Z".to_owned(),
            "created_before",
        ),
        ("title_prefix=".to_owned(), "title_prefix"),
    ] {
        let (status, _, body) = app.get(&format!("/tasks?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_queries_use_an_index() {
    let app = TestApp::spawn_without_worker().await;
    titled(&app, 200).await;
    sqlx::query("ANALYZE TABLE tasks")
        .execute(&app.pool)
        .await
        .unwrap();
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let filters = [
        (
            "status",
            ListFilter {
                status: Some(TaskStatus::Failed),
                ..ListFilter::default()
            },
        ),
        (
            "title_prefix",
            ListFilter {
                title_prefix: Some("job-01".into()),
                ..ListFilter::default()
            },
        ),
        (
            "status and title_prefix",
            ListFilter {
                status: Some(TaskStatus::Failed),
                title_prefix: Some("job-01".into()),
                ..ListFilter::default()
            },
        ),
        (
            "created_before",
            ListFilter {
                created_before: Some(hour_ago),
                ..ListFilter::default()
            },
        ),
        (
            "status and created_after",
            ListFilter {
                status: Some(TaskStatus::Failed),
                created_after: Some(hour_ago),
                ..ListFilter::default()
            },
        ),
        (
            "ids",
            ListFilter {
                ids: Some(vec![TaskId::new(), TaskId::new()]),
                ..ListFilter::default()
            },
        ),
    ];
    for (name, filter) in filters {
        let plan = db::list_query("EXPLAIN SELECT", &filter, 51)
            .build()
            .fetch_all(&app.pool)
            .await
            .unwrap();
        for row in plan {
            use sqlx::Row as _;
            let access: String = row.try_get("type").unwrap();
            let key: Option<String> = row.try_get("key").unwrap();
            println!("{name}: type={access} key={key:?}");
            assert_ne!(access, "ALL", "{name} scans the whole table");
        }
    }
}
