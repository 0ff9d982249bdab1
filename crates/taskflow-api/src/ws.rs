//! `/ws`: every status change, relayed from the one Redis subscription of this process to every
//! connected WebSocket client.
//!
//! The fan-out is a `tokio::sync::broadcast` ring of fixed size: each event is stored once,
//! whatever the number of clients, and each client has its own task that writes to its socket.
//! A slow client therefore slows only itself; when it falls more than the ring's size behind it
//! loses the oldest events and is sent a resync notice, so memory stays bounded.
//!
//! Limits: at most `WS_MAX_CLIENTS` connections per process (more get 503 before the upgrade);
//! each client is pinged every `WS_PING_INTERVAL_SECONDS` and dropped after
//! `WS_IDLE_TIMEOUT_SECONDS` without hearing anything from it (a pong counts).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use salvo::prelude::*;
use salvo::websocket::{Message, WebSocket, WebSocketUpgrade};
use taskflow_core::config::{ApiSettings, RedisSettings};
use taskflow_core::contract::ResyncNotice;
use taskflow_core::status_bus::{Relayed, SubscriptionLiveness, relay_status_events};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{ApiError, ErrorEnvelope};
use crate::metrics::ApiMetrics;
use crate::state::AppState;

/// WebSocket close code 1001, "going away": the server is shutting down.
const GOING_AWAY: u16 = 1001;
/// WebSocket close code 1008, "policy violation": here, silent for too long.
const POLICY_VIOLATION: u16 = 1008;
/// How long start-up waits for the first Redis subscription.
const SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The in-process fan-out of status events.
pub struct Hub {
    events: broadcast::Sender<Utf8Bytes>,
    closing: watch::Receiver<bool>,
    clients: AtomicUsize,
    max_clients: usize,
    ping_interval: Duration,
    idle_timeout: Duration,
    metrics: Arc<ApiMetrics>,
    /// The Redis subscription's liveness, for `/healthz`.
    pub subscription: Arc<SubscriptionLiveness>,
    /// How long the subscription may go unheard before it counts as down: a ping interval plus
    /// the ping's own wait.
    pub subscription_window: Duration,
}

impl Hub {
    /// Starts the Redis relay and returns once it is subscribed (or after `SUBSCRIBE_WAIT`, with
    /// the relay still trying), with the hub and the relay's task. Clients are closed, and the
    /// relay stops, when `closing` turns true.
    pub async fn start(
        redis: RedisSettings,
        settings: &ApiSettings,
        metrics: Arc<ApiMetrics>,
        closing: watch::Receiver<bool>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (events, _) = broadcast::channel(settings.ws_client_buffer);
        let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
        let subscription = Arc::new(SubscriptionLiveness::default());
        let subscription_window = redis.keepalive * 2;
        let relay = {
            let liveness = subscription.clone();
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
                relay_status_events(redis, &liveness, deliver, stopped).await;
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
        let hub = Self {
            events,
            closing,
            clients: AtomicUsize::new(0),
            max_clients: settings.ws_max_clients,
            ping_interval: settings.ws_ping_interval,
            idle_timeout: settings.ws_idle_timeout,
            metrics,
            subscription,
            subscription_window,
        };
        (Arc::new(hub), relay)
    }
}

pub fn router() -> Router {
    Router::with_path("ws").get(connect)
}

/// Small buffers per client: what is sent is a few hundred bytes at a time, and with 10,000
/// clients tungstenite's 128 KiB defaults would cost gigabytes. Events a client is behind on are
/// gathered up to `WRITE_BUFFER` bytes and written together (see [`send_waiting`]); nothing much
/// is expected from clients (64 KiB at most per message). Tungstenite zero-fills the free part of
/// the read buffer on every read attempt — and a client's reader is polled at every event sent
/// to it — so that buffer is small too (a longer frame still arrives whole: the buffer grows to
/// the frame's length).
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Bytes of events gathered for a client before they are written to its socket.
const WRITE_BUFFER: usize = 4 * 1024;
/// Events sent to a client per wake-up at most, so one far-behind client cannot hold a runtime
/// thread for long.
const MAX_EVENTS_PER_WRITE: u64 = 64;

/// A connected client, counted for the limit and the gauge while it lives.
struct ClientSlot(Arc<Hub>);

impl ClientSlot {
    fn claim(hub: &Arc<Hub>) -> Option<Self> {
        let claimed = hub
            .clients
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < hub.max_clients).then_some(n + 1)
            })
            .is_ok();
        claimed.then(|| {
            hub.metrics.ws_clients.inc();
            Self(hub.clone())
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.ws_clients.dec();
    }
}

