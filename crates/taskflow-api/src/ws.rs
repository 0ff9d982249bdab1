//! `/ws`: every status change, relayed from the one Redis subscription of this process to every
//! connected WebSocket client.
//!
//! The fan-out is a `tokio::sync::broadcast` ring of fixed size: each event is stored once,
//! whatever the number of clients, and each client has its own task that writes to its socket.
//! A slow client therefore slows only itself; when it falls more than the ring's size behind it
//! loses the oldest events and is sent a resync notice, so memory stays bounded.

use std::sync::Arc;

use salvo::prelude::*;
use salvo::websocket::{Message, WebSocket, WebSocketUpgrade};
use taskflow_core::config::{ApiSettings, RedisSettings};
use taskflow_core::contract::ResyncNotice;
use taskflow_core::status_bus::{Relayed, relay_status_events};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::state::AppState;

/// WebSocket close code 1001, "going away": the server is shutting down.
const GOING_AWAY: u16 = 1001;
/// How long start-up waits for the first Redis subscription.
const SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The in-process fan-out of status events.
pub struct Hub {
    events: broadcast::Sender<Utf8Bytes>,
    closing: watch::Receiver<bool>,
}

impl Hub {
    /// Starts the Redis relay and returns once it is subscribed (or after `SUBSCRIBE_WAIT`, with
    /// the relay still trying), with the hub and the relay's task. Clients are closed, and the
    /// relay stops, when `closing` turns true.
    pub async fn start(
        redis: RedisSettings,
        settings: &ApiSettings,
        closing: watch::Receiver<bool>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (events, _) = broadcast::channel(settings.ws_client_buffer);
        let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
        let relay = {
            let events = events.clone();
            let mut stop = closing.clone();
            let mut subscribed = Some(subscribed);
            tokio::spawn(async move {
                let deliver = move |relayed: Relayed| {
                    let text = match relayed {
                        Relayed::Subscribed => {
                            if let Some(subscribed) = subscribed.take() {
                                let _ = subscribed.send(());
                            }
                            return;
                        }
                        Relayed::Message(text) => Utf8Bytes::from(text),
                        Relayed::Resubscribed => ResyncNotice::new("status subscription restored")
                            .to_json()
                            .into(),
                    };
                    // An error only means no client is connected right now.
                    let _ = events.send(text);
                };
                let stopped = async move {
                    let _ = stop.wait_for(|closing| *closing).await;
                };
                relay_status_events(redis, deliver, stopped).await;
            })
        };
        if tokio::time::timeout(SUBSCRIBE_WAIT, is_subscribed)
            .await
            .is_err()
        {
            tracing::warn!(
                "status relay not subscribed yet; WebSocket clients may miss early events"
            );
        }
        (Arc::new(Self { events, closing }), relay)
    }
}

pub fn router() -> Router {
    Router::with_path("ws").goal(connect)
}

#[handler]
async fn connect(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), StatusError> {
    let hub = AppState::from_depot(depot).hub.clone();
    let events = hub.events.subscribe();
    let closing = hub.closing.clone();
    WebSocketUpgrade::new()
        .upgrade(req, res, move |socket| {
            serve_client(socket, events, closing)
        })
        .await
}

async fn serve_client(
    mut socket: WebSocket,
    mut events: broadcast::Receiver<Utf8Bytes>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            event = events.recv() => {
                let text = match event {
                    Ok(text) => text,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a slow WebSocket client missed events; asking it to resync");
                        ResyncNotice::new(format!("client fell behind by {missed} events")).to_json().into()
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if socket.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // Clients have nothing to say; pings are answered by the protocol layer.
                Some(Ok(message)) if !message.is_close() => {}
                _ => return,
            },
            () = wait_for_close(&mut closing) => break,
        }
    }
    let _ = socket
        .send(Message::close_with(GOING_AWAY, "server shutting down"))
        .await;
}

async fn wait_for_close(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before the caller awaits anything else.
    let _ = closing.wait_for(|closing| *closing).await;
}
