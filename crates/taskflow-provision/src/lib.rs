//! Finding or starting MySQL, RabbitMQ and Redis, one chain for `cargo xtask up`, `test` and
//! `bench` and for the integration harness, tried in this order:
//!
//! 1. the URLs the caller's variables name (`TEST_*` for tests, `DB_URL`, … for `up`), when set;
//! 2. the default localhost ports, when servers answer there; where MySQL lets root in only
//!    over its socket (as Debian installs MariaDB), the account TaskFlow needs is created
//!    through that socket;
//! 3. a Docker engine, through the caller's testcontainers code;
//! 4. server binaries on `PATH` (`nix develop` or Debian's packages): throwaway instances on free
//!    ports with their data under the caller's directory;
//! 5. otherwise one error that says what to install or set.

pub mod process;
mod throwaway;

pub use throwaway::{MariaDb, binaries_available, docker_available, throwaway, throwaway_servers};

use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::process::Stack;
use crate::throwaway::which;

/// The account the chain logs in with, and creates where it can.
pub const USER: &str = "taskflow";
pub const PASSWORD: &str = "taskflow";
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The variables a caller reads its servers from.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub mysql: &'static str,
    pub rabbitmq: &'static str,
    pub redis: &'static str,
}

/// The test suites' variables: never the production names, so a staging `.env` cannot point
/// the tests (which create and drop databases) at staging.
pub const TEST_NAMES: Names = Names {
    mysql: "TEST_DB_URL",
    rabbitmq: "TEST_RABBITMQ_URL",
    redis: "TEST_REDIS_URL",
};

/// The services' own variables, for `cargo xtask up`.
pub const STACK_NAMES: Names = Names {
    mysql: "DB_URL",
    rabbitmq: "RABBITMQ_URL",
    redis: "REDIS_URL",
};

/// Where the servers are, and what was started to provide them (stopped when dropped).
pub struct Servers {
    /// `mysql://user:pass@host:port`, without a database.
    pub mysql: String,
    /// The database the configured MySQL URL names, if it names one.
    pub database: Option<String>,
    pub rabbitmq: String,
    pub redis: String,
    pub how: &'static str,
    pub started: Stack,
}

impl Servers {
    /// The MySQL URL for `database`.
    pub fn db_url(&self, database: &str) -> String {
        db_url(&self.mysql, database)
    }

    /// `DB_URL`, `RABBITMQ_URL` and `REDIS_URL` for TaskFlow's services, on `database` unless
    /// the configured URL named one.
    pub fn env(&self, default_database: &str) -> Vec<(String, String)> {
        let database = self.database.as_deref().unwrap_or(default_database);
        vec![
            ("DB_URL".to_owned(), self.db_url(database)),
            ("RABBITMQ_URL".to_owned(), self.rabbitmq.clone()),
            ("REDIS_URL".to_owned(), self.redis.clone()),
        ]
    }
}

/// Ports (and MySQL's socket) of servers run by the machine, not by us.
#[derive(Debug, Clone)]
pub struct Local {
    pub mysql_port: u16,
    /// `None`: the client's configured default socket.
    pub mysql_socket: Option<PathBuf>,
    pub rabbitmq_port: u16,
    pub redis_port: u16,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            mysql_port: 3306,
            mysql_socket: None,
            rabbitmq_port: 5672,
            redis_port: 6379,
        }
    }
}

/// Runs the whole chain. `docker` starts the three servers in containers; it is called only
/// when a Docker engine answers and nothing earlier in the chain was found.
pub fn locate(
    names: Names,
    data_dir: &Path,
    docker: impl FnOnce() -> anyhow::Result<Servers>,
) -> anyhow::Result<Servers> {
    if let Some(servers) = configured(names, |name| std::env::var(name).ok())? {
        return Ok(servers);
    }
    if let Some(servers) = localhost(&Local::default())? {
        return Ok(servers);
    }
    if docker_available() {
        return docker();
    }
    if binaries_available() {
        return throwaway(data_dir);
    }
    anyhow::bail!(
        "MySQL, RabbitMQ and Redis are needed and none could be found or started. Either:\n\
         1. run them on their default localhost ports (3306, 5672, 6379), e.g. \
         `apt-get install mariadb-server rabbitmq-server redis-server`;\n\
         2. or set {}, {} and {} to running servers;\n\
         3. or make a Docker engine reachable, and they are started in containers;\n\
         4. or put mariadbd, mariadb-install-db, mariadb, rabbitmq-server and redis-server on \
         PATH (`nix develop`), and throwaway instances are started under {}.",
        names.mysql,
        names.rabbitmq,
        names.redis,
        data_dir.display()
    )
}