/// The live stream of status changes (WebSocket).
///
/// Upgrade with a WebSocket handshake. Each text message is a status event
/// `{"task_id","status","updated_at","message"?}` or a resync notice `{"event":"resync","reason"}`
/// (reload from the REST API). The server pings; it closes with 1001 when shutting down. With
/// `API_TOKEN_READS`, send `Authorization: Bearer <token>`, or, from a browser, the subprotocols
/// `taskflow` and `taskflow.bearer.<base64url of the token>`.
#[endpoint(
    tags("tasks"),
    responses(
        (status_code = 101, description = "Switching protocols: the stream begins."),
        (status_code = 400, description = "Not a WebSocket handshake.", body = ErrorEnvelope),
        (status_code = 401, description = "Reads need the token (API_TOKEN_READS).", body = ErrorEnvelope),
        (status_code = 403, description = "A browser's Origin is not among CORS_ALLOW_ORIGINS.", body = ErrorEnvelope),
        (status_code = 503, description = "WS_MAX_CLIENTS reached on this server.", body = ErrorEnvelope),
    )
)]
async fn connect(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = AppState::from_depot(depot);
    if !origin_allowed(req, &state.settings.cors_allow_origins) {
        return Err(ApiError::Forbidden("WebSocket origin not allowed"));
    }
    let hub = state.hub.clone();
    let Some(slot) = ClientSlot::claim(&hub) else {
        tracing::warn!(
            max = hub.max_clients,
            "WebSocket client refused: too many clients"
        );
        return Err(ApiError::TooManyClients);
    };
    let events = hub.events.subscribe();
    WebSocketUpgrade::with_config(client_config())
        .protocols(&[crate::auth::WS_PROTOCOL])
        .upgrade(req, res, move |socket| serve_client(socket, events, slot))
        .await
        .map_err(|err| ApiError::bad_request(err.brief, None))
}

/// Cross-site WebSocket hijacking: a browser opens a WebSocket to any site, sending its `Origin`,
/// so when CORS origins are configured a browser's socket must come from one of them (or from
/// the API's own origin, which serves the dashboard). Clients that are not browsers send no
/// `Origin` and are let through: the token, not the origin, is what authenticates them.
fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    if allowed.is_empty() || allowed.iter().any(|origin| origin == "*") {
        return true;
    }
    let Some(origin) = req.headers().get("origin") else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let same_origin = req
        .headers()
        .get("host")
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
        });
    same_origin
        || allowed
            .iter()
            .any(|listed| listed.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

async fn serve_client(
    mut socket: WebSocket,
    mut events: broadcast::Receiver<Utf8Bytes>,
    slot: ClientSlot,
) {
    let hub = slot.0.clone();
    let mut closing = hub.closing.clone();
    let mut ping = tokio::time::interval(hub.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await; // The first tick is immediate.
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            event = events.recv() => match send_waiting(&mut socket, event, &mut events, &hub).await {
                Sent::More => {}
                Sent::HubClosed => break,
                Sent::SocketFailed => return,
            },
            incoming = socket.recv() => match incoming {
                // Clients have nothing to say but pongs (and pings, answered by the protocol
                // layer); anything they send shows they are alive.
                Some(Ok(message)) if !message.is_close() => last_heard = tokio::time::Instant::now(),
                _ => return,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > hub.idle_timeout {
                    tracing::info!("dropping an idle WebSocket client");
                    let _ = socket.send(Message::close_with(POLICY_VIOLATION, "idle timeout")).await;
                    return;
                }
                if socket.send(Message::ping(Vec::new())).await.is_err() {
                    return;
                }
            }
            () = wait_for_close(&mut closing) => break,
        }
    }
    let _ = socket
        .send(Message::close_with(GOING_AWAY, "server shutting down"))
        .await;
}

/// How [`send_waiting`] ended: keep serving the client, or stop (the hub closed: say goodbye;
/// the socket failed: just drop it).
enum Sent {
    More,
    HubClosed,
    SocketFailed,
}

/// Sends `first` and every event already waiting behind it (up to [`MAX_EVENTS_PER_WRITE`]),
/// then flushes once. A client that keeps up gets each event in its own write, at once; one
/// that fell behind catches up in a few writes rather than one per event — under a burst to
/// thousands of clients that is most of the server's work.
async fn send_waiting(
    socket: &mut WebSocket,
    first: Result<Utf8Bytes, broadcast::error::RecvError>,
    events: &mut broadcast::Receiver<Utf8Bytes>,
    hub: &Hub,
) -> Sent {
    use broadcast::error::{RecvError, TryRecvError};
    use futures_util::SinkExt as _;

    let mut next = Some(first);
    let mut sent = 0;
    let mut outcome = Sent::More;
    while let Some(event) = next.take() {
        let text = match event {
            Ok(text) => text,
            Err(RecvError::Lagged(missed)) => {
                hub.metrics.ws_dropped.inc_by(missed);
                tracing::warn!(
                    missed,
                    "a slow WebSocket client missed events; asking it to resync"
                );
                ResyncNotice::new(format!("client fell behind by {missed} events"))
                    .to_json()
                    .into()
            }
            Err(RecvError::Closed) => {
                outcome = Sent::HubClosed;
                break;
            }
        };
        if socket.feed(Message::text(text)).await.is_err() {
            return Sent::SocketFailed;
        }
        sent += 1;
        if sent < MAX_EVENTS_PER_WRITE {
            next = match events.try_recv() {
                Ok(text) => Some(Ok(text)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            };
        }
    }
    if socket.flush().await.is_err() {
        return Sent::SocketFailed;
    }
    hub.metrics.ws_sent.inc_by(sent);
    outcome
}

async fn wait_for_close(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before the caller awaits anything else.
    let _ = closing.wait_for(|closing| *closing).await;
}
