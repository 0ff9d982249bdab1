//! One log line and one latency observation per request, with the request id.
//!
//! `RequestId` (before this hoop) gives every request an `x-request-id` (kept if the client sent
//! one), echoed in the response; this hoop runs the rest of the chain inside a span carrying it,
//! so every log line of the request has it.

use std::time::Instant;

use salvo::prelude::*;
use salvo::request_id::RequestIdDepotExt as _;
use tracing::Instrument as _;

use crate::state::AppState;

#[handler]
pub async fn observe(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let started = Instant::now();
    let request_id = depot.request_id().unwrap_or_default().to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", %request_id, %method, %path);
    ctrl.call_next(req, depot, res)
        .instrument(span.clone())
        .await;

    let status = res.status_code.unwrap_or(StatusCode::OK);
    let elapsed = started.elapsed();
    // The route pattern, not the path, keeps the label set small (`/tasks/{task_id}`).
    let route = match req.matched_path() {
        "" => "unmatched".to_owned(),
        matched => format!("/{}", matched.trim_start_matches('/')),
    };
    if let Ok(state) = depot.get_typed::<std::sync::Arc<AppState>>() {
        state
            .metrics
            .request_duration
            .with_label_values(&[method.as_str(), &route, status.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
}
