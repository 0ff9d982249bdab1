//! Start-up connections that wait for their server: attempts and a doubling backoff, as the
//! `*_CONNECT_ATTEMPTS` / `*_CONNECT_BACKOFF` settings say.

use std::future::Future;

use crate::config::ConnectRetry;

/// Calls `connect` until it succeeds or the attempts are used up, logging each failure once.
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
    let mut attempt = 1;
    loop {
        match connect().await {
            Ok(connected) => return Ok(connected),
            Err(err) if attempt < retry.attempts => {
                let delay = retry.delay_after(attempt);
                tracing::warn!(
                    error = %err,
                    attempt,
                    of = retry.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to {what} yet"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => {
                return Err(anyhow::Error::new(err)
                    .context(format!("connecting to {what} ({attempt} attempts)")));
            }
        }
    }
}
