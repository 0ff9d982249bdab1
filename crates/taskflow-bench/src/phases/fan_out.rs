//! WebSocket fan-out: many clients receiving the same status events.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;

use super::ws::connect_ws;
use crate::stack::Env;
use crate::stats::Latency;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FanOutFigures {
    pub clients: usize,
    pub events: usize,
    pub expected_deliveries: usize,
    pub missing_deliveries: usize,
    pub delivery: Latency,
    /// `None` when no API process runs on this machine to measure.
    pub api_rss_mb: Option<f64>,
}

/// `clients` WebSocket clients all receiving `events` events published on the status channel
/// at `rate` per second; counts what each received and how late.
pub async fn websocket_fan_out(
    env: &Env,
    ws_url: &str,
    clients: usize,
    events: usize,
    rate: f64,
    api_rss: impl Fn() -> Option<f64>,
) -> anyhow::Result<FanOutFigures> {
    let started_at = chrono::Utc::now();
    let marker = format!("fanout-{}", started_at.timestamp_micros());
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(clients * events)));
    // Connect in batches, so the API's accept queue is not flooded.
    let mut readers = Vec::with_capacity(clients);
    for batch in (0..clients).collect::<Vec<_>>().chunks(200) {
        let connected =
            futures_util::future::join_all(batch.iter().map(|_| connect_ws(ws_url))).await;
        for result in connected {
            let mut stream = result.context("connecting a fan-out client")?;
            let received = received.clone();
            let latencies = latencies.clone();
            let marker = marker.clone();
            readers.push(tokio::spawn(async move {
                let mut mine = 0;
                while let Some(Ok(message)) = stream.next().await {
                    match message {
                        tokio_tungstenite::tungstenite::Message::Text(text)
                            if text.contains(marker.as_str()) =>
                        {
                            if let Some(sent) = sent_time(text.as_str()) {
                                let delay =
                                    (chrono::Utc::now() - sent).to_std().unwrap_or_default();
                                latencies.lock().expect("not poisoned").push(delay);
                            }
                            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            mine += 1;
                            if mine == events {
                                break;
                            }
                        }
                        tokio_tungstenite::tungstenite::Message::Ping(payload) => {
                            let _ = stream
                                .send(tokio_tungstenite::tungstenite::Message::Pong(payload))
                                .await;
                        }
                        _ => {}
                    }
                }
            }));
        }
    }
    let rss_connected = api_rss();

    let client = redis::Client::open(env.redis.as_str())?;
    let mut publisher = client.get_multiplexed_async_connection().await?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for seq in 0..events {
        ticks.tick().await;
        let event = serde_json::json!({
            "task_id": uuid::Uuid::new_v4(),
            "status": "DONE",
            "updated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "message": format!("{marker}-{seq}"),
        });
        redis::cmd("PUBLISH")
            .arg(&env.channel)
            .arg(event.to_string())
            .query_async::<i64>(&mut publisher)
            .await?;
    }
    let drain = tokio::time::timeout(Duration::from_secs(30), async {
        for reader in &mut readers {
            let _ = reader.await;
        }
    })
    .await;
    if drain.is_err() {
        for reader in &readers {
            reader.abort();
        }
    }
    let expected = clients * events;
    let got = received.load(std::sync::atomic::Ordering::Relaxed);
    let samples = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    Ok(FanOutFigures {
        clients,
        events,
        expected_deliveries: expected,
        missing_deliveries: expected.saturating_sub(got),
        delivery: Latency::of(samples),
        api_rss_mb: rss_connected.into_iter().chain(api_rss()).reduce(f64::max),
    })
}

fn sent_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let start = text.find("\"updated_at\":\"")? + "\"updated_at\":\"".len();
    let end = start + text[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&text[start..end])
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}
