//! One rule for waiting between tries — task retries, start-up connections, reconnects: a
//! delay that grows by a factor from a first one up to a cap, with "equal jitter" (uniform in
//! [delay/2, delay]), so that many clients failing together do not all try again together,
//! and a retry never comes much earlier than planned.

use std::future::Future;
use std::time::Duration;

use crate::config::ConnectRetry;

/// Delays growing by `factor` from `first`, never above `cap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub factor: f64,
    pub cap: Duration,
}

impl Backoff {
    /// Reconnecting a running process's subscription, consumer or publisher: quick at first,
    /// and never waiting long once the server is back.
    pub const RECONNECT: Self = Self {
        first: Duration::from_millis(100),
        factor: 2.0,
        cap: Duration::from_secs(5),
    };

    /// The wait after `failures` failures in a row (1 or more), before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let delay = self.first.as_secs_f64() * self.factor.powi(exponent);
        Duration::from_secs_f64(delay.min(self.cap.as_secs_f64()))
    }

    /// [`Backoff::delay`] with equal jitter; `unit` is a random number in [0, 1).
    pub fn jittered(&self, failures: u32, unit: f64) -> Duration {
        self.delay(failures)
            .mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// The failures in a row of one thing that is tried again, and the wait each calls for.
#[derive(Debug, Clone)]
pub struct Tries {
    backoff: Backoff,
    failures: u32,
    limit: Option<u32>,
}

impl Tries {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            failures: 0,
            limit: None,
        }
    }

    /// Gives up once `attempts` tries have failed.
    pub fn at_most(self, attempts: u32) -> Self {
        Self {
            limit: Some(attempts),
            ..self
        }
    }

    /// Counts a failure: the (jittered) wait before the next try, or `None` if the tries are
    /// used up.
    pub fn failed(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.limit.is_some_and(|limit| self.failures >= limit) {
            return None;
        }
        Some(self.backoff.jittered(self.failures, fastrand::f64()))
    }

    /// How many tries have failed in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A try worked: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// Calls `connect` until it succeeds or the attempts are used up (`*_CONNECT_ATTEMPTS` /
/// `*_CONNECT_BACKOFF`), logging each failure once.
pub async fn retry_connect<T, E, F, Fut>(
    what: &str,
    retry: ConnectRetry,
    mut connect: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut tries = Tries::new(retry.backoff()).at_most(retry.attempts);
    loop {
        match connect().await {
            Ok(connected) => return Ok(connected),
            Err(err) => {
                let Some(delay) = tries.failed() else {
                    return Err(anyhow::Error::new(err).context(format!(
                        "connecting to {what} ({} attempts)",
                        tries.failures()
                    )));
                };
                tracing::warn!(
                    error = %err,
                    attempt = tries.failures(),
                    of = retry.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to {what} yet"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Checks `condition` every `every` until it holds (true) or `timeout` passes (false): for
/// callers outside the services (the test harness, the bench) waiting on a state no event
/// announces.
pub async fn poll_until(
    timeout: Duration,
    every: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) -> bool {
    let polled = tokio::time::timeout(timeout, async {
        let mut interval = tokio::time::interval(every);
        loop {
            interval.tick().await;
            if condition().await {
                return;
            }
        }
    });
    polled.await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap_with_bounded_jitter() {
        let backoff = Backoff {
            first: Duration::from_millis(100),
            factor: 3.0,
            cap: Duration::from_millis(500),
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(300));
        assert_eq!(backoff.delay(3), Duration::from_millis(500));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(500));
        assert_eq!(backoff.jittered(2, 0.0), Duration::from_millis(150));
        assert_eq!(backoff.jittered(2, 0.999_999).as_millis(), 299);
    }

    #[test]
    fn tries_give_up_at_their_limit_and_start_over_after_a_success() {
        let mut tries = Tries::new(Backoff::RECONNECT).at_most(3);
        assert!(tries.failed().is_some());
        assert!(tries.failed().is_some());
        assert_eq!(tries.failed(), None, "the third failure is the last try");
        tries.succeeded();
        let wait = tries.failed().expect("counting from zero again");
        assert!(wait <= Backoff::RECONNECT.first, "{wait:?}");
    }
}
