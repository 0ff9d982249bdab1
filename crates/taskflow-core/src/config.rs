//! Configuration from environment variables, with the original design's names and meanings.
//!
//! Every value has a default that points at localhost, so `cargo xtask up` needs no setup on a
//! machine with the three services running. A value that cannot be parsed is an error that
//! names the variable, never a silent fallback.

use std::collections::HashMap;
use std::time::Duration;

use crate::backoff::Backoff;

mod span;
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

struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn string(&self, name: &'static str, default: &str) -> String {
        match self.0.get(name) {
            Some(value) if !value.trim().is_empty() => value.trim().to_owned(),
            _ => default.to_owned(),
        }
    }

    fn parse<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(name).map(|value| value.trim()) {
            Some(value) if !value.is_empty() => value
                .parse()
                .map_err(|err: T::Err| self.invalid(name, err.to_string())),
            _ => Ok(default),
        }
    }

    fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + Default,
        T::Err: std::fmt::Display,
    {
        let value = self.parse(name, default)?;
        if value <= T::default() {
            return Err(self.invalid(name, "must be greater than 0".to_owned()));
        }
        Ok(value)
    }

    /// A span such as `30d` (see [`parse_span`]), or `None` when unset.
    fn span(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        match self.0.get(name).map(|value| value.trim()) {
            Some(value) if !value.is_empty() => parse_span(value)
                .map(Some)
                .map_err(|reason| self.invalid(name, reason)),
            _ => Ok(None),
        }
    }

    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let value = self.parse(name, default).map(Duration::from_millis)?;
        self.at_most_max(name, value)
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let value = self.parse(name, default).map(Duration::from_secs)?;
        self.at_most_max(name, value)
    }

    /// A duration that must not be zero: an interval (a zero period panics a timer), a timeout
    /// (every call would fail at once), a delay or a lease.
    fn positive_millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.nonzero(name, self.millis(name, default)?)
    }

    fn positive_seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.nonzero(name, self.seconds(name, default)?)
    }

    fn nonzero(&self, name: &'static str, value: Duration) -> Result<Duration, ConfigError> {
        if value.is_zero() {
            return Err(self.invalid(name, "must be greater than 0".to_owned()));
        }
        Ok(value)
    }

    /// A finite number above zero: any other factor makes delays negative (a panic) or
    /// meaningless.
    fn retry_factor(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        let factor: f64 = self.parse(name, default)?;
        if !factor.is_finite() || factor <= 0.0 {
            return Err(self.invalid(name, "must be a finite number greater than 0".to_owned()));
        }
        Ok(factor)
    }

    /// A body limit above zero and within what the `message` column holds (MEDIUMTEXT), so
    /// whatever is accepted can be stored.
    fn body_limit(&self, name: &'static str, default: usize) -> Result<usize, ConfigError> {
        let limit = self.positive(name, default)?;
        if limit > MAX_BODY_BYTES {
            return Err(self.invalid(
                name,
                format!("must be at most {MAX_BODY_BYTES} (what a task's message column holds)"),
            ));
        }
        Ok(limit)
    }

    /// The worker's name is recorded with each attempt, in a `VARCHAR(64)`.
    fn worker_name(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.string(name, &default_worker_name());
        if value.chars().count() > MAX_WORKER_NAME {
            return Err(self.invalid(
                name,
                format!("must be at most {MAX_WORKER_NAME} characters"),
            ));
        }
        Ok(value)
    }

    /// Refuses a duration past [`MAX_DURATION`]: it would overflow the clocks it is added to.
    fn at_most_max(&self, name: &'static str, value: Duration) -> Result<Duration, ConfigError> {
        if value > MAX_DURATION {
            return Err(self.invalid(name, "must be at most 30 days".to_owned()));
        }
        Ok(value)
    }

    fn connect_retry(
        &self,
        attempts: &'static str,
        backoff: &'static str,
    ) -> Result<ConnectRetry, ConfigError> {
        let seconds: f64 = self.parse(backoff, 2.0)?;
        let backoff_duration = Duration::try_from_secs_f64(seconds)
            .map_err(|_| self.invalid(backoff, "must be a number of seconds >= 0".to_owned()))?;
        Ok(ConnectRetry {
            attempts: self.positive(attempts, 10)?,
            backoff: backoff_duration,
        })
    }

    /// `*` or a comma-separated list of origins (`scheme://host[:port]`); one that is not an
    /// origin is an error, not silently dropped (it would refuse the dashboard it was meant for).
    fn origins(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        let origins: Vec<String> = self
            .string(name, "*")
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        for origin in &origins {
            if origin == "*" {
                continue;
            }
            let parsed = url::Url::parse(origin)
                .map_err(|err| self.invalid(name, format!("`{origin}` is not an origin: {err}")))?;
            let serialized = parsed.origin().ascii_serialization();
            if !serialized.eq_ignore_ascii_case(origin) {
                return Err(self.invalid(
                    name,
                    format!("`{origin}` is not an origin (expected scheme://host[:port], e.g. `{serialized}`)"),
                ));
            }
        }
        Ok(origins)
    }

    /// A URL with one of `schemes`, checked here so a typo is reported with the variable's name
    /// (and its password masked) instead of surfacing later as a connection error.
    fn url(
        &self,
        name: &'static str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.string(name, default);
        let parsed = url::Url::parse(&value)
            .map_err(|err| self.invalid(name, format!("not a URL: {err}")))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(self.invalid(
                name,
                format!(
                    "unsupported scheme `{}` (expected {})",
                    parsed.scheme(),
                    schemes.join(", ")
                ),
            ));
        }
        Ok(value)
    }

    fn invalid(&self, name: &'static str, reason: String) -> ConfigError {
        ConfigError {
            variable: name,
            value: masked(
                name,
                self.0.get(name).map(String::as_str).unwrap_or_default(),
            ),
            reason,
        }
    }
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
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_point_at_localhost_with_the_spec_names() {
        let settings = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(settings.api.port, 8000);
        assert_eq!(settings.amqp.exchange, "task.topic");
        assert_eq!(settings.amqp.queue, "task.created");
        assert_eq!(settings.redis.channel, "task.status");
        assert_eq!(settings.worker.prefetch, 8);
        assert_eq!(settings.db.connect.attempts, 10);
        assert_eq!(settings.db.connect.backoff, Duration::from_secs(2));
        assert_eq!(settings.api.cors_allow_origins, vec!["*"]);
    }

    #[test]
    fn the_python_deployment_db_url_is_accepted() {
        let settings = Settings::from_vars(&vars(&[(
            "DB_URL",
            "mysql+asyncmy://user:pass@mysql:3306/taskflow",
        )]))
        .unwrap();
        assert_eq!(settings.db.url, "mysql://user:pass@mysql:3306/taskflow");
    }

    #[test]
    fn a_duration_past_thirty_days_is_refused() {
        let err =
            Settings::from_vars(&vars(&[("OUTBOX_GRACE_MS", "18446744073709551615")])).unwrap_err();
        assert_eq!(err.variable, "OUTBOX_GRACE_MS");
        assert!(err.reason.contains("30 days"), "{err}");
        let month = (30 * 24 * 3600 * 1000_u64).to_string();
        Settings::from_vars(&vars(&[("OUTBOX_GRACE_MS", &month)])).unwrap();
    }

    #[test]
    fn max_delay_defaults_to_thirty_days_and_retention_to_forever() {
        let settings = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!(settings.api.max_delay, Duration::from_secs(30 * 86_400));
        assert_eq!(settings.worker.retention, None);
        let settings =
            Settings::from_vars(&vars(&[("MAX_DELAY", "2h"), ("TASK_RETENTION", "12h")])).unwrap();
        assert_eq!(settings.api.max_delay, Duration::from_secs(7200));
        assert_eq!(
            settings.worker.retention,
            Some(Duration::from_secs(12 * 3600))
        );
    }

    #[test]
    fn a_bad_max_delay_or_task_retention_is_refused_with_its_name() {
        for (name, value) in [
            ("MAX_DELAY", "30"),
            ("TASK_RETENTION", "0d"),
            ("TASK_RETENTION", "a week"),
        ] {
            let err = Settings::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{value}: {err}");
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Settings::from_vars(&vars(&[("WORKER_PREFETCH", "eight")])).unwrap_err();
        assert_eq!(err.variable, "WORKER_PREFETCH");
        let err = Settings::from_vars(&vars(&[("WORKER_PREFETCH", "0")])).unwrap_err();
        assert_eq!(err.variable, "WORKER_PREFETCH");
        let err = Settings::from_vars(&vars(&[("DB_URL", "postgres://x/y")])).unwrap_err();
        assert_eq!(err.variable, "DB_URL");
        let err = Settings::from_vars(&vars(&[("DB_CONNECT_BACKOFF", "-1")])).unwrap_err();
        assert_eq!(err.variable, "DB_CONNECT_BACKOFF");
    }

    #[test]
    fn a_bad_service_url_is_reported_with_its_password_masked() {
        for (name, value) in [
            ("DB_URL", "postgres://app:hunter2@db:5432/x"),
            ("DB_URL", "mysql://app:hun@ter2@db:port/x"),
            ("RABBITMQ_URL", "amqp://app:hunter2@rabbit:notaport/%2f"),
            ("RABBITMQ_URL", "http://app:hunter2@rabbit/"),
            ("REDIS_URL", "redis://:hunter2@[::1"),
            ("REDIS_URL", "tcp://:hunter2@cache:6379"),
        ] {
            let err = Settings::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name);
            let shown = err.to_string();
            assert!(
                !shown.contains("hunter2") && !shown.contains("ter2"),
                "{shown}"
            );
            assert!(shown.contains(":***@"), "{shown}");
        }
    }

    #[test]
    fn a_retry_factor_that_is_not_a_positive_number_is_refused() {
        for factor in ["0", "-1", "NaN", "inf", "-inf"] {
            let err = Settings::from_vars(&vars(&[("RETRY_FACTOR", factor)])).unwrap_err();
            assert_eq!(err.variable, "RETRY_FACTOR", "{factor}: {err}");
        }
        Settings::from_vars(&vars(&[("RETRY_FACTOR", "1.5")])).unwrap();
    }

    #[test]
    fn knobs_that_would_stall_or_panic_a_process_are_refused_with_their_name() {
        for (variable, value) in [
            ("WS_PING_INTERVAL_SECONDS", "0"),
            ("OUTBOX_SWEEP_INTERVAL_MS", "0"),
            ("PUBLISH_TIMEOUT_MS", "0"),
            ("DB_ACQUIRE_TIMEOUT_MS", "0"),
            ("TASK_LEASE_SECONDS", "0"),
            ("MAX_BODY_BYTES", "0"),
            ("MAX_BODY_BYTES", "17000000"),
            ("RETRY_BASE_DELAY_MS", "0"),
            ("RETRY_MAX_DELAY_MS", "0"),
            ("WORKER_NAME", &"w".repeat(65)),
            ("DB_STATEMENT_TIMEOUT_MS", "-1"),
            ("WORKER_MAX_REQUEUES", "0"),
        ] {
            let err = Settings::from_vars(&vars(&[(variable, value)]))
                .err()
                .unwrap_or_else(|| panic!("{variable}={value} was accepted"));
            assert_eq!(err.variable, variable, "{err}");
        }
    }

    #[test]
    fn an_invalid_cors_origin_is_a_startup_error() {
        for origin in [
            "dashboard.example",
            "https://dashboard.example/app",
            "https://ok.example, not an origin",
        ] {
            let err = Settings::from_vars(&vars(&[("CORS_ALLOW_ORIGINS", origin)])).unwrap_err();
            assert_eq!(err.variable, "CORS_ALLOW_ORIGINS", "{origin}");
        }
        let settings = Settings::from_vars(&vars(&[(
            "CORS_ALLOW_ORIGINS",
            "https://dashboard.example/, http://localhost:5173",
        )]))
        .unwrap();
        assert_eq!(
            settings.api.cors_allow_origins,
            ["https://dashboard.example", "http://localhost:5173"]
        );
    }
}
