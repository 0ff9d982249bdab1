//! Dispatch lag of delayed tasks: many created with one `run_at`, all due in the same second;
//! how late the relay published them (the API's lag histogram) and the workers started them.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::Serialize;
use sqlx::MySqlPool;

use super::Api;
use crate::stats::Latency;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DelayedFigures {
    pub tasks: usize,
    /// Tasks whose POST answered after their `run_at` (they ran at once): the lead was short.
    pub created_late: usize,
    /// Publish time − `run_at`, p99, as the upper bound of its bucket in the API's
    /// `taskflow_scheduled_dispatch_lag_seconds` (None when the histogram is not reachable).
    pub publish_lag_p99_at_most_ms: Option<f64>,
    /// Start time (the attempt's) − `run_at`: includes the workers' time through the backlog.
    pub start_lag: Latency,
}

/// Creates `tasks` tasks (64 at a time) due at one instant a little after they can all be
/// created, waits until each is finished, and measures how late they were published and started.
pub async fn delayed_dispatch_lag(
    api: &Api,
    admin: &MySqlPool,
    database: &str,
    tasks: usize,
) -> anyhow::Result<DelayedFigures> {
    let metrics_url = api.tasks_url.replace("/tasks", "/metrics");
    let before = scrape_lag(api, &metrics_url).await;
    let lead = Duration::from_secs(3) + Duration::from_millis(2 * tasks as u64);
    let run_at = chrono::Utc::now() + lead;
    let created = futures_util::stream::iter(0..tasks)
        .map(|_| async {
            let response = api
                .http
                .post(&api.tasks_url)
                .json(&serde_json::json!({
                    "title": api.title,
                    "payload": {"message": "bench"},
                    "run_at": run_at.to_rfc3339(),
                }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == reqwest::StatusCode::CREATED,
                "POST /tasks answered {}",
                response.status()
            );
            Ok(chrono::Utc::now() > run_at)
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<bool>>>()?;
    let created_late = created.iter().filter(|late| **late).count();
    let deadline = tokio::time::Instant::now() + lead + Duration::from_secs(120);
    let lags: Vec<i64> = loop {
        let lags: Vec<Option<i64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT TIMESTAMPDIFF(MICROSECOND, run_at, attempt_started_at) FROM `{database}`.tasks \
             WHERE title = ? AND run_at IS NOT NULL AND status IN ('DONE', 'FAILED')"
        )))
        .bind(&api.title)
        .fetch_all(admin)
        .await
        .context("reading the delayed tasks' start times")?;
        if lags.len() >= tasks {
            break lags.into_iter().flatten().collect();
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} of {tasks} delayed tasks finished in time",
            lags.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = scrape_lag(api, &metrics_url).await;
    let publish_lag_p99_at_most_ms = before
        .zip(after)
        .and_then(|(before, after)| p99_bound(&before, &after))
        .map(|seconds| seconds * 1000.0);
    Ok(DelayedFigures {
        tasks,
        created_late,
        publish_lag_p99_at_most_ms,
        start_lag: Latency::of(
            lags.into_iter()
                .map(|micros| Duration::from_micros(micros.max(0) as u64))
                .collect(),
        ),
    })
}

/// The lag histogram's cumulative buckets (upper bound in seconds, count).
async fn scrape_lag(api: &Api, url: &str) -> Option<Vec<(f64, f64)>> {
    let text = api.http.get(url).send().await.ok()?.text().await.ok()?;
    let prefix = "taskflow_scheduled_dispatch_lag_seconds_bucket{le=\"";
    let buckets = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(prefix)?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect::<Vec<_>>();
    (!buckets.is_empty()).then_some(buckets)
}

/// The smallest bucket bound under which 99% of the observations between two scrapes fall.
fn p99_bound(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .zip(before)
        .map(|(&(bound, later), &(_, earlier))| (bound, later - earlier))
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    counts
        .into_iter()
        .find(|&(_, count)| count >= 0.99 * total)
        .map(|(bound, _)| bound)
}
