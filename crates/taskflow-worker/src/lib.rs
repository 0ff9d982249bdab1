//! TaskFlow's worker: consumes `task.created` and runs each task to DONE or FAILED.
//!
//! As for the API, [`Worker::build`] connects and [`Worker::run`] works until the shutdown
//! future resolves, so the tests start exactly what production starts. The consumer survives
//! broker restarts: when its channel dies it reconnects with backoff and consumes again, and the
//! broker redelivers what was unacked.

mod job;
mod metrics;
mod process;
mod requeues;
mod retention;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use lapin::options::BasicCancelOptions;
use taskflow_core::amqp::{self, Broker, Supervisor};
use taskflow_core::config::Settings;
use taskflow_core::db;
use taskflow_core::status_bus::StatusPublisher;
use tokio::task::JoinSet;

use crate::metrics::WorkerMetrics;
use crate::process::Context;

pub struct Worker {
    settings: Settings,
    context: Arc<Context>,
    /// Taken by `run` to serve `/metrics`.
    metrics_listener: Option<salvo::conn::tcp::TcpAcceptor>,
    metrics_addr: std::net::SocketAddr,
}

/// An open consumer: its channel and tag.
struct Consuming {
    channel: lapin::Channel,
    tag: String,
}

impl Worker {
    /// Connects to MySQL, RabbitMQ and Redis (retrying as the `*_CONNECT_*` settings say).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.db).await?;
        db::sync_clock(&pool).await?;
        let broker = Broker::connect(&settings.amqp).await?;
        let statuses = StatusPublisher::connect(&settings.redis).await?;
        let address = format!("{}:{}", settings.api.host, settings.worker.metrics_port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding the metrics port {address}"))?;
        let metrics_addr = listener
            .local_addr()
            .context("reading the metrics address")?;
        Ok(Self {
            settings: settings.clone(),
            context: Arc::new(Context {
                starts: process::start_batcher(pool.clone(), settings.worker.prefetch),
                task_lease: settings.recovery.task_lease,
                finishes: process::finish_batcher(
                    pool.clone(),
                    settings.worker.name.clone(),
                    settings.worker.prefetch,
                ),
                pool,
                statuses,
                broker,
                retry: settings.retry,
                publish_timeout: settings.api.publish_timeout,
                requeues: requeues::Requeues::new(settings.worker.max_requeues),
                worker_name: settings.worker.name.clone(),
                metrics: Arc::new(WorkerMetrics::new()),
            }),
            metrics_listener: Some(
                salvo::conn::tcp::TcpAcceptor::try_from(listener)
                    .context("accepting on the metrics port")?,
            ),
            metrics_addr,
        })
    }

