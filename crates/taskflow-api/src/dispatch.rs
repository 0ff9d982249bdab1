//! Getting new tasks stored and their `task.created` messages to the broker: the batched
//! INSERT, the fast path right after its commit (in the background: the commit already made the
//! dispatch certain), the delayed batch clearing of confirmed outbox marks, and the relay that
//! sweeps what the fast path missed and re-dispatches stuck tasks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;
use taskflow_core::amqp::Broker;
use taskflow_core::batch::Batcher;
use taskflow_core::config::RecoverySettings;
use taskflow_core::contract::{StatusEvent, TaskCreated};
use taskflow_core::db;
use taskflow_core::domain::Task;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use crate::metrics::ApiMetrics;
use crate::state::AppState;

/// New tasks inserted per statement, at most, and statements in flight at once: while one is
/// at the database, the next requests gather. One rather than two: at a steady rate a second
/// writer mostly took requests one by one, so one writer makes fewer INSERTs per task at the
/// same create throughput (docs/performance.md).
const INSERT_BATCH: usize = 64;
const INSERT_RUNNERS: usize = 1;
/// Confirmed tasks marked dispatched per statement, at most.
const SENT_BATCH: usize = 512;
/// Dispatches under way at once, at most: past it, a request waits for one to end, so a broker
/// that falls behind slows `POST /tasks` down instead of filling the API's memory.
pub const DISPATCHES_IN_FLIGHT: usize = 1024;
/// Outbox rows and stuck tasks handled per relay pass, at most.
const RELAY_BATCH: u32 = 200;
/// Expired idempotency keys deleted per stuck-task sweep, at most.
const KEY_PRUNE_BATCH: u32 = 1000;

/// Inserts new tasks as requests arrive, in multi-row INSERTs: 64 requests at once cost a few
/// commits, not 64. A request alone is inserted at once.
pub fn insert_batcher(pool: MySqlPool, grace: Duration) -> Batcher<Task, ()> {
    let connections = db::KeptConnections::new(pool);
    Batcher::spawn(INSERT_RUNNERS, INSERT_BATCH, move |tasks: Vec<Task>| {
        let connections = connections.clone();
        async move { db::create_tasks(&connections, &tasks, grace).await }
    })
}

/// A place among the dispatches under way, taken before the commit: a request waits for one
/// (when the broker falls behind) before its task exists, never between its commit and its
/// PENDING announcement — which must reach subscribers before the relay could dispatch the task
/// and the worker announce PROCESSING.
pub struct DispatchSlot(Option<OwnedSemaphorePermit>);

/// Waits for a [`DispatchSlot`]. Once shutdown has begun the slot is empty: the task is then
/// dispatched by the relay.
pub async fn reserve_dispatch(state: &AppState) -> DispatchSlot {
    DispatchSlot(state.dispatches.clone().acquire_owned().await.ok())
}

/// Announces a status change just committed (a new task, an operator's retry) and publishes the
/// task's `task.created` message, in the background (a delayed task has none yet: the relay
/// publishes it once due). The commit made the dispatch certain — the
/// row is due for the relay until the broker confirms the message — so the client's answer does
/// not wait for the confirm. The event goes out before the message, so subscribers see PENDING
/// before the worker's PROCESSING.
pub fn dispatch_after_commit(
    state: &Arc<AppState>,
    slot: DispatchSlot,
    event: StatusEvent,
    message: Option<TaskCreated>,
) {
    let DispatchSlot(Some(permit)) = slot else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        state
            .statuses
            .announce(&event, &state.metrics.announcements)
            .await;
        if let Some(message) = message {
            publish_after_commit(&state, &message).await;
        }
        drop(permit);
    });
}

/// Waits (up to `timeout`) for the dispatches under way to end, and refuses new ones. Those cut
/// short stay due: another replica's relay publishes them once their grace is over, or this
/// one's after a restart.
pub async fn finish_dispatches(state: &AppState, timeout: Duration) {
    let all = DISPATCHES_IN_FLIGHT as u32;
    match tokio::time::timeout(timeout, state.dispatches.acquire_many(all)).await {
        Ok(_) => {}
        Err(_) => tracing::warn!(
            in_flight = DISPATCHES_IN_FLIGHT - state.dispatches.available_permits(),
            "dispatches still under way at shutdown; the outbox relay will publish them"
        ),
    }
    state.dispatches.close();
}

/// Publishes the message of a task just committed. On success the task is queued to be marked
/// dispatched; on failure it stays due, for the relay.
async fn publish_after_commit(state: &AppState, message: &TaskCreated) {
    let id = message.task_id;
    match state
        .broker
        .publish_task(id, &message.to_json(), None, state.settings.publish_timeout)
        .await
    {
        Ok(()) => {
            // The receiver lives as long as the API; if it is gone, the relay republishes the
            // row later, which the idempotent worker shrugs off. The mark to clear is the one
            // the commit wrote: its request time plus the grace.
            let mark = db::DispatchMark {
                task_id: id,
                due_at: message.requested_at + state.recovery.outbox_grace,
            };
            let _ = state.sent.send(mark);
        }
        Err(err) => {
            state.metrics.publish_failures.inc();
            tracing::warn!(
                task_id = %id,
                error = format!("{err:#}"),
                "publish failed; the outbox relay will dispatch the task"
            );
        }
    }
}

