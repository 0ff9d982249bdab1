//! The integration harness: the real API and worker, started in process on port 0 exactly as
//! their binaries start them, against real MySQL, RabbitMQ and Redis.
//!
//! Each [`TestApp`] has its own database (migrated), exchange, queue and Redis channel, all
//! removed when it is dropped, so tests run in parallel and leave nothing behind. Helpers wait on
//! the event a test expects, with a timeout; nothing sleeps to synchronise.

pub mod services;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use serde_json::Value;
use sqlx::MySqlPool;
use taskflow_core::config::Settings;
use taskflow_core::domain::{TaskId, TaskStatus};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::ws::WsClient;

/// How long a test waits for an event it expects before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A running API and worker with their own database, exchange, queue and channel.
pub struct TestApp {
    pub settings: Settings,
    pub address: SocketAddr,
    pub pool: MySqlPool,
    pub http: reqwest::Client,
    database: String,
    admin_url: String,
    api: Running,
    worker: Option<Running>,
}

/// A component running on the test's runtime, and the way to stop it.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn stop_signal() -> (
        oneshot::Sender<()>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop, stopped) = oneshot::channel::<()>();
        (stop, async move {
            let _ = stopped.await;
        })
    }

    /// Signals the stop and waits for the component to finish, reporting its error if any.
    async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.context("component panicked")?
    }
}

/// Per-test names: nothing is shared with another test or with a running stack.
fn unique_vars(base: &services::Services, suffix: &str) -> HashMap<String, String> {
    HashMap::from([
        (
            "DB_URL".to_owned(),
            format!("{}/tf_test_{suffix}", base.mysql),
        ),
        ("RABBITMQ_URL".to_owned(), base.rabbitmq.clone()),
        ("REDIS_URL".to_owned(), base.redis.clone()),
        ("API_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("API_PORT".to_owned(), "0".to_owned()),
        ("TASK_EXCHANGE".to_owned(), format!("test.{suffix}.topic")),
        ("TASK_QUEUE".to_owned(), format!("test.{suffix}.created")),
        ("TASK_ROUTING_KEY".to_owned(), "task.created".to_owned()),
        ("STATUS_CHANNEL".to_owned(), format!("test.{suffix}.status")),
        ("DB_CONNECT_ATTEMPTS".to_owned(), "3".to_owned()),
        ("DB_CONNECT_BACKOFF".to_owned(), "0.2".to_owned()),
        ("RABBITMQ_CONNECT_ATTEMPTS".to_owned(), "3".to_owned()),
        ("RABBITMQ_CONNECT_BACKOFF".to_owned(), "0.2".to_owned()),
        ("DB_MAX_CONNECTIONS".to_owned(), "4".to_owned()),
        ("MAX_BODY_BYTES".to_owned(), "65536".to_owned()),
    ])
}

/// Options for [`TestApp::spawn_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra environment variables (e.g. `WORKER_PREFETCH`).
    pub vars: Vec<(&'static str, String)>,
    /// Start without a worker; start one later with [`TestApp::start_worker`].
    pub no_worker: bool,
}

impl TestApp {
    /// A migrated database, the API and a worker.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        init_logging();
        let base = services::services().await;
        let suffix = TaskId::new().to_string().replace('-', "")[20..].to_owned();
        let mut vars = unique_vars(base, &suffix);
        vars.extend(options.vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let settings = Settings::from_vars(&vars).expect("test settings are valid");
        let database = format!("tf_test_{suffix}");

        let admin = MySqlPool::connect(&base.mysql)
            .await
            .expect("connecting to the test MySQL server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
            .execute(&admin)
            .await
            .expect("creating the test database");
        admin.close().await;
        let pool = taskflow_core::db::connect(&settings.db)
            .await
            .expect("connecting to the test database");
        taskflow_core::db::migrate(&pool)
            .await
            .expect("migrating the test database");

        let api = taskflow_api::Api::build(&settings)
            .await
            .expect("building the API");
        let address = api.local_addr();
        let (stop, stopped) = Running::stop_signal();
        let api = Running {
            stop: Some(stop),
            task: tokio::spawn(api.run(stopped)),
        };

        let mut app = Self {
            settings,
            address,
            pool,
            http: reqwest::Client::new(),
            database,
            admin_url: base.mysql.clone(),
            api,
            worker: None,
        };
        if !options.no_worker {
            app.start_worker().await;
        }
        app
    }

    /// Starts the worker (after [`Options::no_worker`], or after [`TestApp::stop_worker`]).
    pub async fn start_worker(&mut self) {
        assert!(self.worker.is_none(), "a worker is already running");
        let worker = taskflow_worker::Worker::build(&self.settings)
            .await
            .expect("building the worker");
        let (stop, stopped) = Running::stop_signal();
        self.worker = Some(Running {
            stop: Some(stop),
            task: tokio::spawn(worker.run(stopped)),
        });
    }

    /// Stops the worker gracefully and reports how it ended.
    pub async fn stop_worker(&mut self) -> anyhow::Result<()> {
        let worker = self.worker.take().expect("no worker is running");
        worker.shutdown().await
    }

    /// Stops the API gracefully and reports how it ended.
    pub async fn stop_api(&mut self) -> anyhow::Result<()> {
        let api = std::mem::replace(
            &mut self.api,
            Running {
                stop: None,
                task: tokio::spawn(async { Ok(()) }),
            },
        );
        api.shutdown().await
    }

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

    /// Publishes raw bytes to this test's exchange with the task routing key, as another
    /// producer (or a broken one) would.
    pub async fn publish_raw(&self, body: &[u8]) {
        let connection = taskflow_core::amqp::connect(&self.settings.amqp)
            .await
            .expect("connecting to RabbitMQ");
        let channel = connection
            .create_channel()
            .await
            .expect("opening a channel");
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

impl Drop for TestApp {
    /// Stops the components and removes the database, exchange and queue, also when the test
    /// failed. Drop cannot await, so the clean-up runs on a runtime of its own.
    fn drop(&mut self) {
        if let Some(stop) = self.api.stop.take() {
            let _ = stop.send(());
        }
        if let Some(worker) = self.worker.as_mut().and_then(|worker| worker.stop.take()) {
            let _ = worker.send(());
        }
        let database = self.database.clone();
        let admin_url = self.admin_url.clone();
        let amqp = self.settings.amqp.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let admin = MySqlPool::connect(&admin_url).await?;
                // The components are stopping on the test's runtime; their transactions end
                // soon. Wait for their locks a while, never forever.
                sqlx::query("SET SESSION lock_wait_timeout = 20")
                    .execute(&admin)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{database}`"
                )))
                .execute(&admin)
                .await?;
                admin.close().await;
                let connection = lapin::Connection::connect(&amqp.url, Default::default()).await?;
                let channel = connection.create_channel().await?;
                channel
                    .queue_delete(amqp.queue.as_str().into(), QueueDeleteOptions::default())
                    .await?;
                channel
                    .exchange_delete(
                        amqp.exchange.as_str().into(),
                        ExchangeDeleteOptions::default(),
                    )
                    .await?;
                let _ = connection.close(200, "test done".into()).await;
                anyhow::Ok(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("test clean-up failed: {err:#}"),
            Err(_) => eprintln!("test clean-up panicked"),
        }
    }
}

/// Logs from the components, for a failing test's output (`RUST_LOG` to change the level).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,taskflow=info")),
        )
        .with_test_writer()
        .try_init();
}
