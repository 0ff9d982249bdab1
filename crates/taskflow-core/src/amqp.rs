//! RabbitMQ: the topology both services declare, the confirmed publisher the API uses, and the
//! consumer the worker reads from.
//!
//! The topology is the original design's, declared with the same arguments the Python services
//! use (none), so both implementations can share one broker: declaring a queue with different
//! arguments would make RabbitMQ refuse the other side's declaration.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

use crate::backoff::{Backoff, Tries, retry_connect};
use crate::config::{AmqpSettings, QueueType};
use crate::domain::TaskId;

/// AMQP delivery mode 2: the broker writes the message to disk, so a broker restart keeps it.
const PERSISTENT: u8 = 2;

/// Opens a connection, retrying as `RABBITMQ_CONNECT_ATTEMPTS` / `RABBITMQ_CONNECT_BACKOFF` say.
pub async fn connect(settings: &AmqpSettings) -> anyhow::Result<Connection> {
    retry_connect("RabbitMQ", settings.connect, || {
        Connection::connect(&settings.url, ConnectionProperties::default())
    })
    .await
}

/// Declares the exchange, the queue and their binding. Idempotent: every process runs it at
/// start, so whichever starts first creates them.
pub async fn declare_topology(channel: &Channel, settings: &AmqpSettings) -> anyhow::Result<()> {
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            // Durable: the exchange outlives a broker restart.
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring exchange {}", settings.exchange))?;
    channel
        .queue_declare(
            settings.queue.as_str().into(),
            // Durable and shared by every worker (not exclusive, not auto-deleted).
            QueueDeclareOptions::durable(),
            work_queue_arguments(settings),
        )
        .await
        .with_context(|| format!("declaring queue {}", settings.queue))?;
    channel
        .queue_bind(
            settings.queue.as_str().into(),
            settings.exchange.as_str().into(),
            settings.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding queue {}", settings.queue))?;
    Ok(())
}

/// The work queue's declaration arguments. None for a classic queue, exactly as the Python
/// worker declares it, so both can share a broker; RabbitMQ refuses a second declaration whose
/// arguments differ, so a quorum queue needs every process (and no Python worker) to agree.
pub fn work_queue_arguments(settings: &AmqpSettings) -> FieldTable {
    let mut arguments = FieldTable::default();
    if settings.queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    arguments
}

/// The publishing side of RabbitMQ, shared by everything in a process that publishes: new tasks
/// (API), retries and dead letters (worker). It keeps one connection with one confirm-mode
/// channel and reopens them when they die, so a broker restart needs no process restart. While
/// the broker is unreachable, calls fail fast instead of each waiting for a connect timeout.
pub struct Broker {
    settings: AmqpSettings,
    link: tokio::sync::Mutex<Link>,
}

struct Link {
    open: Option<OpenLink>,
    /// Failed reconnects in a row; until `retry_at`, calls fail at once rather than each
    /// trying again.
    reconnects: Tries,
    retry_at: Option<Instant>,
}

struct OpenLink {
    connection: Connection,
    channel: Channel,
    /// Retry queues already declared on this connection.
    declared: HashSet<String>,
}

const RECONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Link {
    fn failed_reconnect(&mut self) {
        let wait = self.reconnects.failed().unwrap_or(Backoff::RECONNECT.cap);
        self.retry_at = Some(Instant::now() + wait);
    }
}

impl Broker {
    /// Connects (retrying as `RABBITMQ_CONNECT_*` say) and declares the topology.
    pub async fn connect(settings: &AmqpSettings) -> anyhow::Result<Self> {
        let connection = connect(settings).await?;
        let open = open_link(connection, settings).await?;
        Ok(Self {
            settings: settings.clone(),
            link: tokio::sync::Mutex::new(Link {
                open: Some(open),
                reconnects: Tries::new(Backoff::RECONNECT),
                retry_at: None,
            }),
        })
    }

    /// A connected confirm-mode channel, reconnecting if the last one died. When `queue` is
    /// given, that retry queue is declared first (once per connection).
    async fn channel(&self, retry_queue: Option<(&str, &FieldTable)>) -> anyhow::Result<Channel> {
        let mut link = self.link.lock().await;
        let alive = link
            .open
            .as_ref()
            .is_some_and(|open| open.channel.status().connected());
        if !alive {
            if link.retry_at.is_some_and(|at| Instant::now() < at) {
                anyhow::bail!("RabbitMQ is unreachable (reconnect failed moments ago)");
            }
            let reopened = async {
                let connection =
                    Connection::connect(&self.settings.url, ConnectionProperties::default())
                        .await
                        .context("reconnecting to RabbitMQ")?;
                open_link(connection, &self.settings).await
            };
            match tokio::time::timeout(RECONNECT_TIMEOUT, reopened).await {
                Ok(Ok(open)) => {
                    tracing::info!("reconnected to RabbitMQ");
                    if let Some(dead) = link.open.replace(open) {
                        tokio::spawn(async move {
                            let _ = dead.connection.close(200, "replaced".into()).await;
                        });
                    }
                    link.reconnects.succeeded();
                    link.retry_at = None;
                }
                Ok(Err(err)) => {
                    link.failed_reconnect();
                    return Err(err);
                }
                Err(_) => {
                    link.failed_reconnect();
                    anyhow::bail!("reconnecting to RabbitMQ timed out");
                }
            }
        }
        let open = link.open.as_mut().expect("connected above");
        if let Some((queue, arguments)) = retry_queue
            && !open.declared.contains(queue)
        {
            open.channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions::durable(),
                    arguments.clone(),
                )
                .await
                .with_context(|| format!("declaring queue {queue}"))?;
            open.declared.insert(queue.to_owned());
        }
        Ok(open.channel.clone())
    }

    /// Publishes a `task.created` message (already serialised) and returns once the broker
    /// confirmed it, or fails after `PUBLISH_TIMEOUT`-like `timeout`. `supersedes` names the
    /// abandoned attempt a re-dispatch follows.
    pub async fn publish_task(
        &self,
        task_id: TaskId,
        body: &[u8],
        supersedes: Option<u32>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let mut properties = persistent_json().with_message_id(task_id.to_string().into());
        if let Some(attempt) = supersedes {
            properties =
                properties.with_headers(headers::superseding(FieldTable::default(), attempt));
        }
        let publish = async {
            let channel = self.channel(None).await?;
            confirmed_publish(
                &channel,
                &self.settings.exchange,
                &self.settings.routing_key,
                body,
                properties,
            )
            .await
        };
        within(timeout, publish)
            .await
            .with_context(|| format!("publishing task.created for {task_id}"))
    }

    /// Schedules `body` to come back to the task queue after `delay`, as attempt `attempt`, by
    /// parking it in the retry queue of that attempt: a durable queue without consumers whose
    /// messages dead-letter back to the task exchange when their per-message TTL expires. One
    /// queue per attempt keeps the delays in each queue close, so no short delay waits long
    /// behind a longer one at the head of the queue. Fails if the broker has not confirmed it
    /// within `timeout`.
    pub async fn publish_retry(
        &self,
        body: &[u8],
        headers: FieldTable,
        attempt: u32,
        delay: Duration,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let queue = format!("{}.retry.{attempt}", self.settings.queue);
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.settings.exchange.as_str().into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(self.settings.routing_key.as_str().into()),
        );
        let properties = persistent_json()
            .with_headers(headers)
            .with_expiration(delay.as_millis().max(1).to_string().into());
        let publish = async {
            let channel = self.channel(Some((&queue, &arguments))).await?;
            confirmed_publish(&channel, "", &queue, body, properties).await
        };
        within(timeout, publish)
            .await
            .with_context(|| format!("publishing the retry to {queue}"))
    }

    /// Keeps `body` in the dead-letter queue, with `headers` saying why and what was tried;
    /// fails if the broker has not confirmed it within `timeout`.
    pub async fn dead_letter(
        &self,
        body: &[u8],
        headers: FieldTable,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let queue = &self.settings.dead_letter_queue;
        let publish = async {
            let channel = self.channel(None).await?;
            confirmed_publish(
                &channel,
                "",
                queue,
                body,
                persistent_json().with_headers(headers),
            )
            .await
        };
        within(timeout, publish)
            .await
            .with_context(|| format!("publishing the dead letter to {queue}"))
    }

    /// Parks `body` in `<queue>.parked` (declared on first use, durable, no consumers), with
    /// `headers` saying why: for a delivery that could be neither finished nor handed on, and
    /// would otherwise come back without end. Fails if not confirmed within `timeout`.
    pub async fn park(
        &self,
        body: &[u8],
        headers: FieldTable,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let queue = format!("{}.parked", self.settings.queue);
        let publish = async {
            let channel = self.channel(Some((&queue, &FieldTable::default()))).await?;
            confirmed_publish(
                &channel,
                "",
                &queue,
                body,
                persistent_json().with_headers(headers),
            )
            .await
        };
        within(timeout, publish)
            .await
            .with_context(|| format!("parking the message in {queue}"))
    }

    /// Messages ready in the work queue or the dead-letter queue. Both are declared when the
    /// link opens, so declaring them again (same arguments) is a safe way to read the count.
    pub async fn queue_depth(&self, kind: QueueKind) -> anyhow::Result<u32> {
        let (queue, arguments) = match kind {
            QueueKind::Work => (&self.settings.queue, work_queue_arguments(&self.settings)),
            QueueKind::DeadLetter => (&self.settings.dead_letter_queue, FieldTable::default()),
        };
        let channel = self.channel(None).await?;
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await
            .with_context(|| format!("reading the depth of {queue}"))?;
        Ok(declared.message_count())
    }

    /// A broker round trip, for health checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let channel = self.channel(None).await?;
        // Passive declare: answered by the broker, changes nothing.
        channel
            .exchange_declare(
                self.settings.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .context("checking the task exchange")?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(open) = self.link.lock().await.open.take() {
            let _ = open.channel.close(200, "closing".into()).await;
            let _ = open.connection.close(200, "closing".into()).await;
        }
    }
}

