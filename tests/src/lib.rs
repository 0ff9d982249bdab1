//! The integration harness: the real API and worker, started in process on port 0 exactly as
//! their binaries start them, against real MySQL, RabbitMQ and Redis.
//!
//! Each [`TestApp`] has its own database (migrated), exchange, queue and Redis channel, all
//! removed when it is dropped, so tests run in parallel and leave nothing behind. Helpers wait on
//! the event a test expects, with a timeout; nothing sleeps to synchronise.

pub mod process;
pub mod proxy;
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

pub use crate::process::WorkerProcess;
pub use crate::proxy::FaultProxy;
pub use crate::ws::WsClient;

/// How long a test waits for an event it expects before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A running API and worker with their own database, exchange, queue and channel.
pub struct TestApp {
    /// The settings the API uses.
    pub settings: Settings,
    /// The settings workers use (they differ from the API's when only workers go through the
    /// fault proxies).
    pub worker_settings: Settings,
    /// The workers' settings as environment variables, for worker processes.
    worker_vars: HashMap<String, String>,
    /// Settings that reach the services directly, for the test's own connections.
    pub direct: Settings,
    pub address: SocketAddr,
    /// A direct connection to the test database, for arranging and checking.
    pub pool: MySqlPool,
    pub http: reqwest::Client,
    /// The fault proxies in front of MySQL, RabbitMQ and Redis, when [`Options::proxied`] asked.
    pub proxies: Option<Proxies>,
    database: String,
    admin_url: String,
    api: Running,
    worker: Option<Running>,
    /// Where the in-process worker serves `/metrics`.
    pub worker_metrics: Option<SocketAddr>,
}

/// An extra API process-in-process; dropping it stops it.
pub struct Replica {
    pub address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }
}

/// One fault proxy per service.
pub struct Proxies {
    pub mysql: FaultProxy,
    pub rabbitmq: FaultProxy,
    pub redis: FaultProxy,
}

impl Proxies {
    async fn start(base: &services::Services) -> Self {
        Self {
            mysql: FaultProxy::start(&host_port(&base.mysql)).await,
            rabbitmq: FaultProxy::start(&host_port(&base.rabbitmq)).await,
            redis: FaultProxy::start(&host_port(&base.redis)).await,
        }
    }

    /// Points the service URLs in `vars` at the proxies.
    fn route(&self, vars: &mut HashMap<String, String>) {
        for (name, proxy) in [
            ("DB_URL", &self.mysql),
            ("RABBITMQ_URL", &self.rabbitmq),
            ("REDIS_URL", &self.redis),
        ] {
            let url = vars.get_mut(name).expect("service URLs are set");
            *url = with_address(url, proxy.address());
        }
    }

    pub fn all(&self) -> [&FaultProxy; 3] {
        [&self.mysql, &self.rabbitmq, &self.redis]
    }
}

/// `scheme://user:pass@host:port/path` → `host:port`.
fn host_port(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a service URL");
    format!(
        "{}:{}",
        parsed.host_str().expect("a host"),
        parsed.port_or_known_default().expect("a port")
    )
}

fn with_address(url: &str, address: SocketAddr) -> String {
    let mut parsed = url::Url::parse(url).expect("a service URL");
    parsed
        .set_host(Some(&address.ip().to_string()))
        .expect("a host");
    parsed.set_port(Some(address.port())).expect("a port");
    parsed.to_string()
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
            taskflow_provision::db_url(&base.mysql, &format!("tf_test_{suffix}")),
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
        ("DB_ACQUIRE_TIMEOUT_MS".to_owned(), "1000".to_owned()),
        ("MAX_BODY_BYTES".to_owned(), "65536".to_owned()),
        (
            "TASK_DEAD_LETTER_QUEUE".to_owned(),
            format!("test.{suffix}.dead-letter"),
        ),
        // Recovery and retries at test speed.
        ("PUBLISH_TIMEOUT_MS".to_owned(), "1000".to_owned()),
        ("OUTBOX_SWEEP_INTERVAL_MS".to_owned(), "100".to_owned()),
        ("OUTBOX_GRACE_MS".to_owned(), "500".to_owned()),
        ("RETRY_BASE_DELAY_MS".to_owned(), "50".to_owned()),
        ("RETRY_MAX_DELAY_MS".to_owned(), "400".to_owned()),
        ("SHUTDOWN_TIMEOUT_SECONDS".to_owned(), "10".to_owned()),
        ("WORKER_NAME".to_owned(), format!("test-worker-{suffix}")),
        ("WORKER_METRICS_PORT".to_owned(), "0".to_owned()),
        // No dashboard unless a test asks for one: unknown paths stay JSON 404s.
        ("STATIC_DIR".to_owned(), "/nonexistent".to_owned()),
    ])
}

