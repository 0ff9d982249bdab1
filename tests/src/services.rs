//! Where the test servers come from: the provisioning chain shared with xtask
//! (`taskflow-provision`): `TEST_DB_URL` (a MySQL URL whose user may create databases; the
//! database part is ignored), `TEST_RABBITMQ_URL` and `TEST_REDIS_URL` when set; else the
//! default localhost ports; else containers started with testcontainers, removed when the test
//! process exits (and labelled `taskflow-test`, so `cargo xtask test` removes any a killed run
//! left); else throwaway servers from the binaries on `PATH`, stopped when the test process
//! exits. Never the production names (`DB_URL`, …): the suite creates and drops databases.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use taskflow_provision::process::Stack;
use testcontainers::core::IntoContainerPort as _;
use testcontainers::runners::AsyncRunner as _;
use testcontainers::{ContainerAsync, ImageExt as _};
use testcontainers_modules::{mysql::Mysql, rabbitmq::RabbitMq, redis::Redis};
use tokio::sync::OnceCell;

/// Pinned image tags: the modules' defaults are old (Redis 5).
const MYSQL_TAG: &str = "8.4";
const RABBITMQ_TAG: &str = "4.1-management";
const REDIS_TAG: &str = "7.4";
pub const CONTAINER_LABEL: &str = "taskflow-test";

/// The servers' base URLs.
#[derive(Debug, Clone)]
pub struct Services {
    /// `mysql://user:pass@host:port`, without a database.
    pub mysql: String,
    pub rabbitmq: String,
    pub redis: String,
}

static SERVICES: OnceCell<Services> = OnceCell::const_new();

/// Throwaway servers this process started and their data, removed when it exits.
static STARTED: Mutex<Option<(Stack, PathBuf)>> = Mutex::new(None);

extern "C" fn stop_started() {
    if let Ok(mut started) = STARTED.lock()
        && let Some((stack, data_dir)) = started.take()
    {
        drop(stack);
        let _ = std::fs::remove_dir_all(data_dir);
    }
}

/// The servers for this test process, found or started on first use.
pub async fn services() -> &'static Services {
    SERVICES
        .get_or_init(|| async {
            // Containers are started from a runtime of their own that outlives every test, so
            // their handles stay usable whichever test's runtime asked first.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Runtime::new().expect("a runtime for containers");
                let data_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/test-services")
                    .join(std::process::id().to_string());
                let servers =
                    taskflow_provision::locate(taskflow_provision::TEST_NAMES, &data_dir, || {
                        runtime.block_on(kept_containers())
                    });
                // Keep the runtime (and the containers it drives) for the whole process.
                std::mem::forget(runtime);
                servers.map(|servers| {
                    let services = Services {
                        mysql: servers.mysql,
                        rabbitmq: servers.rabbitmq,
                        redis: servers.redis,
                    };
                    if !servers.started.services.is_empty() {
                        *STARTED.lock().expect("the started servers") =
                            Some((servers.started, data_dir.clone()));
                        // SAFETY: registers a plain function; it runs once, at exit.
                        unsafe { libc::atexit(stop_started) };
                    }
                    services
                })
            })
            .join()
            .expect("locating test services")
            .unwrap_or_else(|err| panic!("{err:#}"))
        })
        .await
}

/// The chain's Docker step for tests: the three containers, kept until the process ends.
async fn kept_containers() -> anyhow::Result<taskflow_provision::Servers> {
    let (mysql, rabbitmq, redis) = (
        keep(start_mysql().await?),
        keep(start_rabbitmq().await?),
        keep(start_redis().await?),
    );
    Ok(taskflow_provision::Servers {
        mysql,
        database: None,
        rabbitmq,
        redis,
        how: "containers started with testcontainers",
        started: Stack::default(),
    })
}

const NO_SERVICES: &str = "a Docker engine answers, but the test containers could not be started";

/// Containers this process started: their handles, kept for the whole process (statics are
/// never dropped), and their ids, removed at exit by [`remove_containers`].
static CONTAINERS: Mutex<Vec<(String, Box<dyn std::any::Any + Send>)>> = Mutex::new(Vec::new());

/// The reaper: removes this process's containers when it exits. A handle's own drop cannot do
/// it then, as it needs the runtime that drives it, and exit handlers run outside any runtime.
extern "C" fn remove_containers() {
    let Ok(containers) = CONTAINERS.lock() else {
        return;
    };
    let ids: Vec<&str> = containers.iter().map(|(id, _)| id.as_str()).collect();
    if !ids.is_empty() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", "--volumes"])
            .args(ids)
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// Keeps the container until the process exits, when the reaper removes it.
fn keep<I: testcontainers::Image + Send + 'static>(
    (url, container): (String, ContainerAsync<I>),
) -> String {
    let mut containers = CONTAINERS.lock().expect("the started containers");
    if containers.is_empty() {
        // SAFETY: registers a plain function; it runs once, at exit.
        unsafe { libc::atexit(remove_containers) };
    }
    containers.push((container.id().to_owned(), Box::new(container)));
    url
}

/// All three in containers, with the handles that remove them when dropped (for
/// `cargo xtask up`, through the `taskflow-test-services` binary).
pub async fn start_containers() -> anyhow::Result<(Services, Vec<Box<dyn std::any::Any>>)> {
    let (mysql, mysql_container) = start_mysql().await?;
    let (rabbitmq, rabbitmq_container) = start_rabbitmq().await?;
    let (redis, redis_container) = start_redis().await?;
    Ok((
        Services {
            mysql,
            rabbitmq,
            redis,
        },
        vec![
            Box::new(mysql_container),
            Box::new(rabbitmq_container),
            Box::new(redis_container),
        ],
    ))
}

async fn start_mysql() -> anyhow::Result<(String, ContainerAsync<Mysql>)> {
    // sqlx cannot log in with an empty password, which is all the module's root has.
    let container = Mysql::default()
        .with_init_sql(
            "CREATE USER 'taskflow'@'%' IDENTIFIED BY 'taskflow'; \
             GRANT ALL PRIVILEGES ON *.* TO 'taskflow'@'%';"
                .as_bytes()
                .to_vec(),
        )
        .with_tag(MYSQL_TAG)
        .with_label(CONTAINER_LABEL, "mysql")
        .start()
        .await
        .context(NO_SERVICES)?;
    let host = container.get_host().await?;
    let port = container.get_host_port_ipv4(3306.tcp()).await?;
    Ok((
        format!("mysql://taskflow:taskflow@{host}:{port}"),
        container,
    ))
}

async fn start_rabbitmq() -> anyhow::Result<(String, ContainerAsync<RabbitMq>)> {
    let container = RabbitMq::default()
        .with_tag(RABBITMQ_TAG)
        .with_label(CONTAINER_LABEL, "rabbitmq")
        .start()
        .await
        .context(NO_SERVICES)?;
    let host = container.get_host().await?;
    let port = container.get_host_port_ipv4(5672.tcp()).await?;
    Ok((format!("amqp://guest:guest@{host}:{port}/%2f"), container))
}

async fn start_redis() -> anyhow::Result<(String, ContainerAsync<Redis>)> {
    let container = Redis::default()
        .with_tag(REDIS_TAG)
        .with_label(CONTAINER_LABEL, "redis")
        .start()
        .await
        .context(NO_SERVICES)?;
    let host = container.get_host().await?;
    let port = container.get_host_port_ipv4(6379.tcp()).await?;
    Ok((format!("redis://{host}:{port}"), container))
}
