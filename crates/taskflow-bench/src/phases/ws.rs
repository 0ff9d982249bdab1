//! The load generator's WebSocket clients, and the watcher that times each task's events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use taskflow_core::backoff::poll_until;
use tokio::sync::Mutex;

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client with a 4 KiB read buffer (the events are small). Tungstenite's default,
/// 128 KiB, is zero-filled before every read: with thousands of clients that was a large share
/// of the load generator's CPU (`perf`), taken from the API it measures on the same cores.
///
/// A connection that does not complete in 10 s (the API's `WS_MAX_CLIENTS` or its descriptor
/// limit reached) is an error, not a wait without end.
pub(super) async fn connect_ws(url: &str) -> anyhow::Result<WsStream> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024);
    // The query may carry the API token: not for error messages.
    let shown = url.split('?').next().unwrap_or(url);
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), false);
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "connecting to {shown} took over 10 s (the API's WS_MAX_CLIENTS or its file \
                 descriptor limit?)"
            )
        })?
        .with_context(|| format!("connecting to {shown}"))?;
    Ok(stream)
}

/// Records when each task's PROCESSING and DONE events arrive on one WebSocket connection.
pub struct DoneWatcher {
    done: Arc<Mutex<HashMap<String, Instant>>>,
    processing: Arc<Mutex<HashMap<String, Instant>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl DoneWatcher {
    pub async fn connect(ws_url: &str) -> anyhow::Result<Self> {
        let stream = connect_ws(ws_url).await?;
        let done = Arc::new(Mutex::new(HashMap::new()));
        let processing = Arc::new(Mutex::new(HashMap::new()));
        let (record_done, record_processing) = (done.clone(), processing.clone());
        let reader = tokio::spawn(async move {
            let (_, mut messages) = stream.split();
            while let Some(Ok(message)) = messages.next().await {
                let at = Instant::now();
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let record = if text.contains("\"DONE\"") {
                    &record_done
                } else if text.contains("\"PROCESSING\"") {
                    &record_processing
                } else {
                    continue;
                };
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(text)
                    && let Some(id) = event["task_id"].as_str()
                {
                    record.lock().await.insert(id.to_owned(), at);
                }
            }
        });
        Ok(Self {
            done,
            processing,
            reader,
        })
    }

    /// When each task's PROCESSING event arrived (so far).
    pub async fn processing(&self) -> HashMap<String, Instant> {
        self.processing.lock().await.clone()
    }

    /// Waits until every id has its DONE (or `timeout`); returns when each arrived.
    pub async fn wait_all(&self, ids: &[String], timeout: Duration) -> HashMap<String, Instant> {
        poll_until(timeout, Duration::from_millis(20), async || {
            let done = self.done.lock().await;
            ids.iter().all(|id| done.contains_key(id))
        })
        .await;
        let done = self.done.lock().await;
        ids.iter()
            .filter_map(|id| done.get(id).map(|at| (id.clone(), *at)))
            .collect()
    }
}

impl Drop for DoneWatcher {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
