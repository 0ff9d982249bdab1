//! Configuration from environment variables, with the original design's names and meanings.
//!
//! Every value has a default that points at localhost, so `cargo xtask up` needs no setup on a
//! machine with the three services running. A value that cannot be parsed is an error that
//! names the variable, never a silent fallback.

use std::collections::HashMap;
use std::time::Duration;

use crate::backoff::Backoff;

mod env;
mod span;

use env::Env;
pub use span::parse_span;

/// Everything the API and the worker read at start-up. Each process uses its part.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api: ApiSettings,
    pub db: DbSettings,
    pub amqp: AmqpSettings,
    pub redis: RedisSettings,
    pub worker: WorkerSettings,
    pub retry: RetrySettings,
    pub recovery: RecoverySettings,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `API_PORT`: where the HTTP server listens (0 picks a free port).
    pub port: u16,
    /// `API_HOST`: the address to bind.
    pub host: String,
    /// `CORS_ALLOW_ORIGINS`: `*` or a comma-separated list of origins.
    pub cors_allow_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `WS_CLIENT_BUFFER`: how many events a WebSocket client may fall behind before it is told
    /// to resynchronise instead of holding more memory.
    pub ws_client_buffer: usize,
    /// `PUBLISH_TIMEOUT_MS`: how long the publish after a commit (of `POST /tasks`, in the
    /// background, or of the relay) waits for the broker's confirm before leaving the message to
    /// the outbox relay; a stopping API waits this long (+ 2 s) for the publishes under way. The
    /// worker's retries and dead letters wait as long for theirs.
    pub publish_timeout: Duration,
    /// `SHUTDOWN_DELAY_MS`: on SIGTERM, how long `/healthz` reports draining before the listener
    /// closes, so a load balancer stops sending requests first.
    pub shutdown_delay: Duration,
    /// `SHUTDOWN_TIMEOUT_SECONDS`: how long in-flight requests get to finish.
    pub shutdown_timeout: Duration,
    /// `WS_MAX_CLIENTS`: WebSocket connections one API process accepts; more get 503.
    pub ws_max_clients: usize,
    /// `WS_PING_INTERVAL_SECONDS`: how often the server pings each WebSocket client.
    pub ws_ping_interval: Duration,
    /// `WS_IDLE_TIMEOUT_SECONDS`: a client that sends nothing (not even a pong) for this long is
    /// disconnected.
    pub ws_idle_timeout: Duration,
    /// `API_TOKEN`: when set, writes need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `API_TOKEN_READS`: when true (and a token is set), reads and the WebSocket need it too.
    pub token_for_reads: bool,
    /// `STATIC_DIR`: the built dashboard to serve at `/`, if the folder exists.
    pub static_dir: String,
    /// `MAX_DELAY`: how far ahead a task's `run_at` may be.
    pub max_delay: Duration,
}

#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `DB_URL`: `mysql://user:pass@host:port/db`; the Python deployment's
    /// `mysql+asyncmy://` form is accepted too.
    pub url: String,
    /// `DB_MAX_CONNECTIONS`: the connection pool's size.
    pub max_connections: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`: how long a query waits for a connection before failing (and, in
    /// the worker, being retried later).
    pub acquire_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: the server aborts a statement that runs longer (0: never).
    pub statement_timeout: Duration,
    pub connect: ConnectRetry,
}

#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// `RABBITMQ_URL`.
    pub url: String,
    /// `TASK_EXCHANGE`: the durable topic exchange tasks are published to.
    pub exchange: String,
    /// `TASK_QUEUE`: the durable queue the worker consumes.
    pub queue: String,
    /// `TASK_ROUTING_KEY`: the routing key of new tasks and the queue's binding.
    pub routing_key: String,
    /// `TASK_DEAD_LETTER_QUEUE`: where poison messages and exhausted tasks are kept.
    pub dead_letter_queue: String,
    /// `TASK_QUEUE_TYPE`: `classic` (the default: declared without arguments, as the Python
    /// worker does) or `quorum` (replicated; every process must then declare it so).
    pub queue_type: QueueType,
    pub connect: ConnectRetry,
}

/// The kind of RabbitMQ queue the work queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    Quorum,
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            other => Err(format!("`{other}` is not a queue type (classic or quorum)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`.
    pub url: String,
    /// `STATUS_CHANNEL`: the Pub/Sub channel status changes are published on.
    pub channel: String,
    /// `REDIS_KEEPALIVE_MS`: how often the API pings its subscribed connection; one that does
    /// not answer within this time is replaced (a half-open connection delivers nothing and
    /// never errors).
    pub keepalive: Duration,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `WORKER_PREFETCH`: unacked deliveries a worker holds, and so processes at once.
    pub prefetch: u16,
    /// `SHUTDOWN_TIMEOUT_SECONDS`: on SIGTERM, how long tasks in progress get to finish.
    pub shutdown_timeout: Duration,
    /// `WORKER_NAME`: recorded with each attempt; defaults to the host name and process id.
    pub name: String,
    /// `WORKER_METRICS_PORT`: where the worker serves `/metrics` and `/livez` (0 picks a free
    /// port).
    pub metrics_port: u16,
    /// `WORKER_MAX_REQUEUES`: how many times in a row a worker puts a delivery back for
    /// immediate redelivery before it parks it in `<TASK_QUEUE>.parked` with the reason.
    pub max_requeues: u32,
    /// `TASK_RETENTION`: DONE and FAILED tasks finished longer ago are pruned; unset, kept
    /// forever.
    pub retention: Option<Duration>,
}

