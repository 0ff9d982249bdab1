//! Throughput through the API: `POST /tasks` alone, and the whole pipeline to DONE.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::Serialize;

use super::ws::DoneWatcher;
use super::{Api, post_task};
use crate::stats::Latency;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CreateFigures {
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub latency: Latency,
}

/// `POST /tasks` requests per second at `concurrency`, with latencies.
pub async fn create_throughput(
    api: &Api,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<CreateFigures> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                post_task(&api).await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(CreateFigures {
        concurrency,
        requests_per_second: latencies.len() as f64 / elapsed,
        latency: Latency::of(latencies),
    })
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PipelineFigures {
    pub tasks: usize,
    pub finished: usize,
    pub seconds: f64,
    pub tasks_per_second: f64,
}

/// `tasks` submitted as fast as accepted (64 at a time); tasks per second until the last DONE
/// is seen on a WebSocket.
pub async fn pipeline_throughput(api: &Api, tasks: usize) -> anyhow::Result<PipelineFigures> {
    let watcher = DoneWatcher::connect(&api.ws_url).await?;
    let started = Instant::now();
    let ids = futures_util::stream::iter(0..tasks)
        .map(|_| post_task(api))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<String>>>()?;
    let timeout = Duration::from_secs(60 + tasks as u64 / 20);
    let done = watcher.wait_all(&ids, timeout).await;
    let last = done.values().max().copied().unwrap_or_else(Instant::now);
    let seconds = (last - started).as_secs_f64();
    Ok(PipelineFigures {
        tasks,
        finished: done.len(),
        seconds,
        tasks_per_second: done.len() as f64 / seconds,
    })
}
