//! Redis Pub/Sub on the `task.status` channel: the worker publishes each status change, and each
//! API process holds one subscription that it fans out to its WebSocket clients.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use crate::config::RedisSettings;
use crate::contract::StatusEvent;

/// How long a Redis command (or a reconnect) may take before it fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Publishes status events. The connection manager reconnects by itself after Redis restarts.
#[derive(Clone)]
pub struct StatusPublisher {
    conn: ConnectionManager,
    channel: String,
}

impl StatusPublisher {
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        // Every command has a deadline, so a Redis that stops answering without closing fails a
        // publish instead of holding the task that announces it.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_with_config(client(settings)?, config)
            .await
            .context("connecting to Redis")?;
        Ok(Self {
            conn,
            channel: settings.channel.clone(),
        })
    }

    pub async fn publish(&self, event: &StatusEvent) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _receivers: i64 = conn
            .publish(&self.channel, event.to_json())
            .await
            .with_context(|| format!("publishing {} for task {}", event.status, event.task_id))?;
        Ok(())
    }

    /// A round trip to Redis, for health checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .context("PING")?;
        Ok(())
    }
}

/// What a subscription delivers: a message from the channel, or word of the subscription's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Relayed {
    /// The first subscription is in place: from now on no event is missed.
    Subscribed,
    Message(String),
    /// The subscription was re-established after a gap in which messages may have been lost.
    Resubscribed,
}

/// A client for `REDIS_URL` whose connections send each command at once (`TCP_NODELAY`; the
/// redis crate leaves Nagle's algorithm on, which holds a small write back until the previous
/// one is acknowledged).
fn client(settings: &RedisSettings) -> anyhow::Result<redis::Client> {
    use redis::IntoConnectionInfo as _;
    let info = settings
        .url
        .as_str()
        .into_connection_info()
        .context("parsing REDIS_URL")?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    redis::Client::open(info).context("parsing REDIS_URL")
}

/// Subscribes to the status channel and hands every message to `deliver` until `shutdown`
/// resolves. Pub/Sub streams end when the connection drops; this resubscribes with a growing
/// delay and then reports [`Relayed::Resubscribed`], because what was published in the gap is gone.
pub async fn relay_status_events(
    settings: RedisSettings,
    mut deliver: impl FnMut(Relayed),
    shutdown: impl Future<Output = ()>,
) {
    let run = async {
        let mut delay = Duration::from_millis(100);
        let mut had_subscription = false;
        loop {
            match subscribe(&settings).await {
                Ok(mut pubsub) => {
                    tracing::info!(channel = %settings.channel, "subscribed to status events");
                    delay = Duration::from_millis(100);
                    deliver(if had_subscription {
                        Relayed::Resubscribed
                    } else {
                        Relayed::Subscribed
                    });
                    had_subscription = true;
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        match message.get_payload::<String>() {
                            Ok(text) => deliver(Relayed::Message(text)),
                            Err(err) => {
                                tracing::warn!(error = %err, "skipping a status message that is not text")
                            }
                        }
                    }
                    tracing::warn!(channel = %settings.channel, "status subscription ended; resubscribing");
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot subscribe to status events"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    };
    tokio::select! {
        () = run => {}
        () = shutdown => {}
    }
}

async fn subscribe(settings: &RedisSettings) -> anyhow::Result<redis::aio::PubSub> {
    let mut pubsub = client(settings)?
        .get_async_pubsub()
        .await
        .context("connecting to Redis")?;
    pubsub
        .subscribe(&settings.channel)
        .await
        .with_context(|| format!("subscribing to {}", settings.channel))?;
    Ok(pubsub)
}