/// Which components reach the services through the fault proxies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Proxied {
    #[default]
    Nothing,
    Api,
    Workers,
    Both,
}

/// Options for [`TestApp::spawn_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra environment variables (e.g. `WORKER_PREFETCH`).
    pub vars: Vec<(&'static str, String)>,
    /// Start without a worker; start one later with [`TestApp::start_worker`].
    pub no_worker: bool,
    /// Route components through fault proxies.
    pub proxied: Proxied,
    /// SQL run on the fresh database before it is migrated: an existing deployment's schema
    /// and rows.
    pub seed: Option<String>,
}

impl TestApp {
    /// A migrated database, the API and a worker.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// A migrated database and the API, no worker: tasks stay as the test arranges them (start
    /// one later with [`TestApp::start_worker`]).
    pub async fn spawn_without_worker() -> Self {
        Self::spawn_with(Options {
            no_worker: true,
            ..Options::default()
        })
        .await
    }

    pub async fn spawn_with(options: Options) -> Self {
        init_logging();
        let base = services::services().await;
        let suffix = TaskId::new().to_string().replace('-', "")[20..].to_owned();
        let mut vars = unique_vars(base, &suffix);
        vars.extend(options.vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let direct = Settings::from_vars(&vars).expect("test settings are valid");
        let proxies = match options.proxied {
            Proxied::Nothing => None,
            _ => Some(Proxies::start(base).await),
        };
        let mut proxied_vars = vars.clone();
        if let Some(proxies) = &proxies {
            proxies.route(&mut proxied_vars);
        }
        let proxied = Settings::from_vars(&proxied_vars).expect("test settings are valid");
        let (settings, worker_settings, worker_vars) = match options.proxied {
            Proxied::Nothing => (direct.clone(), direct.clone(), vars),
            Proxied::Api => (proxied, direct.clone(), vars),
            Proxied::Workers => (direct.clone(), proxied, proxied_vars),
            Proxied::Both => (proxied.clone(), proxied, proxied_vars),
        };
        let database = format!("tf_test_{suffix}");

        let admin = MySqlPool::connect(&base.mysql)
            .await
            .expect("connecting to the test MySQL server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
            .execute(&admin)
            .await
            .expect("creating the test database");
        admin.close().await;
        let pool = taskflow_core::db::connect(&direct.db)
            .await
            .expect("connecting to the test database");
        if let Some(seed) = &options.seed {
            sqlx::raw_sql(sqlx::AssertSqlSafe(seed.clone()))
                .execute(&pool)
                .await
                .expect("seeding the test database");
        }
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
            worker_settings,
            worker_vars,
            direct: direct.clone(),
            proxies,
            address,
            pool,
            http: reqwest::Client::new(),
            database,
            admin_url: base.mysql.clone(),
            api,
            worker: None,
            worker_metrics: None,
        };
        if !options.no_worker {
            app.start_worker().await;
        }
        app
    }

    /// Starts the worker (after [`Options::no_worker`], or after [`TestApp::stop_worker`]).
    pub async fn start_worker(&mut self) {
        assert!(self.worker.is_none(), "a worker is already running");
        let worker = taskflow_worker::Worker::build(&self.worker_settings)
            .await
            .expect("building the worker");
        self.worker_metrics = Some(worker.metrics_addr());
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

    /// Starts a worker in a process of its own (the real worker `main`, at `binary`), so a test
    /// can kill it.
    pub fn spawn_worker_process(&self, binary: &str) -> WorkerProcess {
        self.spawn_named_worker_process(binary, "worker-process")
    }

    /// A worker process that records `name` with its attempts.
    pub fn spawn_named_worker_process(&self, binary: &str, name: &str) -> WorkerProcess {
        WorkerProcess::spawn(binary, &self.worker_vars, name)
    }

    /// A worker process whose clock is `behind` this machine's.
    pub fn spawn_worker_process_with_clock_behind(
        &self,
        binary: &str,
        behind: Duration,
    ) -> WorkerProcess {
        WorkerProcess::spawn_with_clock_behind(binary, &self.worker_vars, "behind", behind)
    }

    /// Another API replica on the same database, broker and channel; stopped when dropped.
    pub async fn spawn_replica(&self) -> Replica {
        let api = taskflow_api::Api::build(&self.settings)
            .await
            .expect("building an API replica");
        let address = api.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(api.run(async move {
            let _ = stopped.await;
        }));
        Replica {
            address,
            _stop: stop,
        }
    }

    /// Stops the API gracefully and starts a new one on the same settings (on a new port).
    pub async fn restart_api(&mut self) {
        self.stop_api().await.expect("the API stops cleanly");
        let api = taskflow_api::Api::build(&self.settings)
            .await
            .expect("building the API again");
        self.address = api.local_addr();
        let (stop, stopped) = Running::stop_signal();
        self.api = Running {
            stop: Some(stop),
            task: tokio::spawn(api.run(stopped)),
        };
    }

    /// Signals the API to stop, without waiting (see [`TestApp::stop_api`]).
    pub fn begin_api_shutdown(&mut self) {
        if let Some(stop) = self.api.stop.take() {
            let _ = stop.send(());
        }
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

    /// A connection and a channel of the test's own, straight to RabbitMQ.
    async fn amqp_channel(&self) -> (lapin::Connection, lapin::Channel) {
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
pub async fn poll_until(timeout: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let polled = tokio::time::timeout(timeout, async {
        let mut interval = tokio::time::interval(Duration::from_millis(25));
        loop {
            interval.tick().await;
            if condition().await {
                return;
            }
        }
    });
    polled.await.is_ok()
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
        // The components stop on the test's runtime, which keeps running while this thread
        // waits; the clean-up starts once they are done (or after a bound), so none of them
        // re-creates what is being removed.
        let mut components = vec![std::mem::replace(
            &mut self.api.task,
            tokio::spawn(async { Ok(()) }),
        )];
        components.extend(self.worker.take().map(|worker| worker.task));
        let database = self.database.clone();
        let admin_url = self.admin_url.clone();
        let amqp = self.direct.amqp.clone();
        let max_attempts = self.worker_settings.retry.max_attempts;
        let cleanup = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while components.iter().any(|task| !task.is_finished())
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
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
                // The work queue, its retry and parking queues and the dead-letter queue. A fresh channel
                // each: deleting a queue that was never declared may close the channel.
                let mut queues = vec![
                    amqp.queue.clone(),
                    amqp.dead_letter_queue.clone(),
                    format!("{}.parked", amqp.queue),
                ];
                queues.extend((1..=max_attempts).map(|n| format!("{}.retry.{n}", amqp.queue)));
                for queue in queues {
                    let channel = connection.create_channel().await?;
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let channel = connection.create_channel().await?;
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
        // On a multi-threaded runtime, hand this worker thread's queued tasks to the others while
        // waiting, so the stopping components are not stuck behind it.
        let multi_threaded = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let joined = if multi_threaded {
            tokio::task::block_in_place(|| cleanup.join())
        } else {
            cleanup.join()
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("test clean-up failed: {err:#}"),
            Err(_) => eprintln!("test clean-up panicked"),
        }
    }
}

/// Migrates a database of its own that holds `seed` first, and returns what the migration said
/// and the tables it left; the database is dropped afterwards. For migrations that must fail.
pub async fn migrate_seeded_database(seed: &str) -> (anyhow::Result<Vec<String>>, Vec<String>) {
    init_logging();
    let base = services::services().await;
    let suffix = TaskId::new().to_string().replace('-', "")[20..].to_owned();
    let database = format!("tf_test_{suffix}");
    let admin = MySqlPool::connect(&base.mysql)
        .await
        .expect("connecting to the test MySQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
        .execute(&admin)
        .await
        .expect("creating the test database");
    let pool = MySqlPool::connect(&taskflow_provision::db_url(&base.mysql, &database))
        .await
        .expect("connecting to the test database");
    sqlx::raw_sql(sqlx::AssertSqlSafe(seed.to_owned()))
        .execute(&pool)
        .await
        .expect("seeding the test database");
    let result = taskflow_core::db::migrate(&pool).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
    )
    .fetch_all(&pool)
    .await
    .expect("listing the tables");
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{database}`")))
        .execute(&admin)
        .await
        .expect("dropping the test database");
    admin.close().await;
    (result, tables)
}

/// Logs from the components, for a failing test's output (`RUST_LOG` to change the level).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