/// The servers `names` point at, when any of them is set (the others take their localhost
/// defaults). A URL that is set but does not answer is an error, not a reason to look elsewhere.
pub fn configured(
    names: Names,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Servers>> {
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    if [names.mysql, names.rabbitmq, names.redis]
        .iter()
        .all(|name| var(name).is_none())
    {
        return Ok(None);
    }
    let local = Local::default();
    let mysql = var(names.mysql).unwrap_or_else(|| local_mysql(local.mysql_port));
    let rabbitmq = var(names.rabbitmq).unwrap_or_else(|| local_rabbitmq(local.rabbitmq_port));
    let redis = var(names.redis).unwrap_or_else(|| local_redis(local.redis_port));
    for (name, url) in [
        (names.mysql, &mysql),
        (names.rabbitmq, &rabbitmq),
        (names.redis, &redis),
    ] {
        anyhow::ensure!(
            answers(url),
            "{name} ({}) does not answer: start that server, or unset {name}",
            without_password(url)
        );
    }
    let (mysql, database) = split_database(&mysql)?;
    Ok(Some(Servers {
        mysql,
        database,
        rabbitmq,
        redis,
        how: "the configured servers",
        started: Stack::default(),
    }))
}

/// The servers on `local`'s ports, when all three answer; MySQL's account is made sure of.
pub fn localhost(local: &Local) -> anyhow::Result<Option<Servers>> {
    let mysql = local_mysql(local.mysql_port);
    let rabbitmq = local_rabbitmq(local.rabbitmq_port);
    let redis = local_redis(local.redis_port);
    if ![&mysql, &rabbitmq, &redis].iter().all(|url| answers(url)) {
        return Ok(None);
    }
    ensure_account(local.mysql_port, local.mysql_socket.as_deref())?;
    Ok(Some(Servers {
        mysql,
        database: None,
        rabbitmq,
        redis,
        how: "the servers on the default localhost ports",
        started: Stack::default(),
    }))
}

fn local_mysql(port: u16) -> String {
    format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{port}")
}

fn local_rabbitmq(port: u16) -> String {
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

fn local_redis(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// The databases the account may use: TaskFlow's own (`taskflow`, the suites' and the bench's
/// `taskflow_*`) and the integration tests' `tf_test_*`, and nothing else on a shared server.
const GRANTS: &[&str] = &["`taskflow%`", "`tf\\_test\\_%`"];

/// Makes sure `taskflow`/`taskflow` can log in over TCP on `port`: sqlx cannot log in without a
/// password, and a Debian MariaDB has only a root that logs in over the socket. When the
/// account is refused, root creates it through the socket.
fn ensure_account(port: u16, socket: Option<&Path>) -> anyhow::Result<()> {
    // Without a client the login cannot be tried here; the services' own connection reports.
    let Some(client) = which("mariadb").or_else(|| which("mysql")) else {
        return Ok(());
    };
    let logs_in = || {
        Command::new(&client)
            .args(["--no-defaults", "--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--user={USER}"))
            .arg(format!("--password={PASSWORD}"))
            .args(["-e", "SELECT 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if logs_in() {
        return Ok(());
    }
    let mut sql = String::new();
    for host in ["127.0.0.1", "localhost"] {
        sql += &format!("CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}';");
        for grant in GRANTS {
            sql += &format!("GRANT ALL PRIVILEGES ON {grant}.* TO '{USER}'@'{host}';");
        }
    }
    let mut root = Command::new(&client);
    // Without a socket of its own, the client's configuration knows the server's.
    if let Some(socket) = socket {
        root.arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()));
    }
    let created = root
        .args(["--protocol=SOCKET", "--user=root", "-e", &sql])
        .stdout(Stdio::null())
        .output()
        .context("running the MySQL client")?;
    if created.status.success() && logs_in() {
        return Ok(());
    }
    anyhow::bail!(
        "MySQL on 127.0.0.1:{port} refuses {USER}/{PASSWORD}, and root could not create that \
         account over the socket ({}). Create it once as an administrator:\n  \
         sudo mysql -e \"{sql}\"\nor point the URL variable at an account that may create \
         databases.",
        String::from_utf8_lossy(&created.stderr).trim()
    )
}

/// `mysql[+driver]://user:pass@host:port/db?query` → (`mysql://user:pass@host:port?query`, db).
fn split_database(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let (scheme, rest) = url
        .split_once("://")
        .context("expected mysql://user:pass@host:port")?;
    let scheme = scheme.split('+').next().unwrap_or(scheme);
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, database) = match rest.split_once('/') {
        Some((authority, database)) => (authority, Some(database).filter(|db| !db.is_empty())),
        None => (rest, None),
    };
    let mut server = format!("{scheme}://{authority}");
    if let Some(query) = query {
        server = format!("{server}?{query}");
    }
    Ok((server, database.map(str::to_owned)))
}

/// `mysql://user:pass@host:port[?query]` → the URL of `database` there.
pub fn db_url(server: &str, database: &str) -> String {
    match server.split_once('?') {
        Some((server, query)) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

fn without_password(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, rest)), Some((_, host))) if rest.contains('@') => {
            let user = rest.split([':', '@']).next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Whether a TCP connection to the URL's host and port succeeds within a second.
pub fn answers(url: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::{db_url, host_port, split_database};

    #[test]
    fn the_database_is_split_off_a_mysql_url_and_the_query_kept() {
        assert_eq!(
            split_database("mysql+asyncmy://u:p@db:3307/app?ssl-mode=disabled").unwrap(),
            (
                "mysql://u:p@db:3307?ssl-mode=disabled".to_owned(),
                Some("app".to_owned())
            )
        );
        assert_eq!(
            split_database("mysql://u:p@db/").unwrap(),
            ("mysql://u:p@db".to_owned(), None)
        );
        assert_eq!(
            db_url("mysql://u:p@db:3307?ssl-mode=disabled", "x"),
            "mysql://u:p@db:3307/x?ssl-mode=disabled"
        );
    }

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