async fn open_link(connection: Connection, settings: &AmqpSettings) -> anyhow::Result<OpenLink> {
    let channel = connection
        .create_channel()
        .await
        .context("opening the publish channel")?;
    declare_topology(&channel, settings).await?;
    channel
        .queue_declare(
            settings.dead_letter_queue.as_str().into(),
            // Durable, no arguments: a plain holding queue, read by operators.
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring queue {}", settings.dead_letter_queue))?;
    // Publisher confirms: a publish counts only once the broker has taken responsibility.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("enabling publisher confirms")?;
    Ok(OpenLink {
        connection,
        channel,
        declared: HashSet::new(),
    })
}

/// `publish` (reconnecting if need be, publishing, awaiting the confirm), or an error once
/// `timeout` has passed: a broker that stops answering without closing must not hold a caller.
async fn within(
    timeout: Duration,
    publish: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, publish)
        .await
        .map_err(|_| anyhow::anyhow!("no confirm from RabbitMQ within {timeout:?}"))?
}

fn persistent_json() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(PERSISTENT)
}

async fn confirmed_publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            // Mandatory: an unroutable message (no queue bound) comes back instead of vanishing,
            // and counts as a failed publish.
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .context("publishing")?
        .await
        .context("awaiting the publisher confirm")?;
    if confirm.is_nack() {
        anyhow::bail!("the broker refused the message");
    }
    if confirm.take_message().is_some() {
        anyhow::bail!("the message was returned unroutable to {exchange}/{routing_key}");
    }
    Ok(())
}

