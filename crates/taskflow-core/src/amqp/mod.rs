//! RabbitMQ: the topology both services declare, the consumer the worker reads from, the
//! confirmed publisher ([`Broker`]) and the connection supervisor both sides reconnect with.
//!
//! The topology is the original design's, declared with the same arguments the Python services
//! use (none), so both implementations can share one broker: declaring a queue with different
//! arguments would make RabbitMQ refuse the other side's declaration.

mod broker;
pub mod headers;
mod supervisor;

use anyhow::Context as _;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

pub use broker::Broker;
pub use supervisor::Supervisor;

use crate::backoff::retry_connect;
use crate::config::{AmqpSettings, QueueType};

/// Deletes `queues` and then `exchange`, for tests and benchmark runs removing the names they
/// made. Each queue on a fresh channel: deleting a queue that was never declared may close the
/// channel. Only the exchange's deletion can fail the call.
pub async fn delete_names(
    connection: &Connection,
    queues: &[String],
    exchange: &str,
) -> anyhow::Result<()> {
    for queue in queues {
        let channel = connection.create_channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let channel = connection.create_channel().await?;
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .with_context(|| format!("deleting exchange {exchange}"))?;
    Ok(())
}

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

/// The queues whose depth is exported as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Work,
    DeadLetter,
}

/// Consumes the task queue on `channel` with manual acks and `prefetch` unacked deliveries.
pub async fn consume(
    channel: &Channel,
    settings: &AmqpSettings,
    prefetch: u16,
    consumer_tag: &str,
) -> anyhow::Result<Consumer> {
    declare_topology(channel, settings).await?;
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
    Ok(consumer)
}
