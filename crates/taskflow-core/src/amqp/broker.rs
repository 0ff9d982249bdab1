//! The confirmed publisher both services use: new tasks, retries, dead letters and parked
//! messages, over one supervised connection.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context as _;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

use super::{QueueKind, Supervisor, declare_topology, headers, work_queue_arguments};
use crate::config::AmqpSettings;
use crate::domain::TaskId;

/// AMQP delivery mode 2: the broker writes the message to disk, so a broker restart keeps it.
const PERSISTENT: u8 = 2;

/// The publishing side of RabbitMQ, shared by everything in a process that publishes: new tasks
/// /// (API), retries and dead letters (worker). It keeps one confirm-mode channel on a
/// [`Supervisor`]'s connection and reopens it (reconnecting if need be) when it dies, so a
/// broker restart needs no process restart.
pub struct Broker {
    settings: AmqpSettings,
    link: tokio::sync::Mutex<Link>,
}

struct Link {
    supervisor: Supervisor,
    open: Option<OpenChannel>,
}

struct OpenChannel {
    channel: Channel,
    /// Retry queues already declared on this channel.
    declared: HashSet<String>,
}

impl Broker {
    /// Connects (retrying as `RABBITMQ_CONNECT_*` say) and declares the topology.
    pub async fn connect(settings: &AmqpSettings) -> anyhow::Result<Self> {
        let mut supervisor = Supervisor::connect(settings).await?;
        let open = supervisor
            .open(|channel| open_channel(channel, settings))
            .await?;
        Ok(Self {
            settings: settings.clone(),
            link: tokio::sync::Mutex::new(Link {
                supervisor,
                open: Some(open),
            }),
        })
    }

    /// A connected confirm-mode channel, reopened (reconnecting if need be) if the last one
    /// died. When `retry_queue` is given, that queue is declared first (once per channel).
    async fn channel(&self, retry_queue: Option<(&str, &FieldTable)>) -> anyhow::Result<Channel> {
        let mut link = self.link.lock().await;
        let Link { supervisor, open } = &mut *link;
        let alive = open
            .as_ref()
            .is_some_and(|open| open.channel.status().connected());
        if !alive {
            *open = Some(
                supervisor
                    .open(|channel| open_channel(channel, &self.settings))
                    .await?,
            );
        }
        let open = open.as_mut().expect("opened above");
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
        let mut link = self.link.lock().await;
        if let Some(open) = link.open.take() {
            let _ = open.channel.close(200, "closing".into()).await;
        }
        link.supervisor.close("closing").await;
    }
}

/// Makes `channel` the publish channel: the topology and the dead-letter queue declared,
/// publisher confirms on.
async fn open_channel(channel: Channel, settings: &AmqpSettings) -> anyhow::Result<OpenChannel> {
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
    Ok(OpenChannel {
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
