//! One RabbitMQ connection kept alive for its user (the API's and worker's publisher, the
//! worker's consumer): it notices a dead connection, reconnects under the one backoff rule, and
//! hands out fresh channels.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::backoff::{Backoff, Tries};
use crate::config::AmqpSettings;

/// A reconnect (connecting and setting up the channel) that takes longer than this has failed:
/// a broker that accepts connections but stops answering must not hold the caller.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection of one user of RabbitMQ. While the broker is unreachable, a reconnect is
/// tried again only once the backoff after the last failure has passed, so callers in that
/// window fail at once instead of each waiting for a connect timeout.
pub struct Supervisor {
    url: String,
    connection: Option<Connection>,
    /// Failed reconnects in a row.
    reconnects: Tries,
    retry_at: Option<Instant>,
}

impl Supervisor {
    /// Connects at start-up, retrying as `RABBITMQ_CONNECT_ATTEMPTS` / `RABBITMQ_CONNECT_BACKOFF`
    /// say.
    pub async fn connect(settings: &AmqpSettings) -> anyhow::Result<Self> {
        let connection = super::connect(settings).await?;
        Ok(Self {
            connection: Some(connection),
            ..Self::lazy(settings)
        })
    }

    /// Connects on the first [`Supervisor::open`], under the reconnect rule.
    pub fn lazy(settings: &AmqpSettings) -> Self {
        Self {
            url: settings.url.clone(),
            connection: None,
            reconnects: Tries::new(Backoff::RECONNECT),
            retry_at: None,
        }
    }

    /// When the next reconnect may be tried, if the last one failed.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// A fresh channel on a live connection, made ready by `setup` (declarations, confirm mode,
    /// consuming): on the current connection while it is alive, else on a new one. A failure
    /// (connecting, or `setup`) counts as a failed reconnect; until its backoff has passed,
    /// `open` fails at once.
    pub async fn open<T, F, Fut>(&mut self, setup: F) -> anyhow::Result<T>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            anyhow::bail!("RabbitMQ is unreachable (reconnect failed moments ago)");
        }
        let alive = self
            .connection
            .as_ref()
            .is_some_and(|connection| connection.status().connected());
        let opened = async {
            let fresh = if alive {
                None
            } else {
                Some(
                    Connection::connect(&self.url, ConnectionProperties::default())
                        .await
                        .context("reconnecting to RabbitMQ")?,
                )
            };
            let connection = fresh
                .as_ref()
                .or(self.connection.as_ref())
                .expect("alive, or connected above");
            let channel = connection
                .create_channel()
                .await
                .context("opening a channel")?;
            anyhow::Ok((fresh, setup(channel).await?))
        };
        let opened = tokio::time::timeout(OPEN_TIMEOUT, opened)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reconnecting to RabbitMQ timed out")));
        match opened {
            Ok((fresh, ready)) => {
                if let Some(fresh) = fresh {
                    if self.connection.is_some() {
                        tracing::info!("reconnected to RabbitMQ");
                    }
                    if let Some(dead) = self.connection.replace(fresh) {
                        tokio::spawn(async move {
                            let _ = dead.close(200, "replaced".into()).await;
                        });
                    }
                }
                self.reconnects.succeeded();
                self.retry_at = None;
                Ok(ready)
            }
            Err(err) => {
                let wait = self.reconnects.failed().unwrap_or(Backoff::RECONNECT.cap);
                self.retry_at = Some(Instant::now() + wait);
                Err(err)
            }
        }
    }

    /// Closes the connection (and so its channels).
    pub async fn close(&mut self, reason: &str) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close(200, reason.into()).await;
        }
    }
}
