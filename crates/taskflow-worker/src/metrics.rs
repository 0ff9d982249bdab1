//! The worker's Prometheus metrics, in a registry of its own, served with `/livez` on
//! `WORKER_METRICS_PORT`.

use std::sync::Arc;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use salvo::prelude::*;
use taskflow_core::metrics::{Announcements, registered};

/// Buckets from 1 ms to 5 min: queue waits grow long when workers fall behind.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0,
];

pub struct WorkerMetrics {
    registry: Registry,
    pub announcements: Announcements,
    pub retries: IntCounter,
    pub dead_lettered: IntCounterVec,
    pub handler_panics: IntCounter,
    /// Deliveries put back for immediate redelivery.
    pub requeues: IntCounter,
    /// Deliveries parked after too many immediate requeues in a row.
    pub parked: IntCounter,
    /// Duplicate deliveries acked unrun: another delivery holds their task's attempt.
    pub held: IntCounter,
    /// Finishes and retries rejected: a later attempt had taken their task over.
    pub fenced: IntCounter,
    /// `queue_wait`, `run` and `end_to_end`, by outcome.
    pub durations: HistogramVec,
    /// Rows deleted by retention, by table.
    pub pruned: IntCounterVec,
}

impl WorkerMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        Self {
            announcements: Announcements::registered(&registry),
            retries: registered(&registry, IntCounter::new("taskflow_task_retries_total", "Transient failures scheduled for another attempt.")
                .expect("valid metric")),
            dead_lettered: registered(&registry, IntCounterVec::new(
                Opts::new("taskflow_tasks_dead_lettered_total", "Messages sent to the dead-letter queue, by reason (poison, exhausted)."),
                &["reason"],
            )
            .expect("valid metric")),
            handler_panics: registered(&registry, IntCounter::new(
                "taskflow_handler_panics_total",
                "Deliveries whose processing panicked; each is retried like a transient failure.",
            )
            .expect("valid metric")),
            requeues: registered(&registry, IntCounter::new(
                "taskflow_deliveries_requeued_total",
                "Deliveries put back for immediate redelivery because what they had to hand over could not be.",
            )
            .expect("valid metric")),
            parked: registered(&registry, IntCounter::new(
                "taskflow_deliveries_parked_total",
                "Deliveries parked in <queue>.parked after WORKER_MAX_REQUEUES immediate requeues in a row.",
            )
            .expect("valid metric")),
            held: registered(&registry, IntCounter::new(
                "taskflow_deliveries_held_total",
                "Duplicate deliveries acked without running their task: another delivery holds its current attempt.",
            )
            .expect("valid metric")),
            fenced: registered(&registry, IntCounter::new(
                "taskflow_attempts_fenced_total",
                "Finishes and retries rejected because a later attempt had taken the task over.",
            )
            .expect("valid metric")),
            durations: registered(&registry, HistogramVec::new(
                HistogramOpts::new(
                    "taskflow_task_duration_seconds",
                    "Task timings: phase=queue_wait (created to PROCESSING), run (PROCESSING to terminal), end_to_end (created to terminal).",
                )
                .buckets(SECONDS_BUCKETS.to_vec()),
                &["phase"],
            )
            .expect("valid metric")),
            pruned: registered(&registry, IntCounterVec::new(
                Opts::new("taskflow_retention_pruned_total", "Rows deleted past TASK_RETENTION, by table (tasks, task_attempts, idempotency_keys)."),
                &["table"],
            )
            .expect("valid metric")),
            registry,
        }
    }

    pub fn record_pruned(&self, pruned: &taskflow_core::db::Pruned) {
        for (table, rows) in [
            ("tasks", pruned.tasks),
            ("task_attempts", pruned.attempts),
            ("idempotency_keys", pruned.keys),
        ] {
            self.pruned.with_label_values(&[table]).inc_by(rows);
        }
    }

    pub fn observe(&self, phase: &str, seconds: f64) {
        self.durations
            .with_label_values(&[phase])
            .observe(seconds.max(0.0));
    }

    pub fn render(&self) -> String {
        taskflow_core::metrics::render(&self.registry)
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether the worker can still finish what it takes (its batch writers run).
pub type Liveness = Arc<dyn Fn() -> bool + Send + Sync>;

/// `/metrics` and `/livez` for the worker.
pub fn router(metrics: Arc<WorkerMetrics>, live: Liveness) -> Router {
    Router::new()
        .hoop(salvo::affix_state::inject(metrics).inject(live))
        .push(Router::with_path("metrics").get(scrape))
        .push(Router::with_path("livez").get(livez))
}

#[handler]
async fn scrape(depot: &mut Depot, res: &mut Response) {
    let metrics = depot
        .get_typed::<Arc<WorkerMetrics>>()
        .expect("metrics are injected");
    res.add_header("content-type", taskflow_core::metrics::content_type(), true)
        .expect("a valid header");
    res.render(metrics.render());
}

/// 200 while the worker can finish tasks; 503 once a batch writer has stopped, so the
/// orchestrator restarts a process that would otherwise take deliveries it cannot finish.
#[handler]
async fn livez(depot: &mut Depot, res: &mut Response) {
    let live = depot.get_typed::<Liveness>().expect("liveness is injected");
    if live() {
        res.render("ok");
    } else {
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
        res.render("a batch writer has stopped");
    }
}