    /// Where `/metrics` and `/livez` are served.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.metrics_addr
    }

    /// Consumes until `shutdown` resolves; then stops consuming, gives the tasks in progress
    /// `SHUTDOWN_TIMEOUT_SECONDS` to finish and settle, and closes the connections. A task still
    /// running at the deadline is abandoned unacked: the broker requeues its message once.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let metrics_server = salvo::Server::new(
            self.metrics_listener
                .take()
                .expect("run is called once, and only it takes the listener"),
        );
        let metrics_handle = metrics_server.handle();
        let context = Arc::downgrade(&self.context);
        let live: metrics::Liveness = Arc::new(move || {
            context
                .upgrade()
                .is_some_and(|context| context.starts.is_running() && context.finishes.is_running())
        });
        let metrics_task =
            tokio::spawn(metrics_server.serve(metrics::router(self.context.metrics.clone(), live)));
        tracing::info!(address = %self.metrics_addr, "worker metrics listening");
        let (stop_retention, retention_stopped) = tokio::sync::watch::channel(false);
        let retention_task = self.settings.worker.retention.map(|retention| {
            tokio::spawn(retention::run(
                self.context.pool.clone(),
                retention,
                self.context.metrics.clone(),
                retention_stopped,
            ))
        });
        // The broker sends at most `prefetch` unacked deliveries, which bounds this set.
        let mut in_progress = JoinSet::new();
        // The consumer keeps a connection of its own, apart from the publisher's.
        let mut supervisor = Supervisor::lazy(&self.settings.amqp);
        let mut current: Option<Consuming> = None;

        'consume: loop {
            // A worker asked to stop does not reconnect (and so does not re-declare a queue
            // that is being deleted as it stops).
            if let Some(at) = supervisor.retry_at() {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'consume,
                    () = tokio::time::sleep_until(at.into()) => {}
                }
            }
            let opened = tokio::select! {
                biased;
                () = &mut shutdown => break 'consume,
                opened = self.open_consumer(&mut supervisor) => opened,
            };
            let (consuming, mut consumer) = match opened {
                Ok(opened) => opened,
                Err(err) => {
                    let retry_in = supervisor
                        .retry_at()
                        .map(|at| at.saturating_duration_since(std::time::Instant::now()))
                        .unwrap_or_default();
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = retry_in.as_millis() as u64,
                        "cannot consume; retrying"
                    );
                    continue;
                }
            };
            current = Some(consuming);
            loop {
                tokio::select! {
                    // Shutdown first: a consumer ending at the same moment is not a reason to
                    // reconnect.
                    biased;
                    () = &mut shutdown => break 'consume,
                    Some(joined) = in_progress.join_next(), if !in_progress.is_empty() => log_panic(joined),
                    delivery = consumer.next() => match delivery {
                        Some(Ok(delivery)) => {
                            let context = self.context.clone();
                            in_progress.spawn(async move { process::handle(&context, delivery).await });
                        }
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, "the consumer failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("the broker ended the consumer; reconnecting");
                            break;
                        }
                    },
                }
            }
            if let Some(dead) = current.take() {
                // Best effort, in the background: on a dead connection it fails at once, and on
                // a live one it must not hold up consuming again.
                tokio::spawn(async move {
                    let _ = dead.channel.close(200, "reconnecting".into()).await;
                });
            }
        }

        tracing::info!(
            in_progress = in_progress.len(),
            "worker stopping: no new deliveries; finishing tasks in progress"
        );
        let _ = stop_retention.send(true);
        if let Some(consuming) = &current
            && let Err(err) = consuming
                .channel
                .basic_cancel(consuming.tag.as_str().into(), BasicCancelOptions::default())
                .await
        {
            tracing::warn!(error = %err, "cannot cancel the consumer");
        }
        let drained = tokio::time::timeout(self.settings.worker.shutdown_timeout, async {
            while let Some(joined) = in_progress.join_next().await {
                log_panic(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = in_progress.len(),
                "shutdown deadline reached; abandoning tasks in progress to redelivery"
            );
            in_progress.shutdown().await;
        }
        if let Some(consuming) = current {
            let _ = consuming.channel.close(200, "worker stopping".into()).await;
        }
        supervisor.close("worker stopping").await;
        if let Some(retention_task) = retention_task {
            // It stops between batches; its lock's connection is its own, closed as it ends.
            let _ = retention_task.await;
        }
        self.context.broker.close().await;
        // The batch writers keep their connections until they stop, and closing the pool waits
        // for every connection: let them go first.
        let pool = self.context.pool.clone();
        drop(self.context);
        pool.close().await;
        metrics_handle.stop_graceful(Duration::from_secs(1));
        let _ = metrics_task.await;
        tracing::info!("worker stopped");
        Ok(())
    }

    /// A consumer on a fresh channel of `supervisor`'s connection (reconnecting if need be).
    async fn open_consumer(
        &self,
        supervisor: &mut Supervisor,
    ) -> anyhow::Result<(Consuming, lapin::Consumer)> {
        let tag = format!("{}-{}", self.settings.worker.name, fastrand::u32(..));
        let (channel, consumer) = supervisor
            .open(|channel| async {
                let consumer = amqp::consume(
                    &channel,
                    &self.settings.amqp,
                    self.settings.worker.prefetch,
                    &tag,
                )
                .await?;
                anyhow::Ok((channel, consumer))
            })
            .await?;
        tracing::info!(queue = %self.settings.amqp.queue, prefetch = self.settings.worker.prefetch, "worker consuming");
        Ok((Consuming { channel, tag }, consumer))
    }
}

fn log_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        tracing::error!(error = %err, "a task handler panicked");
    }
}
