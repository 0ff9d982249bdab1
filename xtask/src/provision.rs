//! Finding or starting MySQL, RabbitMQ and Redis for `cargo xtask up`, in this order:
//!
//! 1. the URLs in the environment (or `.env`), when the servers answer;
//! 2. the default localhost ports, when the servers answer;
//! 3. a Docker engine: the integration harness's own testcontainers code, run as the
//!    `taskflow-test-services` binary, starts them and keeps them for the session;
//! 4. server binaries on `PATH` (`nix develop` or Debian's packages): throwaway instances on free
//!    ports with their data under `target/stack/`;
//! 5. otherwise an error that lists the three ways to get them.

use std::io::{BufRead as _, BufReader};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::stack::{Service, Stack, free_port};

const DEFAULT_DB_URL: &str = "mysql://taskflow:taskflow@127.0.0.1:3306/taskflow";
const DEFAULT_RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Where the services are, and what was started to provide them (stopped when dropped).
pub struct Provisioned {
    pub db_url: String,
    pub rabbitmq_url: String,
    pub redis_url: String,
    pub how: &'static str,
    pub started: Stack,
}

impl Provisioned {
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DB_URL".to_owned(), self.db_url.clone()),
            ("RABBITMQ_URL".to_owned(), self.rabbitmq_url.clone()),
            ("REDIS_URL".to_owned(), self.redis_url.clone()),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Try every source in order.
    Auto,
    /// Go straight to throwaway instances from the binaries on `PATH`.
    Binaries,
}

pub fn provision(mode: Mode, data_dir: &Path) -> anyhow::Result<Provisioned> {
    if mode == Mode::Auto {
        let env_or = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let configured = ["DB_URL", "RABBITMQ_URL", "REDIS_URL"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        let db_url = env_or("DB_URL", DEFAULT_DB_URL);
        let rabbitmq_url = env_or("RABBITMQ_URL", DEFAULT_RABBITMQ_URL);
        let redis_url = env_or("REDIS_URL", DEFAULT_REDIS_URL);
        if [&db_url, &rabbitmq_url, &redis_url]
            .iter()
            .all(|url| answers(url))
        {
            return Ok(Provisioned {
                db_url,
                rabbitmq_url,
                redis_url,
                how: if configured {
                    "the configured servers"
                } else {
                    "the servers on the default localhost ports"
                },
                started: Stack::default(),
            });
        }
        if docker_available() {
            return containers();
        }
    }
    if binaries_available() {
        return throwaway(data_dir);
    }
    anyhow::bail!(
        "MySQL, RabbitMQ and Redis are needed and none could be found or started. Either:\n\
         1. run them yourself and put their URLs in .env (DB_URL, RABBITMQ_URL, REDIS_URL) or \
         on the default localhost ports;\n\
         2. make a Docker engine reachable, and `cargo xtask up` starts them in containers;\n\
         3. put mariadbd, rabbitmq-server and redis-server on PATH (`nix develop`, or \
         `apt-get install mariadb-server rabbitmq-server redis-server`), and `cargo xtask up` \
         starts throwaway instances under target/stack/."
    )
}

/// Whether a TCP connection to the URL's host and port succeeds within a second.
fn answers(url: &str) -> bool {
    let Some((host, port)) = host_port(url) else {
        return false;
    };
    let Ok(mut addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses.any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok())
}

/// `scheme://[user[:pass]@]host[:port][/...]` → host and port (the scheme's default port).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let default_port = match scheme.split('+').next()? {
        "mysql" | "mariadb" => 3306,
        "amqp" => 5672,
        "redis" => 6379,
        _ => return None,
    };
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((host_port.to_owned(), default_port)),
    }
}

fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The harness's container code, as a binary that prints the URLs and keeps the containers
/// until it is stopped.
fn containers() -> anyhow::Result<Provisioned> {
    let status = Command::new("cargo")
        .args([
            "build",
            "-p",
            "taskflow-tests",
            "--bin",
            "taskflow-test-services",
        ])
        .current_dir(crate::project_root())
        .status()
        .context("building taskflow-test-services")?;
    anyhow::ensure!(status.success(), "building taskflow-test-services failed");
    let binary = crate::binary("taskflow-test-services");
    let mut child = Command::new(&binary)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut urls = std::collections::HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the container URLs")?;
        if line == "READY" {
            break;
        }
        if let Some((name, value)) = line.split_once('=') {
            urls.insert(name.to_owned(), value.to_owned());
        }
    }
    let url = |name: &str| {
        urls.get(name)
            .cloned()
            .with_context(|| format!("taskflow-test-services printed no {name}"))
    };
    let mut started = Stack::default();
    started.adopt("containers", child);
    Ok(Provisioned {
        db_url: format!("{}/taskflow", url("TEST_DB_URL")?),
        rabbitmq_url: url("TEST_RABBITMQ_URL")?,
        redis_url: url("TEST_REDIS_URL")?,
        how: "containers started with testcontainers",
        started,
    })
}

fn binaries_available() -> bool {
    ["mariadbd", "mariadb-install-db", "mariadb", "redis-server"]
        .iter()
        .all(|name| which(name).is_some())
        && rabbitmq_server().is_some()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The real RabbitMQ start script: Debian's `/usr/sbin/rabbitmq-server` switches to the
/// `rabbitmq` user and its fixed paths, so its inner script is used when present.
fn rabbitmq_server() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if debian.is_file() {
        return Some(debian);
    }
    which("rabbitmq-server")
}

