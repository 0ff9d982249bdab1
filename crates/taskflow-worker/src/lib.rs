//! TaskFlow's worker: consumes `task.created` and runs each task to DONE or FAILED.
//!
//! As for the API, [`Worker::build`] connects and [`Worker::run`] works until the shutdown
//! future resolves, so the tests start exactly what production starts.

mod process;

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt as _;
use lapin::options::BasicCancelOptions;
use taskflow_core::config::Settings;
use taskflow_core::status_bus::StatusPublisher;
use taskflow_core::{amqp, db};
use tokio::task::JoinSet;

use crate::process::Context;

pub struct Worker {
    settings: Settings,
    broker: lapin::Connection,
    context: Arc<Context>,
}

impl Worker {
    /// Connects to MySQL, RabbitMQ and Redis.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.db).await?;
        let broker = amqp::connect(&settings.amqp).await?;
        let statuses = StatusPublisher::connect(&settings.redis).await?;
        Ok(Self {
            settings: settings.clone(),
            broker,
            context: Arc::new(Context { pool, statuses }),
        })
    }

    /// Consumes until `shutdown` resolves or the broker ends the consumer; then stops
    /// consuming, lets the tasks in progress finish and settle, and closes the connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let tag = format!("taskflow-worker-{}", uuid_suffix());
        let (channel, mut consumer) = amqp::consume(
            &self.broker,
            &self.settings.amqp,
            self.settings.worker.prefetch,
            &tag,
        )
        .await?;
        tracing::info!(queue = %self.settings.amqp.queue, prefetch = self.settings.worker.prefetch, "worker consuming");

        // The broker sends at most `prefetch` unacked deliveries, which bounds this set.
        let mut in_progress = JoinSet::new();
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                Some(joined) = in_progress.join_next(), if !in_progress.is_empty() => {
                    if let Err(err) = joined {
                        tracing::error!(error = %err, "a task handler panicked");
                    }
                }
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let context = self.context.clone();
                        in_progress.spawn(async move { process::handle(&context, delivery).await });
                    }
                    Some(Err(err)) => break Err(anyhow::Error::new(err).context("consuming deliveries")),
                    None => break Err(anyhow::anyhow!("the broker ended the consumer")),
                },
            }
        };

        tracing::info!(
            in_progress = in_progress.len(),
            "worker stopping: finishing tasks in progress"
        );
        if let Err(err) = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
        {
            tracing::warn!(error = %err, "cannot cancel the consumer");
        }
        while let Some(joined) = in_progress.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "a task handler panicked");
            }
        }
        let _ = channel.close(200, "worker stopping".into()).await;
        let _ = self.broker.close(200, "worker stopping".into()).await;
        self.context.pool.close().await;
        result
    }
}

fn uuid_suffix() -> String {
    taskflow_core::domain::TaskId::new().to_string()[24..].to_owned()
}
