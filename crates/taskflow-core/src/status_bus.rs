//! Redis Pub/Sub on the `task.status` channel: the worker publishes each status change, and each
//! API process holds one subscription that it fans out to its WebSocket clients.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use crate::backoff::{Backoff, Tries};
use crate::config::RedisSettings;
use crate::contract::StatusEvent;
use crate::metrics::Announcements;

/// How long a Redis command (or a reconnect) may take before it fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Publishes status events. Every command has a deadline, so a Redis that stops answering fails
/// a publish instead of holding the task that announces it. The connection manager reconnects
/// by itself when the connection drops; one that stays open and answers nothing only makes its
/// commands time out, so after a timeout the connection is replaced (in the background, one
/// replacement at a time).
#[derive(Clone)]
pub struct StatusPublisher(Arc<Publisher>);

struct Publisher {
    client: redis::Client,
    channel: String,
    /// The connection in use, and how many times it was replaced.
    current: std::sync::Mutex<(u64, ConnectionManager)>,
    replacing: tokio::sync::Mutex<()>,
}

impl StatusPublisher {
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client = client(settings)?;
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .context("connecting to Redis")?;
        Ok(Self(Arc::new(Publisher {
            client,
            channel: settings.channel.clone(),
            current: std::sync::Mutex::new((0, conn)),
            replacing: tokio::sync::Mutex::new(()),
        })))
    }

    pub async fn publish(&self, event: &StatusEvent) -> anyhow::Result<()> {
        let (generation, mut conn) = self.current();
        let published: redis::RedisResult<i64> =
            conn.publish(&self.0.channel, event.to_json()).await;
        self.replace_after_timeout(generation, &published);
        published
            .with_context(|| format!("publishing {} for task {}", event.status, event.task_id))?;
        Ok(())
    }

    /// Announces a status change just committed: counted, and published on the status
    /// channel. Being committed, the change stands whatever Redis does, so a failure is
    /// logged and counted, not returned: WebSocket clients resynchronise from the REST API.
    pub async fn announce(&self, event: &StatusEvent, counts: &Announcements) {
        counts
            .transitions
            .with_label_values(&[event.status.as_str()])
            .inc();
        if let Err(err) = self.publish(event).await {
            counts.failures.inc();
            tracing::warn!(task_id = %event.task_id, status = %event.status, error = format!("{err:#}"), "status change not announced");
        }
    }

    /// A round trip to Redis, for health checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let (generation, mut conn) = self.current();
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        self.replace_after_timeout(generation, &pong);
        pong.context("PING")?;
        Ok(())
    }

    fn current(&self) -> (u64, ConnectionManager) {
        self.0.current.lock().expect("not poisoned").clone()
    }

    fn replace_after_timeout<T>(&self, generation: u64, result: &redis::RedisResult<T>) {
        if !result.as_ref().is_err_and(|err| err.is_timeout()) {
            return;
        }
        let publisher = self.0.clone();
        tokio::spawn(async move {
            let _one_at_a_time = publisher.replacing.lock().await;
            if publisher.current.lock().expect("not poisoned").0 != generation {
                return; // Replaced already.
            }
            match ConnectionManager::new_with_config(publisher.client.clone(), manager_config())
                .await
            {
                Ok(conn) => {
                    *publisher.current.lock().expect("not poisoned") = (generation + 1, conn);
                    tracing::info!("Redis publisher connection replaced after a timeout");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "replacing the Redis publisher connection failed")
                }
            }
        });
    }
}

fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
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

/// When the subscribed connection last proved alive: it subscribed, or answered a ping. This is
/// what `/healthz` reports for Redis, since it is the connection `/ws` depends on.
#[derive(Debug, Default)]
pub struct SubscriptionLiveness(std::sync::Mutex<Option<tokio::time::Instant>>);

impl SubscriptionLiveness {
    fn heard(&self) {
        *self.0.lock().expect("not poisoned") = Some(tokio::time::Instant::now());
    }

    /// Whether the subscription answered within `window`.
    pub fn alive_within(&self, window: Duration) -> bool {
        self.0
            .lock()
            .expect("not poisoned")
            .is_some_and(|at| at.elapsed() <= window)
    }
}

/// Subscribes to the status channel and hands every message to `deliver` until `shutdown`
/// resolves. Pub/Sub streams end when the connection drops, and a half-open connection never
/// ends: the subscription is pinged every `keepalive` and replaced when a ping goes unanswered.
/// After a gap it resubscribes with a growing delay and reports [`Relayed::Resubscribed`],
/// because what was published in the gap is gone.
pub async fn relay_status_events(
    settings: RedisSettings,
    liveness: &SubscriptionLiveness,
    mut deliver: impl FnMut(Relayed),
    shutdown: impl Future<Output = ()>,
) {
    let run = async {
        let mut tries = Tries::new(Backoff::RECONNECT);
        let mut had_subscription = false;
        loop {
            let subscribed = tokio::time::timeout(settings.keepalive, subscribe(&settings))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("subscribing timed out")));
            match subscribed {
                Ok(pubsub) => {
                    tracing::info!(channel = %settings.channel, "subscribed to status events");
                    liveness.heard();
                    tries.succeeded();
                    deliver(if had_subscription {
                        Relayed::Resubscribed
                    } else {
                        Relayed::Subscribed
                    });
                    had_subscription = true;
                    let (mut sink, mut messages) = pubsub.split();
                    let keepalive = async {
                        loop {
                            tokio::time::sleep(settings.keepalive).await;
                            // Subscribed, Redis answers a PING with an array, not "PONG".
                            let ping = sink.ping::<redis::Value>();
                            match tokio::time::timeout(settings.keepalive, ping).await {
                                Ok(Ok(_)) => liveness.heard(),
                                Ok(Err(err)) => return format!("ping failed: {err}"),
                                Err(_) => return "ping unanswered".to_owned(),
                            }
                        }
                    };
                    let relay = async {
                        while let Some(message) = messages.next().await {
                            match message.get_payload::<String>() {
                                Ok(text) => deliver(Relayed::Message(text)),
                                Err(err) => {
                                    tracing::warn!(error = %err, "skipping a status message that is not text")
                                }
                            }
                        }
                        "connection closed".to_owned()
                    };
                    let reason = tokio::select! {
                        reason = keepalive => reason,
                        reason = relay => reason,
                    };
                    tracing::warn!(channel = %settings.channel, reason, "status subscription lost; resubscribing");
                }
                Err(err) => {
                    let delay = tries.failed().unwrap_or(Backoff::RECONNECT.cap);
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot subscribe to status events"
                    );
                    tokio::time::sleep(delay).await;
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
