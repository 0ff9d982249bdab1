//! One delivery of `task.created`: decode it, run the task through its attempt, announce each
//! status change this delivery made, and settle the delivery with the broker.
//!
//! Every step is idempotent: a redelivered or duplicated message for a finished task changes
//! nothing and announces nothing, and of several deliveries racing on one task exactly one makes
//! the terminal transition. Failures are classified: poison messages are dead-lettered at once;
//! transient failures are retried through RabbitMQ with exponential backoff and jitter (never by
//! sleeping here, which would hold a prefetch slot) and, past `RETRY_MAX_ATTEMPTS`, fail the task
//! and are dead-lettered with their history.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use futures_util::FutureExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use sqlx::MySqlPool;
use taskflow_core::amqp::{Broker, headers};
use taskflow_core::batch::Batcher;
use taskflow_core::config::RetrySettings;
use taskflow_core::contract::{StatusEvent, TaskCreated};
use taskflow_core::db::{self, AttemptRecord, Finish, Start, Started, Transition};
use taskflow_core::domain::{TaskId, TaskStatus};
use taskflow_core::status_bus::StatusPublisher;
use tracing::Instrument as _;

use crate::job;
use crate::metrics::WorkerMetrics;
use crate::requeues::{Requeues, fnv1a};

/// What the worker needs to process a delivery.
pub struct Context {
    pub pool: MySqlPool,
    /// Starts attempts, many per transaction when deliveries arrive together.
    pub starts: Batcher<Start, Started>,
    /// `TASK_LEASE_SECONDS`: how long an attempt belongs to its holder without a redelivery.
    pub task_lease: std::time::Duration,
    /// Finishes attempts, many per transaction when they end together.
    pub finishes: Batcher<Finish, Transition>,
    pub statuses: StatusPublisher,
    pub broker: Broker,
    pub retry: RetrySettings,
    /// How long a retry or a dead letter waits for the broker's confirm (`PUBLISH_TIMEOUT_MS`).
    pub publish_timeout: std::time::Duration,
    /// Immediate requeues of the deliveries this worker put back, so none comes back forever.
    pub requeues: Requeues,
    pub worker_name: String,
    pub metrics: Arc<WorkerMetrics>,
}

/// How processing a delivery ended.
#[derive(Debug)]
enum Outcome {
    /// The task is finished (by this delivery or an earlier one).
    Settled,
    /// The message can never be processed: not JSON, wrong shape, unknown task.
    Poison(String),
    /// Something failed that may work later: a dependency unreachable, a timeout, the job's own
    /// transient error.
    Transient(anyhow::Error),
}

/// How the delivery is settled with the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    /// Put it back for immediate redelivery: used only when the broker or the database could not
    /// take what this delivery had to hand over (a retry, a dead letter, a FAILED status).
    Requeue,
}

