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

mod client;
mod migrations;
mod teardown;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::MySqlPool;
use taskflow_core::config::Settings;
use taskflow_core::domain::TaskId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::client::poll_until;
pub use crate::migrations::migrate_seeded_database;
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

        create_database(&base.mysql, &database).await.close().await;
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
}

/// Creates `database` on `server`; returns the admin pool it used, for the caller to close.
async fn create_database(server: &str, database: &str) -> MySqlPool {
    let admin = MySqlPool::connect(server)
        .await
        .expect("connecting to the test MySQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{database}`")))
        .execute(&admin)
        .await
        .expect("creating the test database");
    admin
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
