//! Reading and parsing the variables, each error naming its variable.

use std::collections::HashMap;
use std::time::Duration;

use super::span::parse_span;
use super::{
    ConfigError, ConnectRetry, MAX_BODY_BYTES, MAX_DURATION, MAX_WORKER_NAME, default_worker_name,
    masked,
};

pub(super) struct Env<'a>(pub(super) &'a HashMap<String, String>);

impl Env<'_> {
    pub(super) fn string(&self, name: &'static str, default: &str) -> String {
        match self.0.get(name) {
            Some(value) if !value.trim().is_empty() => value.trim().to_owned(),
            _ => default.to_owned(),
        }
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
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

    pub(super) fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
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
    pub(super) fn span(&self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        match self.0.get(name).map(|value| value.trim()) {
            Some(value) if !value.is_empty() => parse_span(value)
                .map(Some)
                .map_err(|reason| self.invalid(name, reason)),
            _ => Ok(None),
        }
    }

    pub(super) fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let value = self.parse(name, default).map(Duration::from_millis)?;
        self.at_most_max(name, value)
    }

    pub(super) fn seconds(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        let value = self.parse(name, default).map(Duration::from_secs)?;
        self.at_most_max(name, value)
    }

    /// A duration that must not be zero: an interval (a zero period panics a timer), a timeout
    /// (every call would fail at once), a delay or a lease.
    pub(super) fn positive_millis(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.nonzero(name, self.millis(name, default)?)
    }

    pub(super) fn positive_seconds(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.nonzero(name, self.seconds(name, default)?)
    }

    pub(super) fn nonzero(
        &self,
        name: &'static str,
        value: Duration,
    ) -> Result<Duration, ConfigError> {
        if value.is_zero() {
            return Err(self.invalid(name, "must be greater than 0".to_owned()));
        }
        Ok(value)
    }

    /// A finite number above zero: any other factor makes delays negative (a panic) or
    /// meaningless.
    pub(super) fn retry_factor(
        &self,
        name: &'static str,
        default: f64,
    ) -> Result<f64, ConfigError> {
        let factor: f64 = self.parse(name, default)?;
        if !factor.is_finite() || factor <= 0.0 {
            return Err(self.invalid(name, "must be a finite number greater than 0".to_owned()));
        }
        Ok(factor)
    }

    /// A body limit above zero and within what the `message` column holds (MEDIUMTEXT), so
    /// whatever is accepted can be stored.
    pub(super) fn body_limit(
        &self,
        name: &'static str,
        default: usize,
    ) -> Result<usize, ConfigError> {
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
    pub(super) fn worker_name(&self, name: &'static str) -> Result<String, ConfigError> {
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
    pub(super) fn at_most_max(
        &self,
        name: &'static str,
        value: Duration,
    ) -> Result<Duration, ConfigError> {
        if value > MAX_DURATION {
            return Err(self.invalid(name, "must be at most 30 days".to_owned()));
        }
        Ok(value)
    }

    pub(super) fn connect_retry(
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
    pub(super) fn origins(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
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
    pub(super) fn url(
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

    pub(super) fn invalid(&self, name: &'static str, reason: String) -> ConfigError {
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