/// Throwaway MariaDB, RabbitMQ and Redis on free ports, data under `data_dir` (wiped first).
pub fn throwaway(data_dir: &Path) -> anyhow::Result<Provisioned> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    std::fs::create_dir_all(data_dir)?;
    let mut started = Stack::default();

    // Redis: no persistence.
    let redis_port = free_port()?;
    let redis_dir = data_dir.join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    started.push(Service::spawn(
        "redis",
        &which("redis-server").expect("checked above"),
        &[
            "--port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        &redis_dir,
        &[],
    )?);

    // MariaDB: a fresh data directory, a user with a password (sqlx needs one).
    let mysql_port = free_port()?;
    let mysql_dir = data_dir.join("mysql");
    let socket = mysql_dir.join("mysqld.sock");
    let run_as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0"));
    let mut install = Command::new(which("mariadb-install-db").expect("checked above"));
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", mysql_dir.join("data").display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
    if run_as_root {
        install.arg("--user=root");
    }
    let installed = install
        .stdout(Stdio::null())
        .status()
        .context("running mariadb-install-db")?;
    anyhow::ensure!(installed.success(), "mariadb-install-db failed");
    let mut mariadbd_args = vec![
        "--no-defaults".to_owned(),
        format!("--datadir={}", mysql_dir.join("data").display()),
        format!("--port={mysql_port}"),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--socket={}", socket.display()),
        "--skip-log-bin".to_owned(),
        "--innodb-buffer-pool-size=128M".to_owned(),
    ];
    if run_as_root {
        mariadbd_args.push("--user=root".to_owned());
    }
    let mariadbd_args: Vec<&str> = mariadbd_args.iter().map(String::as_str).collect();
    started.push(Service::spawn(
        "mysql",
        &which("mariadbd").expect("checked above"),
        &mariadbd_args,
        &mysql_dir,
        &[],
    )?);
    let client = which("mariadb").expect("checked above");
    let sql = |statement: &str| {
        Command::new(&client)
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["-uroot", "-e", statement])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    wait_for("MariaDB", || sql("SELECT 1"))?;
    anyhow::ensure!(
        sql("CREATE USER 'taskflow'@'%' IDENTIFIED BY 'taskflow'; \
             GRANT ALL PRIVILEGES ON *.* TO 'taskflow'@'%';"),
        "creating the taskflow user"
    );

    // RabbitMQ: a node of its own (name, ports, data, config), sharing only epmd.
    let amqp_port = free_port()?;
    let dist_port = free_port()?;
    let rabbit_dir = data_dir.join("rabbitmq");
    std::fs::create_dir_all(&rabbit_dir)?;
    std::fs::write(rabbit_dir.join("rabbitmq-env.conf"), "")?;
    std::fs::write(
        rabbit_dir.join("rabbitmq.conf"),
        format!("listeners.tcp.default = 127.0.0.1:{amqp_port}\n"),
    )?;
    std::fs::write(rabbit_dir.join("enabled_plugins"), "[].\n")?;
    let path = |name: &str| rabbit_dir.join(name).display().to_string();
    let rabbit_env = vec![
        ("HOME".to_owned(), rabbit_dir.display().to_string()),
        (
            "RABBITMQ_CONF_ENV_FILE".to_owned(),
            path("rabbitmq-env.conf"),
        ),
        ("RABBITMQ_CONFIG_FILE".to_owned(), path("rabbitmq.conf")),
        (
            "RABBITMQ_NODENAME".to_owned(),
            format!("taskflow-{amqp_port}@localhost"),
        ),
        ("RABBITMQ_DIST_PORT".to_owned(), dist_port.to_string()),
        ("RABBITMQ_MNESIA_BASE".to_owned(), path("mnesia")),
        ("RABBITMQ_LOG_BASE".to_owned(), path("log")),
        (
            "RABBITMQ_ENABLED_PLUGINS_FILE".to_owned(),
            path("enabled_plugins"),
        ),
        (
            "RABBITMQ_PLUGINS_EXPAND_DIR".to_owned(),
            path("plugins-expand"),
        ),
    ];
    started.push(Service::spawn(
        "rabbit",
        &rabbitmq_server().expect("checked above"),
        &[],
        &rabbit_dir,
        &rabbit_env,
    )?);

    let rabbitmq_url = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");
    wait_for("Redis", || answers(&redis_url))?;
    wait_for("RabbitMQ", || answers(&rabbitmq_url))?;
    started.record_pids(&data_dir.join("pids"))?;
    Ok(Provisioned {
        db_url: format!("mysql://taskflow:taskflow@127.0.0.1:{mysql_port}/taskflow"),
        rabbitmq_url,
        redis_url,
        how: "throwaway instances from the server binaries on PATH",
        started,
    })
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not start within {READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_come_from_any_service_url() {
        assert_eq!(
            host_port("mysql://u:p@db:3307/x"),
            Some(("db".to_owned(), 3307))
        );
        assert_eq!(
            host_port("mysql+asyncmy://u:p@db/x"),
            Some(("db".to_owned(), 3306))
        );
        assert_eq!(
            host_port("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Some(("127.0.0.1".to_owned(), 5672))
        );
        assert_eq!(
            host_port("redis://localhost/0"),
            Some(("localhost".to_owned(), 6379))
        );
    }
}
