//! A WebSocket client for tests: reads status events and waits for the one a test expects.

use futures_util::StreamExt as _;
use serde_json::Value;
use taskflow_core::domain::{TaskId, TaskStatus};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::EVENT_TIMEOUT;

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every event received so far, in order.
    history: Vec<Value>,
}

/// What the server sent, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Event(Value),
    Closed(Option<u16>),
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with_token(url, None).await
    }

    /// Connects sending `Authorization: Bearer <token>`, as a client that is not a browser does.
    pub async fn connect_with_token(url: &str, token: Option<&str>) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = url.into_client_request().expect("a WebSocket URL");
        if let Some(token) = token {
            let value = format!("Bearer {token}").parse().expect("a header value");
            request.headers_mut().insert("authorization", value);
        }
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|err| panic!("connecting to {url}: {err}"));
        Self {
            stream,
            history: Vec::new(),
        }
    }

    /// Every event received so far, in order.
    pub fn history(&self) -> &[Value] {
        &self.history
    }

    /// The next JSON message or the close, within the timeout; panics on silence.
    pub async fn next(&mut self) -> Received {
        self.next_within(EVENT_TIMEOUT)
            .await
            .expect("no WebSocket message within the timeout")
    }

    /// The next JSON message or the close, or `None` if nothing came within `timeout`.
    pub async fn next_within(&mut self, timeout: std::time::Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Received::Closed(None)),
                Ok(Some(Err(err))) => panic!("WebSocket error: {err}"),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| panic!("a JSON WebSocket message, got {text}"));
                    self.history.push(value.clone());
                    return Some(Received::Event(value));
                }
                Message::Close(frame) => {
                    return Some(Received::Closed(frame.map(|frame| frame.code.into())));
                }
                _ => continue,
            }
        }
    }

    /// Reads events until one for `task_id` with `status` arrives; returns it and every event
    /// for that task seen on the way (including it).
    pub async fn wait_for(&mut self, task_id: TaskId, status: TaskStatus) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Received::Event(event) => {
                    if event["task_id"] == task_id.to_string() {
                        seen.push(event.clone());
                        if event["status"] == status.as_str() {
                            return seen;
                        }
                    }
                }
                Received::Closed(code) => {
                    panic!("WebSocket closed ({code:?}) while waiting for {task_id} {status}")
                }
            }
        }
    }
}

impl WsClient {
    /// Reads events until every task in `ids` has had a terminal one; returns the statuses seen
    /// for each task since the client connected, in order of arrival.
    pub async fn statuses_until_finished(
        &mut self,
        ids: &[TaskId],
    ) -> std::collections::HashMap<TaskId, Vec<String>> {
        let mut seen: std::collections::HashMap<TaskId, Vec<String>> =
            std::collections::HashMap::new();
        let record = |seen: &mut std::collections::HashMap<TaskId, Vec<String>>, event: &Value| {
            let Some(id) = event["task_id"].as_str().and_then(|id| id.parse().ok()) else {
                return;
            };
            if ids.contains(&id) {
                seen.entry(id)
                    .or_default()
                    .push(event["status"].as_str().unwrap_or_default().to_owned());
            }
        };
        for event in &self.history {
            record(&mut seen, event);
        }
        let finished = |seen: &std::collections::HashMap<TaskId, Vec<String>>| {
            ids.iter().all(|id| {
                seen.get(id)
                    .is_some_and(|statuses| statuses.iter().any(|s| s == "DONE" || s == "FAILED"))
            })
        };
        while !finished(&seen) {
            match self.next().await {
                Received::Event(event) => record(&mut seen, &event),
                Received::Closed(code) => panic!("WebSocket closed ({code:?}) while waiting"),
            }
        }
        seen
    }
}
