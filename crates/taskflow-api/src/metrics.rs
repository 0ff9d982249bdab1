//! The API's Prometheus metrics, in a registry of its own (so several API instances in one test
//! process never mix their numbers), and `GET /metrics`.
//!
//! Gauges read from MySQL and RabbitMQ (queue depths, oldest PENDING age, outbox backlog) are
//! refreshed at scrape time, each with a short timeout, so they are as fresh as the scrape.

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
};
use salvo::prelude::*;
use taskflow_core::amqp::QueueKind;
use taskflow_core::metrics::{Announcements, registered};

use crate::state::AppState;

const GAUGE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ApiMetrics {
    registry: Registry,
    pub tasks_created: IntCounter,
    pub announcements: Announcements,
    pub publish_failures: IntCounter,
    pub outbox_relayed: IntCounter,
    pub outbox_parked: IntCounter,
    pub request_duration: HistogramVec,
    pub ws_sent: IntCounter,
    pub ws_dropped: IntCounter,
    pub ws_clients: IntGauge,
    queue_messages: IntGaugeVec,
    oldest_pending: prometheus::Gauge,
    oldest_processing: prometheus::Gauge,
    outbox_backlog: IntGauge,
    pub scrape_duration: Histogram,
    pub stats_computed: IntCounter,
    pub scheduled_lag: Histogram,
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        Self {
            tasks_created: registered(&registry, IntCounter::new(
                "taskflow_tasks_created_total",
                "Tasks accepted by POST /tasks.",
            )
            .expect("valid metric")),
            announcements: Announcements::registered(&registry),
            publish_failures: registered(&registry, IntCounter::new(
                "taskflow_publish_failures_total",
                "task.created publishes that failed (left to, or retried by, the outbox relay).",
            )
            .expect("valid metric")),
            stats_computed: registered(&registry, IntCounter::new(
                "taskflow_stats_computed_total",
                "Times GET /stats queried the database (at most once per interval).",
            )
            .expect("valid metric")),
            outbox_relayed: registered(&registry, IntCounter::new(
                "taskflow_outbox_relayed_total",
                "Messages published by the outbox relay.",
            )
            .expect("valid metric")),
            outbox_parked: registered(&registry, IntCounter::new(
                "taskflow_outbox_parked_total",
                "Due tasks the relay could not make into a message, set FAILED with the reason.",
            )
            .expect("valid metric")),
            request_duration: registered(&registry, HistogramVec::new(
                HistogramOpts::new(
                    "taskflow_http_request_duration_seconds",
                    "HTTP request latency by route.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["method", "route", "status"],
            )
            .expect("valid metric")),
            ws_sent: registered(&registry, IntCounter::new(
                "taskflow_websocket_messages_sent_total",
                "Messages sent to WebSocket clients.",
            )
            .expect("valid metric")),
            ws_dropped: registered(&registry, IntCounter::new(
                "taskflow_websocket_messages_dropped_total",
                "Events slow WebSocket clients missed (each such client was told to resync).",
            )
            .expect("valid metric")),
            ws_clients: registered(&registry, IntGauge::new("taskflow_websocket_clients", "WebSocket clients connected.")
                .expect("valid metric")),
            queue_messages: registered(&registry, IntGaugeVec::new(
                Opts::new(
                    "taskflow_queue_messages",
                    "Messages ready in a queue, read from the broker.",
                ),
                &["queue"],
            )
            .expect("valid metric")),
            oldest_pending: registered(&registry, prometheus::Gauge::new(
                "taskflow_oldest_pending_task_age_seconds",
                "Age of the oldest PENDING task (0 when none): the signal to scale workers on.",
            )
            .expect("valid metric")),
            oldest_processing: registered(&registry, prometheus::Gauge::new(
                "taskflow_oldest_processing_task_age_seconds",
                "Time since the longest-running PROCESSING task last changed (0 when none): a stuck task.",
            )
            .expect("valid metric")),
            outbox_backlog: registered(&registry, IntGauge::new(
                "taskflow_outbox_backlog",
                "Tasks still due for dispatch: neither started by a worker nor marked after the broker's confirm.",
            )
            .expect("valid metric")),
            scrape_duration: registered(&registry, Histogram::with_opts(HistogramOpts::new(
                "taskflow_metrics_scrape_duration_seconds",
                "Time to refresh the gauges read from MySQL and RabbitMQ.",
            ))
            .expect("valid metric")),
            scheduled_lag: registered(&registry, Histogram::with_opts(HistogramOpts::new(
                "taskflow_scheduled_dispatch_lag_seconds",
                "How late delayed tasks are published: the broker's confirm time minus run_at.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]))
            .expect("valid metric")),
            registry,
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        taskflow_core::metrics::render(&self.registry)
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn router() -> Router {
    Router::with_path("metrics").get(scrape)
}

/// Prometheus metrics, in the text exposition format.
#[endpoint(
    tags("operations"),
    responses((status_code = 200, description = "Prometheus text format.", body = String, content_type = "text/plain"))
)]
async fn scrape(depot: &mut Depot, res: &mut Response) {
    let state = AppState::from_depot(depot);
    let timer = state.metrics.scrape_duration.start_timer();
    refresh_gauges(state).await;
    timer.observe_duration();
    res.add_header("content-type", taskflow_core::metrics::content_type(), true)
        .expect("a valid header");
    res.render(state.metrics.render());
}

async fn refresh_gauges(state: &AppState) {
    let metrics = &state.metrics;
    let pool = &state.pool;
    let (oldest, processing, backlog, work, dead) = tokio::join!(
        tokio::time::timeout(
            GAUGE_TIMEOUT,
            taskflow_core::db::stats::oldest_pending_age(pool)
        ),
        tokio::time::timeout(
            GAUGE_TIMEOUT,
            taskflow_core::db::stats::oldest_processing_age(pool)
        ),
        tokio::time::timeout(
            GAUGE_TIMEOUT,
            taskflow_core::db::stats::outbox_backlog(pool)
        ),
        tokio::time::timeout(GAUGE_TIMEOUT, state.broker.queue_depth(QueueKind::Work)),
        tokio::time::timeout(
            GAUGE_TIMEOUT,
            state.broker.queue_depth(QueueKind::DeadLetter)
        ),
    );
    // A gauge that cannot be read keeps its last value; /healthz reports the outage.
    if let Ok(Ok(age)) = oldest {
        metrics.oldest_pending.set(age.unwrap_or(0.0));
    }
    if let Ok(Ok(age)) = processing {
        metrics.oldest_processing.set(age.unwrap_or(0.0));
    }
    if let Ok(Ok(backlog)) = backlog {
        metrics.outbox_backlog.set(backlog as i64);
    }
    if let Ok(Ok(depth)) = work {
        metrics
            .queue_messages
            .with_label_values(&["work"])
            .set(i64::from(depth));
    }
    if let Ok(Ok(depth)) = dead {
        metrics
            .queue_messages
            .with_label_values(&["dead_letter"])
            .set(i64::from(depth));
    }
}