/// Processes one delivery and settles it. Never panics on bad input.
pub async fn handle(ctx: &Context, delivery: Delivery) {
    let attempt = headers::attempt(delivery.properties.headers().as_ref());
    // The task's attempt this delivery holds, once it holds one: a retry it schedules follows
    // that attempt, so the retry may take it over.
    let held = AtomicU32::new(0);
    let (task_id, outcome) = match TaskCreated::from_json(&delivery.data) {
        Ok(message) => {
            let id = message.task_id;
            let start = Start {
                task_id: id,
                redelivered: delivery.redelivered
                    || headers::is_redelivery(delivery.properties.headers().as_ref()),
                supersedes: headers::supersedes(delivery.properties.headers().as_ref()),
                lease: ctx.task_lease,
            };
            let span = tracing::info_span!("task", task_id = %id, attempt);
            // A panic must not end this handler before it settles the delivery: the broker
            // would hold the unsettled delivery, and its prefetch slot, until the channel
            // closes. A panic is treated as a transient failure, so its retries are bounded.
            let processed = std::panic::AssertUnwindSafe(process(ctx, message, start, &held))
                .catch_unwind()
                .instrument(span)
                .await;
            let outcome = processed.unwrap_or_else(|panic| {
                ctx.metrics.handler_panics.inc();
                let reason = panic_message(panic.as_ref());
                tracing::error!(task_id = %id, %reason, "processing the task panicked");
                Outcome::Transient(anyhow::anyhow!("processing panicked: {reason}"))
            });
            (Some(id), outcome)
        }
        Err(err) => (
            None,
            Outcome::Poison(format!("not a valid task.created message: {err}")),
        ),
    };
    let span = tracing::info_span!(
        "settle",
        task_id = task_id.map(|id| id.to_string()),
        attempt
    );
    let settle = settle(ctx, &delivery, task_id, attempt, outcome, held.into_inner())
        .instrument(span)
        .await;
    let key = task_id.map_or_else(
        || format!("body:{:016x}", fnv1a(&delivery.data)),
        |id| id.to_string(),
    );
    let settle = match settle {
        Settle::Ack => {
            ctx.requeues.forget(&key);
            Settle::Ack
        }
        Settle::Requeue if ctx.requeues.count(&key) > ctx.requeues.max => {
            park(ctx, &delivery, attempt, &key).await
        }
        Settle::Requeue => Settle::Requeue,
    };
    let result = match settle {
        Settle::Ack => delivery.ack(BasicAckOptions::default()).await,
        Settle::Requeue => {
            ctx.metrics.requeues.inc();
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(err) = result {
        // The broker redelivers an unsettled message once the channel closes, and processing
        // is idempotent, so this costs a repeat, not a loss.
        tracing::warn!(task_id = task_id.map(|id| id.to_string()), error = %err, ?settle, "cannot settle the delivery");
    }
}

/// Parks a delivery that came back too often: it is kept with its reason in the parking queue
/// and acked, so it stops taking the worker's time. If even that fails it is requeued.
async fn park(ctx: &Context, delivery: &Delivery, attempt: u32, key: &str) -> Settle {
    let reason = format!(
        "requeued {} times in a row: what it had to hand over (a retry, a dead letter or a \
         FAILED status) could not be",
        ctx.requeues.max
    );
    let errors = headers::errors(delivery.properties.headers().as_ref());
    let parked = ctx
        .broker
        .park(
            &delivery.data,
            headers::build(attempt, &errors, Some(&reason)),
            ctx.publish_timeout,
        )
        .await;
    match parked {
        Ok(()) => {
            ctx.metrics.parked.inc();
            ctx.requeues.forget(key);
            tracing::error!(%reason, "parked the delivery");
            Settle::Ack
        }
        Err(err) => {
            tracing::error!(%reason, error = format!("{err:#}"), "cannot park the delivery; requeueing");
            Settle::Requeue
        }
    }
}

/// Batch writers in flight at once, for the starts and for the finishes each: while one is at
/// the database, the next batch gathers. One rather than two: a steady stream then makes larger
/// batches, which cost less CPU per task at the same latency (docs/performance.md).
const BATCH_RUNNERS: usize = 1;
/// Tasks per batch at most (a worker never holds more than `WORKER_PREFETCH` anyway): keeps
/// statements far from MySQL's placeholder limit and row locks short.
const MAX_BATCH: usize = 64;

/// Starts the attempts of deliveries that arrive together in one transaction.
pub fn start_batcher(pool: MySqlPool, prefetch: u16) -> Batcher<Start, Started> {
    let connections = db::KeptConnections::new(pool);
    Batcher::spawn(
        BATCH_RUNNERS,
        usize::from(prefetch).min(MAX_BATCH),
        move |starts: Vec<Start>| {
            let connections = connections.clone();
            async move { db::start_attempts(&connections, &starts).await }
        },
    )
}

/// Finishes the attempts that end together in one transaction.
pub fn finish_batcher(
    pool: MySqlPool,
    worker: String,
    prefetch: u16,
) -> Batcher<Finish, Transition> {
    let worker: Arc<str> = worker.into();
    let connections = db::KeptConnections::new(pool);
    Batcher::spawn(
        BATCH_RUNNERS,
        usize::from(prefetch).min(MAX_BATCH),
        move |finishes: Vec<Finish>| {
            let connections = connections.clone();
            let worker = worker.clone();
            async move { db::finish_attempts(&connections, &worker, &finishes).await }
        },
    )
}

async fn process(ctx: &Context, message: TaskCreated, start: Start, held: &AtomicU32) -> Outcome {
    let started = Instant::now();
    let id = message.task_id;
    let (attempt, started_at) = match ctx.starts.call(start).await {
        Ok(Started::Attempt {
            attempt,
            from_pending,
            updated_at,
        }) => {
            if from_pending {
                ctx.metrics.observe(
                    "queue_wait",
                    seconds_since(message.requested_at, updated_at),
                );
                announce(ctx, id, TaskStatus::Processing, updated_at, attempt, None).await;
            } else {
                tracing::warn!(
                    attempt,
                    redelivered = start.redelivered,
                    "taking over a task whose earlier attempt was abandoned"
                );
            }
            held.store(attempt, Ordering::Relaxed);
            (attempt, updated_at)
        }
        Ok(Started::Skipped(status)) => {
            tracing::info!(%status, "task not for this delivery (finished, or retried); nothing to do");
            return Outcome::Settled;
        }
        Ok(Started::Held { attempt }) => {
            ctx.metrics.held.inc();
            tracing::info!(
                holder = attempt,
                "a duplicate delivery: another delivery holds the task's attempt; not running it again"
            );
            return Outcome::Settled;
        }
        Ok(Started::NotFound) => return Outcome::Poison(format!("unknown task id {id}")),
        Err(err) => return Outcome::Transient(err),
    };

    let record = AttemptRecord {
        attempt,
        worker: &ctx.worker_name,
        started_at,
    };
    let (status, result) = match job::run(&message.payload, attempt) {
        Ok(finished) => finished,
        Err(transient) => {
            match db::record_retry(&ctx.pool, id, record, &transient.0).await {
                Ok(true) => {}
                Ok(false) => {
                    fenced(ctx, attempt);
                    return Outcome::Settled;
                }
                // Retried anyway: the database may be what failed, and the next attempt's
                // start decides.
                Err(err) => tracing::warn!(
                    error = format!("{err:#}"),
                    "cannot record the failed attempt"
                ),
            }
            return Outcome::Transient(transient.into());
        }
    };
    let finish = Finish {
        task_id: id,
        attempt,
        started_at,
        outcome: status,
        message: result.clone(),
    };
    match ctx.finishes.call(finish).await {
        Ok(Transition::Applied { updated_at }) => {
            ctx.metrics.observe("run", started.elapsed().as_secs_f64());
            ctx.metrics.observe(
                "end_to_end",
                seconds_since(message.requested_at, updated_at),
            );
            announce(ctx, id, status, updated_at, attempt, Some(result)).await;
            tracing::info!(
                from = %TaskStatus::Processing,
                to = %status,
                task_attempt = attempt,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "task finished"
            );
            Outcome::Settled
        }
        Ok(Transition::Skipped { current }) => {
            tracing::info!(status = %current, "task finished by another delivery");
            Outcome::Settled
        }
        Ok(Transition::Fenced { .. }) => {
            fenced(ctx, attempt);
            Outcome::Settled
        }
        Ok(Transition::NotFound) => Outcome::Poison(format!("task {id} disappeared")),
        Err(err) => Outcome::Transient(err),
    }
}

/// A later attempt took the task over while this one ran: its result is history only, and the
/// holder of the current attempt settles the task.
fn fenced(ctx: &Context, attempt: u32) {
    ctx.metrics.fenced.inc();
    tracing::warn!(
        task_attempt = attempt,
        "a later attempt took the task over; this attempt's result is rejected"
    );
}

async fn settle(
    ctx: &Context,
    delivery: &Delivery,
    task_id: Option<TaskId>,
    attempt: u32,
    outcome: Outcome,
    held: u32,
) -> Settle {
    let mut errors = headers::errors(delivery.properties.headers().as_ref());
    match outcome {
        Outcome::Settled => Settle::Ack,
        Outcome::Poison(reason) => {
            tracing::warn!(%reason, body = %preview(&delivery.data), "dead-lettering a message that cannot be processed");
            dead_letter(ctx, &delivery.data, attempt, &errors, &reason, "poison").await
        }
        Outcome::Transient(err) => {
            let error = format!("{err:#}");
            errors.push(format!("attempt {attempt}: {error}"));
            if attempt < ctx.retry.max_attempts {
                let next = attempt + 1;
                let delay = ctx.retry.backoff().jittered(attempt, fastrand::f64());
                let headers = headers::build(next, &errors, None);
                // The retry follows the attempt this delivery held; holding none, its start
                // failed, maybe after taking effect, so the retry counts as a redelivery.
                let headers = if held > 0 {
                    headers::superseding(headers, held)
                } else {
                    headers::redelivery(headers)
                };
                match ctx
                    .broker
                    .publish_retry(&delivery.data, headers, next, delay, ctx.publish_timeout)
                    .await
                {
                    Ok(()) => {
                        ctx.metrics.retries.inc();
                        tracing::warn!(%error, next_attempt = next, delay_ms = delay.as_millis() as u64, "transient failure; retry scheduled");
                        Settle::Ack
                    }
                    Err(publish) => {
                        tracing::error!(%error, publish_error = format!("{publish:#}"), "transient failure and the retry cannot be scheduled; requeueing");
                        Settle::Requeue
                    }
                }
            } else {
                let reason = format!("gave up after {attempt} attempts: {error}");
                give_up(ctx, task_id, &delivery.data, attempt, &errors, &reason).await
            }
        }
    }
}

/// Attempts are exhausted: the message goes to the dead-letter queue, then the task becomes
/// FAILED with the reason. In that order, so the FAILED row never stands without its dead letter:
/// if the dead letter is not confirmed the delivery is requeued with the task untouched, and if
/// the FAILED write fails the redelivery dead-letters again (a duplicate, never a loss).
async fn give_up(
    ctx: &Context,
    task_id: Option<TaskId>,
    body: &[u8],
    attempt: u32,
    errors: &[String],
    reason: &str,
) -> Settle {
    tracing::error!(%reason, "task failed for good; dead-lettering its message");
    if dead_letter(ctx, body, attempt, errors, reason, "exhausted").await == Settle::Requeue {
        return Settle::Requeue;
    }
    if let Some(id) = task_id {
        match db::fail_task(&ctx.pool, id, reason).await {
            Ok(Transition::Applied { updated_at }) => {
                announce(
                    ctx,
                    id,
                    TaskStatus::Failed,
                    updated_at,
                    attempt,
                    Some(reason.to_owned()),
                )
                .await;
            }
            Ok(Transition::Skipped { .. } | Transition::Fenced { .. } | Transition::NotFound) => {}
            Err(err) => {
                tracing::error!(%reason, error = format!("{err:#}"), "dead-lettered but cannot mark the task FAILED; requeueing");
                return Settle::Requeue;
            }
        }
    }
    Settle::Ack
}

async fn dead_letter(
    ctx: &Context,
    body: &[u8],
    attempt: u32,
    errors: &[String],
    reason: &str,
    kind: &str,
) -> Settle {
    match ctx
        .broker
        .dead_letter(
            body,
            headers::build(attempt, errors, Some(reason)),
            ctx.publish_timeout,
        )
        .await
    {
        Ok(()) => {
            ctx.metrics.dead_lettered.with_label_values(&[kind]).inc();
            Settle::Ack
        }
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "cannot dead-letter the message; requeueing"
            );
            Settle::Requeue
        }
    }
}

/// What a panic said, when it said it with a string (as `panic!` and `expect` do).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// Announces a status change this delivery made.
async fn announce(
    ctx: &Context,
    task_id: TaskId,
    status: TaskStatus,
    updated_at: chrono::DateTime<chrono::Utc>,
    attempt: u32,
    message: Option<String>,
) {
    let event = StatusEvent {
        message,
        attempt: Some(attempt),
        ..StatusEvent::new(task_id, status, updated_at)
    };
    ctx.statuses
        .announce(&event, &ctx.metrics.announcements)
        .await;
}

fn seconds_since(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> f64 {
    (to - from).as_seconds_f64()
}
