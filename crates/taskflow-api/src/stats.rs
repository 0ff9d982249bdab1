//! `GET /stats`: counts by status and what finished per minute over the last hour, for the
//! dashboard's counters and chart — answered from indexes, and computed at most once per
//! [`STATS_INTERVAL`] per API process, however many dashboards ask.

use std::sync::Arc;
use std::time::{Duration, Instant};

use salvo::prelude::*;
use taskflow_core::db::stats;
use taskflow_core::domain::{TaskStatus, now_micros};

use crate::error::{ApiError, ErrorEnvelope};
use crate::schema::{Counts, MinuteCount, Stats};
use crate::state::AppState;

/// How long one computation of the statistics answers every request. Each open dashboard asks
/// on its own timer; with the cache, a hundred of them cost the database what one does.
/// (The `cache-control` header of the answer says the same.)
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The latest statistics and when they were computed. The lock is held while they are
/// recomputed, so requests that arrive meanwhile wait for that one query instead of each
/// starting their own.
#[derive(Default)]
pub struct StatsCache {
    latest: tokio::sync::Mutex<Option<(Instant, Arc<Stats>)>>,
}

pub fn router() -> Router {
    Router::with_path("stats").get(get_stats)
}

/// Task counts per status, and tasks finished per minute (DONE vs FAILED) over the last hour.
#[endpoint(
    tags("tasks"),
    responses(
        (status_code = 401, description = "Reads need the token (API_TOKEN_READS).", body = ErrorEnvelope),
        (status_code = 503, description = "The database cannot be reached.", body = ErrorEnvelope),
    )
)]
async fn get_stats(depot: &mut Depot, response: &mut Response) -> Result<Json<Stats>, ApiError> {
    let state = AppState::from_depot(depot);
    let mut latest = state.stats.latest.lock().await;
    let stats = match &*latest {
        Some((at, stats)) if at.elapsed() < STATS_INTERVAL => Arc::clone(stats),
        _ => {
            let stats = Arc::new(compute(state).await?);
            state.metrics.stats_computed.inc();
            *latest = Some((Instant::now(), Arc::clone(&stats)));
            stats
        }
    };
    drop(latest);
    // Browsers may reuse the answer for as long as the server would.
    response.headers_mut().insert(
        salvo::http::header::CACHE_CONTROL,
        salvo::http::HeaderValue::from_static("private, max-age=2"),
    );
    Ok(Json(Stats::clone(&stats)))
}

async fn compute(state: &AppState) -> Result<Stats, ApiError> {
    let since = now_micros() - chrono::Duration::hours(1);
    let (counts, minutes) = tokio::try_join!(
        stats::count_by_status(&state.pool),
        stats::finished_per_minute(&state.pool, since),
    )?;
    let mut totals = Counts::default();
    for (status, count) in counts {
        match status {
            TaskStatus::Pending => totals.pending = count,
            TaskStatus::Processing => totals.processing = count,
            TaskStatus::Done => totals.done = count,
            TaskStatus::Failed => totals.failed = count,
        }
    }
    Ok(Stats {
        counts: totals,
        finished_per_minute: minutes
            .into_iter()
            .map(|(minute, done, failed)| MinuteCount {
                minute,
                done,
                failed,
            })
            .collect(),
    })
}