/// Retries of transient failures (a dependency unreachable, a timeout): exponential backoff with
/// jitter, delays kept by RabbitMQ, never by a sleeping consumer.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    /// `RETRY_MAX_ATTEMPTS`: attempts before the task is FAILED and dead-lettered.
    pub max_attempts: u32,
    /// `RETRY_BASE_DELAY_MS`: the delay before the second attempt.
    pub base_delay: Duration,
    /// `RETRY_FACTOR`: each further delay is this many times the previous.
    pub factor: f64,
    /// `RETRY_MAX_DELAY_MS`: the cap.
    pub max_delay: Duration,
}

impl RetrySettings {
    /// The delays between attempts: after attempt `n` fails, `backoff().jittered(n, …)`.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.base_delay,
            factor: self.factor,
            cap: self.max_delay,
        }
    }
}

/// Sweeps that find what the fast paths missed.
#[derive(Debug, Clone, Copy)]
pub struct RecoverySettings {
    /// `OUTBOX_SWEEP_INTERVAL_MS`: how often the relay looks for unpublished tasks.
    pub sweep_interval: Duration,
    /// `OUTBOX_GRACE_MS`: how long after its commit a task still due for dispatch is taken by the
    /// relay; the fast path (or the worker starting the task) normally clears it well before.
    pub outbox_grace: Duration,
    /// `TASK_LEASE_SECONDS`: a task PENDING or PROCESSING without change for this long is
    /// dispatched again (its message was lost, e.g. by a broker without persistence).
    pub task_lease: Duration,
}

/// How often and how patiently to try a first connection at start-up
/// (`*_CONNECT_ATTEMPTS`, `*_CONNECT_BACKOFF` in seconds).
#[derive(Debug, Clone, Copy)]
pub struct ConnectRetry {
    pub attempts: u32,
    pub backoff: Duration,
}

impl ConnectRetry {
    /// The waits between attempts: the backoff doubled each time, at most 30 s.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.backoff,
            factor: 2.0,
            cap: Duration::from_secs(30),
        }
    }
}

