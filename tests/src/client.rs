//! What a test does with its [`TestApp`]: HTTP calls, WebSocket clients, raw broker access,
//! and waiting on the states it expects.

use std::collections::HashMap;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use serde_json::Value;
use taskflow_core::domain::{TaskId, TaskStatus};

use crate::{EVENT_TIMEOUT, TestApp, WsClient};

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    /// `POST /tasks` with a JSON body; returns the status and the JSON answer.
    pub async fn post_task(&self, body: &Value) -> (reqwest::StatusCode, Value) {
        self.post_raw(body.to_string(), "application/json").await
    }

    /// `POST /tasks` with any body and content type.
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/tasks"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST /tasks");
        json_response(response).await
    }

    /// Creates a task that must be accepted; returns its id.
    pub async fn create_task(&self, title: &str, payload: Value) -> TaskId {
        let (status, body) = self
            .post_task(&serde_json::json!({"title": title, "payload": payload}))
            .await;
        assert_eq!(
            status,
            reqwest::StatusCode::CREATED,
            "POST /tasks answered {body}"
        );
        body["task_id"]
            .as_str()
            .expect("task_id in the answer")
            .parse()
            .expect("a UUID task_id")
    }

    /// [`TestApp::create_task`] with `Authorization: Bearer <token>`, for an API that wants one.
    pub async fn create_task_with_token(&self, token: &str) -> TaskId {
        let response = self
            .http
            .post(self.url("/tasks"))
            .bearer_auth(token)
            .json(&serde_json::json!({"title": "t", "payload": {"message": "m"}}))
            .send()
            .await
            .expect("POST /tasks");
        let (status, body) = json_response(response).await;
        assert_eq!(
            status,
            reqwest::StatusCode::CREATED,
            "POST /tasks answered {body}"
        );
        body["task_id"]
            .as_str()
            .expect("task_id in the answer")
            .parse()
            .expect("a UUID task_id")
    }

    /// `POST /tasks/{id}/retry`, as an operator replaying a task; returns the answer's status.
    pub async fn retry_task(&self, id: TaskId) -> reqwest::StatusCode {
        self.http
            .post(self.url(&format!("/tasks/{id}/retry")))
            .send()
            .await
            .expect("POST /tasks/{id}/retry")
            .status()
    }

    /// `GET` a path; returns the status, the headers and the JSON answer.
    pub async fn get(
        &self,
        path: &str,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let headers = response.headers().clone();
        let (status, body) = json_response(response).await;
        (status, headers, body)
    }

    pub async fn get_task(&self, id: TaskId) -> Value {
        let (status, _, body) = self.get(&format!("/tasks/{id}")).await;
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "GET /tasks/{id} answered {body}"
        );
        body
    }

    /// A connected WebSocket client.
    pub async fn ws(&self) -> WsClient {
        WsClient::connect(&self.ws_url()).await
    }

    /// A connection and a channel of the test's own, straight to RabbitMQ.
    pub async fn amqp_channel(&self) -> (lapin::Connection, lapin::Channel) {
        let connection = taskflow_core::amqp::connect(&self.direct.amqp)
            .await
            .expect("connecting to RabbitMQ");
        let channel = connection
            .create_channel()
            .await
            .expect("opening a channel");
        (connection, channel)
    }

    /// Publishes raw bytes to this test's exchange with the task routing key, as another
    /// producer (or a broken one) would.
    pub async fn publish_raw(&self, body: &[u8]) {
        let (connection, channel) = self.amqp_channel().await;
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirm_select");
        channel
            .basic_publish(
                self.settings.amqp.exchange.as_str().into(),
                self.settings.amqp.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publishing")
            .await
            .expect("publish confirm");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Waits until the stored task has `status` (for when no WebSocket event can tell).
    pub async fn wait_for_status(&self, id: TaskId, status: TaskStatus) {
        let became = poll_until(EVENT_TIMEOUT, async || {
            self.stored_status(id).await == status
        });
        assert!(became.await, "task {id} did not become {status}");
    }

    /// Waits until `count` tasks of this test are DONE, for as long as a large batch may need.
    pub async fn wait_for_done_count(&self, count: usize) {
        let deadline = EVENT_TIMEOUT + Duration::from_millis(20 * count as u64);
        let done = poll_until(deadline, async || {
            let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE status = 'DONE'")
                .fetch_one(&self.pool)
                .await
                .expect("counting DONE tasks");
            done as usize >= count
        });
        assert!(done.await, "fewer than {count} tasks became DONE in time");
    }

    /// Creates `count` tasks with a message; returns their ids.
    pub async fn create_tasks(&self, count: usize) -> Vec<TaskId> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            ids.push(
                self.create_task(
                    &format!("task {i}"),
                    serde_json::json!({"message": format!("m{i}")}),
                )
                .await,
            );
        }
        ids
    }

    /// How many attempts of each task ended DONE, from the attempt history (`task_attempts`, and
    /// the finishing attempt kept on the task row): exactly one per finished task means exactly
    /// one terminal transition counted.
    pub async fn done_attempts(&self) -> HashMap<TaskId, u32> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT task_id, COUNT(*) FROM (\
               SELECT task_id FROM task_attempts WHERE outcome = 'DONE' \
               UNION ALL \
               SELECT id FROM tasks WHERE status = 'DONE' AND attempt_started_at IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM task_attempts \
                 WHERE task_id = tasks.id AND attempt = tasks.attempts)\
             ) AS done GROUP BY task_id",
        )
        .fetch_all(&self.pool)
        .await
        .expect("counting DONE attempts");
        rows.into_iter()
            .map(|(id, count)| (id.parse().expect("a task id"), count as u32))
            .collect()
    }

    /// Takes (and acks) the oldest message of `queue`, if there is one: to read what went into
    /// the work or dead-letter queue.
    pub async fn take_message(&self, queue: &str) -> Option<lapin::message::Delivery> {
        let (connection, channel) = self.amqp_channel().await;
        let message = channel
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
            .map(|message| message.delivery);
        let _ = connection.close(200, "done".into()).await;
        message
    }

    /// Takes the oldest message of the work queue as a consumer that then dies: unacked, its
    /// channel closed, so the broker puts it back flagged `redelivered`. Runs `while_held`
    /// while the message is held (what the doomed consumer did before it died).
    pub async fn take_and_abandon(&self, while_held: impl AsyncFnOnce()) {
        let (connection, channel) = self.amqp_channel().await;
        let message = channel
            .basic_get(
                self.direct.amqp.queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: false },
            )
            .await
            .expect("basic.get");
        assert!(message.is_some(), "no message to take");
        while_held().await;
        connection
            .close(200, "a consumer dies".into())
            .await
            .expect("closing the consumer's connection");
    }

    /// The worker's counter `name`, as its `/metrics` shows it (0 before it is first counted).
    pub async fn worker_counter(&self, name: &str) -> u64 {
        let address = self.worker_metrics.expect("an in-process worker");
        let metrics = self
            .http
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .expect("scraping the worker's metrics")
            .text()
            .await
            .expect("reading the worker's metrics");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `count` consumers are attached to this test's work queue.
    pub async fn wait_for_consumers(&self, count: u32) {
        let (connection, channel) = self.amqp_channel().await;
        let attached = poll_until(EVENT_TIMEOUT, async || {
            let queue = channel
                .queue_declare(
                    self.direct.amqp.queue.as_str().into(),
                    lapin::options::QueueDeclareOptions::durable(),
                    Default::default(),
                )
                .await
                .expect("reading the work queue");
            queue.consumer_count() >= count
        })
        .await;
        let _ = connection.close(200, "done".into()).await;
        assert!(attached, "fewer than {count} consumers attached in time");
    }

    /// The number of messages waiting in a queue of this test (by its full name).
    pub async fn queue_depth(&self, queue: &str) -> Option<u32> {
        let (connection, channel) = self.amqp_channel().await;
        let declared = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await;
        let _ = connection.close(200, "done".into()).await;
        declared.ok().map(|queue| queue.message_count())
    }

    /// Whether the task is still due for dispatch: its message not yet known to have reached
    /// the broker (`dispatch_due_at` set).
    pub async fn dispatch_due(&self, id: TaskId) -> bool {
        sqlx::query_scalar("SELECT dispatch_due_at IS NOT NULL FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .expect("reading the task's dispatch mark")
    }

    /// Waits until the task is no longer due for dispatch (for when no event can tell).
    pub async fn wait_until_dispatched(&self, id: TaskId) {
        let dispatched = poll_until(EVENT_TIMEOUT, async || !self.dispatch_due(id).await);
        assert!(dispatched.await, "task {id} stayed due for dispatch");
    }

    /// The task's status as stored.
    pub async fn stored_status(&self, id: TaskId) -> TaskStatus {
        let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .expect("reading the task status");
        status.parse().expect("a known status")
    }
}

/// Checks `condition` every 25 ms until it holds (true) or `timeout` passes (false): for the
/// states no event announces.
pub async fn poll_until(timeout: Duration, condition: impl AsyncFnMut() -> bool) -> bool {
    taskflow_core::backoff::poll_until(timeout, Duration::from_millis(25), condition).await
}

async fn json_response(response: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("reading the body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("a JSON answer, got {status}: {text}"))
    };
    (status, body)
}
