//! End-to-end latency at a fixed offered rate, split by where a task waits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ws::DoneWatcher;
use super::{Api, post_task};
use crate::stats::Latency;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyFigures {
    pub offered_per_second: f64,
    pub latency: Latency,
    pub missing: usize,
    /// Where the time went, per task: POST sent → 201 received; 201 → PROCESSING seen on the
    /// WebSocket (the confirmed publish, the broker, the worker's start); PROCESSING seen → DONE
    /// seen (the job and its finish).
    pub stages: Stages,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stages {
    pub created: Latency,
    pub created_to_processing: Latency,
    pub processing_to_done: Latency,
}

/// POST → DONE-on-the-WebSocket latency at a fixed offered rate.
pub async fn end_to_end_latency(
    api: &Api,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<LatencyFigures> {
    let watcher = DoneWatcher::connect(&api.ws_url).await?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = Instant::now() + duration;
    let mut sends = Vec::new();
    while Instant::now() < deadline {
        ticks.tick().await;
        let api = api.clone();
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            post_task(&api).await.map(|id| (id, sent, Instant::now()))
        }));
    }
    let mut sent_at = HashMap::new();
    for send in sends {
        let (id, sent, created) = send.await??;
        sent_at.insert(id, (sent, created));
    }
    let ids: Vec<String> = sent_at.keys().cloned().collect();
    let done = watcher.wait_all(&ids, Duration::from_secs(30)).await;
    let processing = watcher.processing().await;
    let latencies = done
        .iter()
        .map(|(id, at)| at.duration_since(sent_at[id].0))
        .collect();
    // A task's events can overtake its 201 (the worker is fast): those stages count as zero.
    let (mut created, mut to_processing, mut to_done) = (Vec::new(), Vec::new(), Vec::new());
    for (id, &finished) in &done {
        let (sent, answered) = sent_at[id];
        created.push(answered - sent);
        if let Some(&started) = processing.get(id) {
            to_processing.push(started.saturating_duration_since(answered));
            to_done.push(finished.saturating_duration_since(started));
        }
    }
    Ok(LatencyFigures {
        offered_per_second: rate,
        latency: Latency::of(latencies),
        missing: ids.len() - done.len(),
        stages: Stages {
            created: Latency::of(created),
            created_to_processing: Latency::of(to_processing),
            processing_to_done: Latency::of(to_done),
        },
    })
}