/// The queues whose depth is exported as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Work,
    DeadLetter,
}

/// Headers TaskFlow adds to the messages it re-publishes: the attempt, the errors met so far,
/// and (in the dead-letter queue) why the message ended there.
pub mod headers {
    use lapin::types::{AMQPValue, FieldArray, FieldTable};

    pub const ATTEMPT: &str = "x-taskflow-attempt";
    pub const ERRORS: &str = "x-taskflow-errors";
    pub const REASON: &str = "x-taskflow-reason";
    /// The task's attempt (its number on the row) that this message was published to follow.
    pub const SUPERSEDES: &str = "x-taskflow-supersedes";
    /// The attempt history kept with a message is capped, so a long retry chain stays small.
    const MAX_ERRORS: usize = 20;

    /// The attempt a delivery is (1 when the header is absent, as for a first publish).
    pub fn attempt(headers: Option<&FieldTable>) -> u32 {
        let value = headers.and_then(|h| h.inner().get(ATTEMPT));
        let number = match value {
            Some(AMQPValue::LongLongInt(n)) => *n,
            Some(AMQPValue::LongInt(n)) => i64::from(*n),
            Some(AMQPValue::LongUInt(n)) => i64::from(*n),
            Some(AMQPValue::ShortInt(n)) => i64::from(*n),
            Some(AMQPValue::ShortUInt(n)) => i64::from(*n),
            _ => 1,
        };
        u32::try_from(number.max(1)).unwrap_or(1)
    }

