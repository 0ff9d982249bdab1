//! Step 4 of the chain: throwaway MariaDB (or MySQL), RabbitMQ and Redis instances started from
//! the server binaries on `PATH`, on free ports, with their data under the caller's directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::process::{Service, Stack, free_port};
use crate::{
    Local, PASSWORD, READY_TIMEOUT, Servers, USER, answers, local_mysql, local_rabbitmq,
    local_redis,
};

pub fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether the server binaries for throwaway instances are on `PATH`.
pub fn binaries_available() -> bool {
    ["mariadbd", "mariadb-install-db", "mariadb", "redis-server"]
        .iter()
        .all(|name| which(name).is_some())
        && rabbitmq_server().is_some()
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
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
pub fn throwaway(data_dir: &Path) -> anyhow::Result<Servers> {
    let (started, local) = throwaway_servers(data_dir, MariaDb::Ready)?;
    Ok(Servers {
        mysql: local_mysql(local.mysql_port),
        database: None,
        rabbitmq: local_rabbitmq(local.rabbitmq_port),
        redis: local_redis(local.redis_port),
        how: "throwaway instances from the server binaries on PATH",
        started,
    })
}

/// How a throwaway MariaDB lets clients in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MariaDb {
    /// The chain's own instances: the account exists.
    Ready,
    /// As Debian installs it: root only over the socket, and no account for TaskFlow. What the
    /// localhost step meets on such a machine, reproduced without touching the machine's server.
    SocketRootOnly,
}

/// Throwaway servers and where they listen, data under `data_dir` (wiped first).
pub fn throwaway_servers(data_dir: &Path, mariadb: MariaDb) -> anyhow::Result<(Stack, Local)> {
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
        .arg("--skip-test-db");
    match mariadb {
        MariaDb::Ready => install.arg("--auth-root-authentication-method=normal"),
        // The socket's root is whoever runs this, so the client below gets in as root.
        MariaDb::SocketRootOnly => install
            .arg("--auth-root-authentication-method=socket")
            .arg(format!("--auth-root-socket-user={}", os_user()?)),
    };
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
    if mariadb == MariaDb::Ready {
        anyhow::ensure!(
            sql(&format!(
                "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%';"
            )),
            "creating the {USER} account"
        );
    }

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

    wait_for("Redis", || answers(&local_redis(redis_port)))?;
    wait_for("RabbitMQ", || answers(&local_rabbitmq(amqp_port)))?;
    started.record_pids(&data_dir.join("pids"))?;
    Ok((
        started,
        Local {
            mysql_port,
            mysql_socket: Some(socket),
            rabbitmq_port: amqp_port,
            redis_port,
        },
    ))
}

fn os_user() -> anyhow::Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    anyhow::ensure!(out.status.success(), "id -un failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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