/// Marks confirmed tasks dispatched, a fifth of the outbox grace after their confirm, many per
/// statement. A worker clears the mark itself in the statement that starts the task, so by then
/// nearly every mark is gone and the UPDATE finds nothing to write: no row change, no commit to
/// flush. What it does clear is a task still waiting in the queue (behind a backlog, or for a
/// worker that does not clear marks, like the Python one), well before the relay would take it
/// for unpublished. Once every sender is dropped (the API is stopping), what is left is marked at
/// once.
pub async fn mark_sent(
    pool: MySqlPool,
    mut sent: mpsc::UnboundedReceiver<db::DispatchMark>,
    grace: Duration,
) {
    let delay = grace / 5;
    let connection = db::KeptConnections::new(pool);
    let mut waiting: VecDeque<(Instant, db::DispatchMark)> = VecDeque::new();
    let mut arrived = Vec::with_capacity(SENT_BATCH);
    let mut open = true;
    while open || !waiting.is_empty() {
        let next_pass = waiting.front().map(|&(confirmed, _)| confirmed + delay);
        tokio::select! {
            received = sent.recv_many(&mut arrived, SENT_BATCH), if open => {
                open = received > 0;
                let now = Instant::now();
                waiting.extend(arrived.drain(..).map(|id| (now, id)));
            }
            () = tokio::time::sleep_until(next_pass.unwrap_or_else(Instant::now).into()),
                if next_pass.is_some() => {}
        }
        // A pass begins once the oldest task is due and takes every task confirmed at least
        // half the delay ago: passes are half a delay apart at least, whatever the rate.
        let now = Instant::now();
        if open && next_pass.is_none_or(|at| at > now) {
            continue;
        }
        let ripe = waiting.partition_point(|&(confirmed, _)| !open || confirmed + delay / 2 <= now);
        let ripe: Vec<db::DispatchMark> = waiting.drain(..ripe).map(|(_, mark)| mark).collect();
        for batch in ripe.chunks(SENT_BATCH) {
            let marked = connection
                .run(async |conn| db::mark_dispatched(conn, batch).await)
                .await;
            if let Err(err) = marked {
                // Not lost: the relay publishes them again, and the worker ignores duplicates.
                tracing::warn!(
                    tasks = batch.len(),
                    error = format!("{err:#}"),
                    "cannot mark tasks dispatched"
                );
            }
        }
    }
}

/// Every `OUTBOX_SWEEP_INTERVAL_MS`, publishes due outbox rows; now and then, re-dispatches tasks
/// stuck past `TASK_LEASE_SECONDS`. Runs in every API replica: `SKIP LOCKED` splits the work.
pub async fn relay(
    pool: MySqlPool,
    broker: Arc<Broker>,
    recovery: RecoverySettings,
    publish_timeout: Duration,
    metrics: Arc<ApiMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(recovery.sweep_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stuck_every = (recovery.task_lease / 10).max(recovery.sweep_interval);
    let mut last_stuck_sweep: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        if last_stuck_sweep.is_none_or(|at| at.elapsed() >= stuck_every) {
            last_stuck_sweep = Some(Instant::now());
            match db::redispatch_stuck_tasks(&pool, recovery.task_lease, RELAY_BATCH).await {
                Ok(count) if count > 0 => {
                    tracing::warn!(count, "re-dispatching tasks stuck past their lease");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = format!("{err:#}"), "stuck-task sweep failed"),
            }
            // In small batches, so a day's keys never lock the table for long.
            let now = taskflow_core::domain::now_micros();
            if let Err(err) = db::prune_idempotency_keys(&pool, now, KEY_PRUNE_BATCH).await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "pruning idempotency keys failed"
                );
            }
        }
        // A full pass (many tasks due at once) is followed by the next at once, not a tick
        // later: they are published in due order, a batch at a time, until none is left.
        loop {
            let full = relay_pass(&pool, &broker, publish_timeout, &metrics).await;
            if !full || *stop.borrow() {
                break;
            }
        }
    }
}

/// One relay pass; true when it published a full batch, so more may be due.
async fn relay_pass(
    pool: &MySqlPool,
    broker: &Arc<Broker>,
    publish_timeout: Duration,
    metrics: &Arc<ApiMetrics>,
) -> bool {
    let publish = |message: db::OutboxMessage| {
        let broker = broker.clone();
        let metrics = metrics.clone();
        async move {
            broker
                .publish_task(
                    message.task_id,
                    &message.body,
                    message.supersedes,
                    publish_timeout,
                )
                .await?;
            if let Some(run_at) = message.scheduled_for {
                let late = taskflow_core::domain::now_micros() - run_at;
                metrics
                    .scheduled_lag
                    .observe(late.as_seconds_f64().max(0.0));
            }
            Ok(())
        }
    };
    match db::relay_outbox(pool, RELAY_BATCH, publish).await {
        Ok(report) => {
            if report.published > 0 || report.failed > 0 || report.parked > 0 {
                metrics.outbox_relayed.inc_by(report.published as u64);
                metrics.publish_failures.inc_by(report.failed as u64);
                metrics.outbox_parked.inc_by(report.parked as u64);
                tracing::info!(
                    published = report.published,
                    failed = report.failed,
                    parked = report.parked,
                    "outbox relay pass"
                );
            }
            // Failures wait for the next tick: the broker is in trouble.
            report.failed == 0 && report.published + report.parked >= RELAY_BATCH as usize
        }
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "outbox relay pass failed");
            false
        }
    }
}