    /// Set on a retry whose delivery failed to start its task, not knowing whether the start
    /// took effect: like a broker's redelivery, it may take over the attempt it finds.
    pub const REDELIVERY: &str = "x-taskflow-redelivery";

    /// Whether a message is a [`REDELIVERY`].
    pub fn is_redelivery(headers: Option<&FieldTable>) -> bool {
        matches!(
            headers.and_then(|h| h.inner().get(REDELIVERY)),
            Some(AMQPValue::Boolean(true))
        )
    }

    /// `table` marked as a [`REDELIVERY`].
    pub fn redelivery(mut table: FieldTable) -> FieldTable {
        table.insert(REDELIVERY.into(), AMQPValue::Boolean(true));
        table
    }

    /// The attempt a message was published to follow, if it says.
    pub fn supersedes(headers: Option<&FieldTable>) -> Option<u32> {
        match headers?.inner().get(SUPERSEDES)? {
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(*n),
            _ => None,
        }
    }

    /// `table` with the attempt the message follows.
    pub fn superseding(mut table: FieldTable, attempt: u32) -> FieldTable {
        table.insert(
            SUPERSEDES.into(),
            AMQPValue::LongLongInt(i64::from(attempt)),
        );
        table
    }

    /// Why a dead letter is in the dead-letter queue.
    pub fn reason(headers: Option<&FieldTable>) -> Option<String> {
        match headers?.inner().get(REASON)? {
            AMQPValue::LongString(text) => {
                Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
            }
            _ => None,
        }
    }

    /// The errors recorded by earlier attempts.
    pub fn errors(headers: Option<&FieldTable>) -> Vec<String> {
        match headers.and_then(|h| h.inner().get(ERRORS)) {
            Some(AMQPValue::FieldArray(array)) => array
                .as_slice()
                .iter()
                .filter_map(|value| match value {
                    AMQPValue::LongString(text) => {
                        Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Headers for attempt `attempt` after `errors`, with `reason` for a dead letter.
    pub fn build(attempt: u32, errors: &[String], reason: Option<&str>) -> FieldTable {
        let mut table = FieldTable::default();
        table.insert(ATTEMPT.into(), AMQPValue::LongLongInt(i64::from(attempt)));
        let start = errors.len().saturating_sub(MAX_ERRORS);
        let list: Vec<AMQPValue> = errors[start..]
            .iter()
            .map(|error| AMQPValue::LongString(error.as_str().into()))
            .collect();
        table.insert(ERRORS.into(), AMQPValue::FieldArray(FieldArray::from(list)));
        if let Some(reason) = reason {
            table.insert(REASON.into(), AMQPValue::LongString(reason.into()));
        }
        table
    }
}

/// Opens a consumer on the task queue with manual acks and `prefetch` unacked deliveries.
pub async fn consume(
    connection: &Connection,
    settings: &AmqpSettings,
    prefetch: u16,
    consumer_tag: &str,
) -> anyhow::Result<(Channel, Consumer)> {
    let channel = connection
        .create_channel()
        .await
        .context("opening the consume channel")?;
    declare_topology(&channel, settings).await?;
    // Prefetch bounds the work in progress: the broker sends no more than this many unacked
    // deliveries, so a busy worker leaves the rest to the others.
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .context("setting the prefetch")?;
    let consumer = channel
        .basic_consume(
            settings.queue.as_str().into(),
            consumer_tag.into(),
            // Manual acks (no_ack false): a delivery is acked only after the database commit,
            // so a worker that dies mid-task leaves it to be redelivered.
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming {}", settings.queue))?;
    Ok((channel, consumer))
}
