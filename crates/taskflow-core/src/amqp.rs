//! RabbitMQ: the topology both services declare, the confirmed publisher the API uses, and the
//! consumer the worker reads from.
//!
//! The topology is the original design's, declared with the same arguments the Python services
//! use (none), so both implementations can share one broker: declaring a queue with different
//! arguments would make RabbitMQ refuse the other side's declaration.

use anyhow::Context as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

use crate::config::AmqpSettings;
use crate::connect::retry_connect;
use crate::contract::TaskCreated;

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
            // Durable and shared by every worker (not exclusive, not auto-deleted), with no
            // arguments, exactly as the Python worker declares it.
            QueueDeclareOptions::durable(),
            FieldTable::default(),
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

/// Publishes `task.created` messages and waits for the broker's confirm of each. One channel is
/// shared by all requests: confirms are matched to publishes by lapin, so many can be in flight.
#[derive(Clone)]
pub struct TaskPublisher {
    channel: Channel,
    exchange: String,
    routing_key: String,
}

impl TaskPublisher {
    pub async fn new(connection: &Connection, settings: &AmqpSettings) -> anyhow::Result<Self> {
        let channel = connection
            .create_channel()
            .await
            .context("opening the publish channel")?;
        declare_topology(&channel, settings).await?;
        // Publisher confirms: a publish counts only once the broker has taken responsibility.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        Ok(Self {
            channel,
            exchange: settings.exchange.clone(),
            routing_key: settings.routing_key.clone(),
        })
    }

    /// Publishes one message and returns once the broker confirmed it.
    pub async fn publish(&self, message: &TaskCreated) -> anyhow::Result<()> {
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                // Mandatory: an unroutable message (no queue bound) comes back instead of
                // vanishing, and counts as a failed publish.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &message.to_json(),
                BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_delivery_mode(PERSISTENT)
                    .with_message_id(message.task_id.to_string().into()),
            )
            .await
            .with_context(|| format!("publishing task.created for {}", message.task_id))?
            .await
            .with_context(|| format!("awaiting the confirm for {}", message.task_id))?;
        if confirm.is_nack() {
            anyhow::bail!("the broker refused task.created for {}", message.task_id);
        }
        if confirm.take_message().is_some() {
            anyhow::bail!(
                "task.created for {} was returned unroutable: is the queue bound?",
                message.task_id
            );
        }
        Ok(())
    }

    pub fn is_connected(&self) -> bool {
        self.channel.status().connected()
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
