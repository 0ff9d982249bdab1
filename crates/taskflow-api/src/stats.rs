//! `GET /stats`: counts by status and what finished per minute over the last hour, for the
//! dashboard's counters and chart — answered from indexes, not by reading every row.

use salvo::prelude::*;
use taskflow_core::db::stats;
use taskflow_core::domain::{TaskStatus, now_micros};

use crate::error::{ApiError, ErrorEnvelope};
use crate::schema::{Counts, MinuteCount, Stats};
use crate::state::AppState;

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
async fn get_stats(depot: &mut Depot) -> Result<Json<Stats>, ApiError> {
    let state = AppState::from_depot(depot);
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
    Ok(Json(Stats {
        counts: totals,
        finished_per_minute: minutes
            .into_iter()
            .map(|(minute, done, failed)| MinuteCount {
                minute,
                done,
                failed,
            })
            .collect(),
    }))
}
