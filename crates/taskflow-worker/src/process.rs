//! One delivery of `task.created`: decode it, move the task PENDING → PROCESSING → DONE/FAILED
//! with conditional updates, announce each change that this delivery made, then settle it.
//!
//! Every step is idempotent: a redelivered or duplicated message for a task that is already
//! finished changes nothing and announces nothing, and of several deliveries racing on one task
//! exactly one makes the terminal transition.

use std::time::Instant;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use sqlx::MySqlPool;
use taskflow_core::contract::{StatusEvent, TaskCreated};
use taskflow_core::db::{self, Transition};
use taskflow_core::domain::{Payload, TaskId, TaskStatus};
use taskflow_core::status_bus::StatusPublisher;
use tracing::Instrument as _;

/// What the worker needs to process a delivery.
pub struct Context {
    pub pool: MySqlPool,
    pub statuses: StatusPublisher,
}

/// How a delivery ended, which decides how it is settled with the broker.
#[derive(Debug)]
enum Outcome {
    /// The task is finished (by this delivery or an earlier one): ack.
    Settled,
    /// The message can never be processed (not JSON, wrong shape, unknown task): reject it
    /// without requeueing, with the reason logged.
    Poison(String),
    /// Something failed that may work later (the database is unreachable): requeue.
    Transient(anyhow::Error),
}

/// Processes one delivery and settles it with the broker. Never panics on bad input.
pub async fn handle(ctx: &Context, delivery: Delivery) {
    let outcome = match TaskCreated::from_json(&delivery.data) {
        Ok(message) => {
            let span = tracing::info_span!("task", task_id = %message.task_id);
            process(ctx, message).instrument(span).await
        }
        Err(err) => Outcome::Poison(format!("message is not a valid task.created: {err}")),
    };
    let settled = match &outcome {
        Outcome::Settled => delivery.ack(BasicAckOptions::default()).await,
        Outcome::Poison(reason) => {
            tracing::warn!(
                reason,
                body = %String::from_utf8_lossy(&delivery.data).chars().take(200).collect::<String>(),
                "dropping a message that cannot be processed"
            );
            delivery.reject(BasicRejectOptions { requeue: false }).await
        }
        Outcome::Transient(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                "processing failed; requeueing the message"
            );
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
        }
    };
    if let Err(err) = settled {
        // The broker redelivers an unsettled message when the channel closes, and processing is
        // idempotent, so this costs a repeat, not a loss.
        tracing::error!(error = %err, ?outcome, "cannot settle the delivery with the broker");
    }
}

async fn process(ctx: &Context, message: TaskCreated) -> Outcome {
    let started = Instant::now();
    let id = message.task_id;
    match db::mark_processing(&ctx.pool, id).await {
        Ok(Transition::Applied { updated_at }) => {
            announce(ctx, id, TaskStatus::Processing, updated_at, None).await;
        }
        // Redelivered after a worker died mid-task, or a duplicate racing with another delivery:
        // finish it; the conditional update below lets only one delivery do so.
        Ok(Transition::Skipped {
            current: TaskStatus::Processing,
        }) => tracing::info!("task already PROCESSING; resuming it"),
        Ok(Transition::Skipped { current }) if current.is_terminal() => {
            tracing::info!(status = %current, "task already finished; nothing to do");
            return Outcome::Settled;
        }
        Ok(Transition::Skipped { current }) => {
            return Outcome::Transient(anyhow::anyhow!(
                "task is {current} after moving it from PENDING"
            ));
        }
        Ok(Transition::NotFound) => return Outcome::Poison(format!("unknown task id {id}")),
        Err(err) => return Outcome::Transient(err),
    }

    let (status, result) = run(&message.payload);
    match db::mark_finished(&ctx.pool, id, status, &result).await {
        Ok(Transition::Applied { updated_at }) => {
            announce(ctx, id, status, updated_at, Some(result)).await;
            tracing::info!(
                from = %TaskStatus::Processing,
                to = %status,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "task finished"
            );
            Outcome::Settled
        }
        Ok(Transition::Skipped { current }) => {
            tracing::info!(status = %current, "task finished by another delivery");
            Outcome::Settled
        }
        Ok(Transition::NotFound) => Outcome::Poison(format!("task {id} disappeared")),
        Err(err) => Outcome::Transient(err),
    }
}

/// The task itself: DONE with the payload's `message`, or FAILED with the reason there is none.
fn run(payload: &serde_json::Value) -> (TaskStatus, String) {
    match Payload::parse(payload.clone()) {
        Ok(payload) => match payload.message() {
            Some(message) => (TaskStatus::Done, message),
            None => (
                TaskStatus::Failed,
                "payload has no `message` field".to_owned(),
            ),
        },
        Err(err) => (TaskStatus::Failed, err.to_string()),
    }
}

/// Publishes a status change. The change is already committed, so a Redis failure is logged and
/// not retried: WebSocket clients resynchronise from the REST API when the relay reconnects.
async fn announce(
    ctx: &Context,
    task_id: TaskId,
    status: TaskStatus,
    updated_at: chrono::DateTime<chrono::Utc>,
    message: Option<String>,
) {
    let event = StatusEvent {
        task_id,
        status,
        updated_at,
        message,
    };
    if let Err(err) = ctx.statuses.publish(&event).await {
        tracing::warn!(status = %status, error = format!("{err:#}"), "status change not announced");
    }
}
