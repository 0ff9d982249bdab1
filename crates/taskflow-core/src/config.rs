//! Configuration from environment variables, with the original design's names and meanings.
//!
//! Every value has a default that points at localhost, so `cargo xtask up` needs no setup on a
//! machine with the three services running. A value that cannot be parsed is an error that
//! names the variable, never a silent fallback.

use std::collections::HashMap;
use std::time::Duration;

/// Everything the API and the worker read at start-up. Each process uses its part.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api: ApiSettings,
    pub db: DbSettings,
    pub amqp: AmqpSettings,
    pub redis: RedisSettings,
    pub worker: WorkerSettings,
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
}

#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `DB_URL`: `mysql://user:pass@host:port/db`; the Python deployment's
    /// `mysql+asyncmy://` form is accepted too.
    pub url: String,
    /// `DB_MAX_CONNECTIONS`: the connection pool's size.
    pub max_connections: u32,
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
    pub connect: ConnectRetry,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`.
    pub url: String,
    /// `STATUS_CHANNEL`: the Pub/Sub channel status changes are published on.
    pub channel: String,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `WORKER_PREFETCH`: unacknowledged deliveries a worker holds, and so processes at once.
    pub prefetch: u16,
}

/// How often and how patiently to try a first connection at start-up
/// (`*_CONNECT_ATTEMPTS`, `*_CONNECT_BACKOFF` in seconds).
#[derive(Debug, Clone, Copy)]
pub struct ConnectRetry {
    pub attempts: u32,
    pub backoff: Duration,
}

impl ConnectRetry {
    /// The wait after failed attempt `n` (1-based): the backoff doubled each time, at most 30 s.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(30))
    }
}

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
                cors_allow_origins: env
                    .string("CORS_ALLOW_ORIGINS", "*")
                    .split(',')
                    .map(|origin| origin.trim().to_owned())
                    .filter(|origin| !origin.is_empty())
                    .collect(),
                max_body_bytes: env.parse("MAX_BODY_BYTES", 1024 * 1024)?,
                ws_client_buffer: env.positive("WS_CLIENT_BUFFER", 1024)?,
            },
            db: DbSettings {
                url: normalize_db_url(&env.string(
                    "DB_URL",
                    "mysql://taskflow:taskflow@127.0.0.1:3306/taskflow",
                ))
                .map_err(|reason| env.invalid("DB_URL", reason))?,
                max_connections: env.positive("DB_MAX_CONNECTIONS", 16)?,
                connect: env.connect_retry("DB_CONNECT_ATTEMPTS", "DB_CONNECT_BACKOFF")?,
            },
            amqp: AmqpSettings {
                url: env.string("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
                exchange: env.string("TASK_EXCHANGE", "task.topic"),
                queue: env.string("TASK_QUEUE", "task.created"),
                routing_key: env.string("TASK_ROUTING_KEY", "task.created"),
                connect: env
                    .connect_retry("RABBITMQ_CONNECT_ATTEMPTS", "RABBITMQ_CONNECT_BACKOFF")?,
            },
            redis: RedisSettings {
                url: env.string("REDIS_URL", "redis://127.0.0.1:6379/0"),
                channel: env.string("STATUS_CHANNEL", "task.status"),
            },
            worker: WorkerSettings {
                prefetch: env.positive("WORKER_PREFETCH", 8)?,
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

    fn invalid(&self, name: &'static str, reason: String) -> ConfigError {
        ConfigError {
            variable: name,
            value: self.0.get(name).cloned().unwrap_or_default(),
            reason,
        }
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
    fn connect_backoff_doubles_up_to_a_cap() {
        let retry = ConnectRetry {
            attempts: 10,
            backoff: Duration::from_secs(2),
        };
        assert_eq!(retry.delay_after(1), Duration::from_secs(2));
        assert_eq!(retry.delay_after(3), Duration::from_secs(8));
        assert_eq!(retry.delay_after(10), Duration::from_secs(30));
    }
}