/// The longest any duration setting may be: far past any sensible value, and far from overflowing
/// the timestamps and clocks it is added to.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The largest request body: a MEDIUMTEXT column's capacity.
const MAX_BODY_BYTES: usize = (1 << 24) - 1;
/// The longest worker name the attempt records hold.
const MAX_WORKER_NAME: usize = 64;

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables; anything missing takes its default.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env(vars);
        Ok(Self {
            api: ApiSettings {
                port: env.parse("API_PORT", 8000)?,
                host: env.string("API_HOST", "0.0.0.0"),
                cors_allow_origins: env.origins("CORS_ALLOW_ORIGINS")?,
                max_body_bytes: env.body_limit("MAX_BODY_BYTES", 1024 * 1024)?,
                ws_client_buffer: env.positive("WS_CLIENT_BUFFER", 1024)?,
                publish_timeout: env.positive_millis("PUBLISH_TIMEOUT_MS", 5_000)?,
                shutdown_delay: env.millis("SHUTDOWN_DELAY_MS", 0)?,
                shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECONDS", 30)?,
                ws_max_clients: env.positive("WS_MAX_CLIENTS", 10_000)?,
                ws_ping_interval: env.positive_seconds("WS_PING_INTERVAL_SECONDS", 30)?,
                ws_idle_timeout: env.seconds("WS_IDLE_TIMEOUT_SECONDS", 90)?,
                token: Some(env.string("API_TOKEN", "")).filter(|token| !token.is_empty()),
                token_for_reads: env.parse("API_TOKEN_READS", false)?,
                static_dir: env.string("STATIC_DIR", "frontend/dist"),
                max_delay: env
                    .span("MAX_DELAY")?
                    .unwrap_or(Duration::from_secs(30 * 24 * 3600)),
            },
            db: DbSettings {
                url: normalize_db_url(&env.string(
                    "DB_URL",
                    "mysql://taskflow:taskflow@127.0.0.1:3306/taskflow",
                ))
                .and_then(|url| {
                    url::Url::parse(&url).map_err(|err| format!("not a URL: {err}"))?;
                    Ok(url)
                })
                .map_err(|reason| env.invalid("DB_URL", reason))?,
                max_connections: env.positive("DB_MAX_CONNECTIONS", 16)?,
                acquire_timeout: env.positive_millis("DB_ACQUIRE_TIMEOUT_MS", 5_000)?,
                statement_timeout: env.millis("DB_STATEMENT_TIMEOUT_MS", 30_000)?,
                connect: env.connect_retry("DB_CONNECT_ATTEMPTS", "DB_CONNECT_BACKOFF")?,
            },
            amqp: AmqpSettings {
                url: env.url(
                    "RABBITMQ_URL",
                    "amqp://guest:guest@127.0.0.1:5672/%2f",
                    &["amqp", "amqps"],
                )?,
                exchange: env.string("TASK_EXCHANGE", "task.topic"),
                queue: env.string("TASK_QUEUE", "task.created"),
                routing_key: env.string("TASK_ROUTING_KEY", "task.created"),
                dead_letter_queue: env.string("TASK_DEAD_LETTER_QUEUE", "task.dead-letter"),
                queue_type: env.parse("TASK_QUEUE_TYPE", QueueType::Classic)?,
                connect: env
                    .connect_retry("RABBITMQ_CONNECT_ATTEMPTS", "RABBITMQ_CONNECT_BACKOFF")?,
            },
            redis: RedisSettings {
                url: env.url(
                    "REDIS_URL",
                    "redis://127.0.0.1:6379/0",
                    &["redis", "rediss", "unix", "redis+unix"],
                )?,
                channel: env.string("STATUS_CHANNEL", "task.status"),
                keepalive: env.positive_millis("REDIS_KEEPALIVE_MS", 5_000)?,
            },
            worker: WorkerSettings {
                prefetch: env.positive("WORKER_PREFETCH", 8)?,
                shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECONDS", 30)?,
                name: env.worker_name("WORKER_NAME")?,
                metrics_port: env.parse("WORKER_METRICS_PORT", 9100)?,
                max_requeues: env.positive("WORKER_MAX_REQUEUES", 20)?,
                retention: env.span("TASK_RETENTION")?,
            },
            retry: RetrySettings {
                max_attempts: env.positive("RETRY_MAX_ATTEMPTS", 5)?,
                base_delay: env.positive_millis("RETRY_BASE_DELAY_MS", 1_000)?,
                factor: env.retry_factor("RETRY_FACTOR", 2.0)?,
                max_delay: env.positive_millis("RETRY_MAX_DELAY_MS", 60_000)?,
            },
            recovery: RecoverySettings {
                sweep_interval: env.positive_millis("OUTBOX_SWEEP_INTERVAL_MS", 1_000)?,
                outbox_grace: env.millis("OUTBOX_GRACE_MS", 5_000)?,
                task_lease: env.positive_seconds("TASK_LEASE_SECONDS", 300)?,
            },
        })
    }
}

/// Turns the SQLAlchemy-style URLs of the Python deployment (`mysql+asyncmy://`,
/// `mysql+aiomysql://`, …) into the plain `mysql://` form, and refuses anything else.
pub fn normalize_db_url(raw: &str) -> Result<String, String> {
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| "expected mysql://user:pass@host:port/database".to_owned())?;
    let base = scheme.split('+').next().unwrap_or(scheme);
    if base != "mysql" && base != "mariadb" {
        return Err(format!("unsupported scheme `{scheme}` (expected mysql://)"));
    }
    Ok(format!("mysql://{rest}"))
}

fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    // Kept within what the attempt records hold, however long the host name.
    format!("{host}-{}", std::process::id())
        .chars()
        .rev()
        .take(MAX_WORKER_NAME)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// A variable's value as an error may show it: tokens hidden, passwords in URLs masked.
fn masked(name: &str, value: &str) -> String {
    match name {
        "API_TOKEN" => "***".to_owned(),
        "DB_URL" | "RABBITMQ_URL" | "REDIS_URL" => mask_password(value),
        _ => value.to_owned(),
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`. Textual, so it also masks a URL
/// too broken to parse; the last `@` ends the user part, as a password may hold `@` or `/`.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
