//! Prometheus plumbing shared by the API and the worker: each process keeps its metrics in a
//! registry of its own (so several instances in one test process never mix their numbers).

use prometheus::core::Collector;
use prometheus::{Encoder as _, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// Registers `collector` in `registry` and hands it back, so a metrics struct declares each
/// metric once.
pub fn registered<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}

/// The counts of status announcements, which both processes make
/// ([`crate::status_bus::StatusPublisher::announce`]).
#[derive(Clone)]
pub struct Announcements {
    pub transitions: IntCounterVec,
    pub failures: IntCounter,
}

impl Announcements {
    pub fn registered(registry: &Registry) -> Self {
        Self {
            transitions: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "taskflow_task_transitions_total",
                        "Status changes made by this process, by the status entered.",
                    ),
                    &["status"],
                )
                .expect("valid metric"),
            ),
            failures: registered(
                registry,
                IntCounter::new(
                    "taskflow_status_publish_failures_total",
                    "Status changes committed but not announced on Redis.",
                )
                .expect("valid metric"),
            ),
        }
    }
}

/// The registry in Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .expect("encoding metrics");
    String::from_utf8(text).expect("metrics text is UTF-8")
}

/// The `content-type` of [`render`]'s text.
pub fn content_type() -> String {
    TextEncoder::new().format_type().to_owned()
}
