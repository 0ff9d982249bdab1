//! Where the test servers come from: the URLs in the environment when they are given, otherwise
//! containers started with testcontainers (on a machine with a Docker engine).
//!
//! `TEST_DB_URL` (a MySQL URL whose user may create databases; the database part is ignored),
//! `TEST_RABBITMQ_URL` and `TEST_REDIS_URL` are read first, then `DB_URL`, `RABBITMQ_URL` and
//! `REDIS_URL`. Each service missing from the environment is started in a container, once per
//! test process, labelled `taskflow-test` so `cargo xtask test` can remove them afterwards.

use anyhow::Context as _;
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

/// The servers for this test process, found or started on first use.
pub async fn services() -> &'static Services {
    SERVICES
        .get_or_init(|| async {
            // Containers are started from a runtime of their own that outlives every test, so
            // their handles stay usable whichever test's runtime asked first.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Runtime::new().expect("a runtime for containers");
                let services = runtime.block_on(locate());
                // Keep the runtime (and the containers it drives) for the whole process.
                std::mem::forget(runtime);
                services
            })
            .join()
            .expect("locating test services")
            .unwrap_or_else(|err| panic!("{err:#}"))
        })
        .await
}

fn from_env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    })
}

async fn locate() -> anyhow::Result<Services> {
    let mysql = match from_env(&["TEST_DB_URL", "DB_URL"]) {
        Some(url) => {
            server_url(&taskflow_core::config::normalize_db_url(&url).map_err(anyhow::Error::msg)?)?
        }
        None => keep(start_mysql().await?),
    };
    let rabbitmq = match from_env(&["TEST_RABBITMQ_URL", "RABBITMQ_URL"]) {
        Some(url) => url,
        None => keep(start_rabbitmq().await?),
    };
    let redis = match from_env(&["TEST_REDIS_URL", "REDIS_URL"]) {
        Some(url) => url,
        None => keep(start_redis().await?),
    };
    Ok(Services {
        mysql,
        rabbitmq,
        redis,
    })
}

/// `mysql://user:pass@host:port/db?x` → `mysql://user:pass@host:port`.
fn server_url(url: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("parsing the MySQL URL")?;
    parsed.set_path("");
    parsed.set_query(None);
    Ok(parsed.to_string().trim_end_matches('/').to_owned())
}

const NO_SERVICES: &str = "The integration tests need MySQL, RabbitMQ and Redis. Either set \
TEST_DB_URL (e.g. mysql://taskflow:taskflow@127.0.0.1:3306), TEST_RABBITMQ_URL \
(amqp://guest:guest@127.0.0.1:5672/%2f) and TEST_REDIS_URL (redis://127.0.0.1:6379) to running \
servers, or make a Docker engine reachable so the harness can start them with testcontainers";

/// Leaks the container handle: the container lives until the test process ends, and
/// `cargo xtask test` removes everything labelled `taskflow-test` afterwards.
fn keep<I: testcontainers::Image>((url, container): (String, ContainerAsync<I>)) -> String {
    std::mem::forget(container);
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
