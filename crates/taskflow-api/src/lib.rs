//! TaskFlow's API: REST routes for tasks, the `/ws` status stream and `/healthz`.
//!
//! Start-up is split so the tests start exactly what production starts: [`Api::build`] connects
//! to the services and binds the port (0 picks a free one), [`Api::run`] serves until the
//! shutdown future resolves.

mod auth;
mod dispatch;
mod error;
mod health;
mod list;
mod metrics;
mod observe;
mod schema;
mod state;
mod stats;
mod tasks;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use salvo::catcher::Catcher;
use salvo::conn::tcp::TcpAcceptor;
use salvo::cors::{AllowHeaders, AllowMethods, AllowOrigin, Cors};
use salvo::http::Method;
use salvo::oapi::OpenApi;
use salvo::oapi::scalar::Scalar;
use salvo::prelude::*;
use salvo::request_id::RequestId;
use salvo::serve_static::StaticDir;
use taskflow_core::amqp::Broker;
use taskflow_core::config::{ApiSettings, Settings};
use taskflow_core::db;
use taskflow_core::status_bus::StatusPublisher;
use tokio::sync::watch;

pub use list::NEXT_CURSOR_HEADER;

use crate::metrics::ApiMetrics;
use crate::state::AppState;
use crate::ws::Hub;

/// A connected, bound API that has not started serving yet.
pub struct Api {
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
    service: Service,
    state: Arc<AppState>,
    /// Set to true at shutdown: closes WebSocket clients and stops the background loops.
    stopping: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Marks confirmed tasks dispatched; finishes its queue after the server stops.
    mark_sent: tokio::task::JoinHandle<()>,
}

impl Api {
    /// Connects to MySQL, RabbitMQ and Redis, declares the broker topology, subscribes to status
    /// events, starts the outbox relay and binds `API_HOST:API_PORT`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.db).await?;
        db::sync_clock(&pool).await?;
        let broker = Arc::new(Broker::connect(&settings.amqp).await?);
        let statuses = StatusPublisher::connect(&settings.redis).await?;
        let (stopping, _) = watch::channel(false);
        let metrics = Arc::new(ApiMetrics::new());
        let (hub, relay_events) = Hub::start(
            settings.redis.clone(),
            &settings.api,
            metrics.clone(),
            stopping.subscribe(),
        )
        .await;
        let (sent, to_mark) = tokio::sync::mpsc::unbounded_channel();
        let mark_sent = tokio::spawn(dispatch::mark_sent(
            pool.clone(),
            to_mark,
            settings.recovery.outbox_grace,
        ));
        let relay_outbox = tokio::spawn(dispatch::relay(
            pool.clone(),
            broker.clone(),
            settings.recovery,
            settings.api.publish_timeout,
            metrics.clone(),
            stopping.subscribe(),
        ));
        let inserts = dispatch::insert_batcher(pool.clone(), settings.recovery.outbox_grace);
        let state = Arc::new(AppState {
            settings: settings.api.clone(),
            recovery: settings.recovery,
            inserts,
            pool,
            broker,
            statuses,
            hub,
            sent,
            dispatches: Arc::new(tokio::sync::Semaphore::new(dispatch::DISPATCHES_IN_FLIGHT)),
            metrics,
            stats: stats::StatsCache::default(),
            draining: AtomicBool::new(false),
        });

        let address = format!("{}:{}", settings.api.host, settings.api.port);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        // Accepted connections inherit TCP_NODELAY from the listener (Linux and the BSDs). A
        // WebSocket client is sent events back to back; with Nagle on, each small frame after
        // the first waits for the client's delayed ACK, up to 40 ms.
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .context("setting TCP_NODELAY on the listener")?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let acceptor = TcpAcceptor::try_from(listener).context("accepting on the listener")?;
        Ok(Self {
            acceptor,
            local_addr,
            service: service(state.clone()),
            state,
            stopping,
            background: vec![relay_events, relay_outbox],
            mark_sent,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves. Then `/healthz` reports draining for
    /// `SHUTDOWN_DELAY_MS` (so load balancers stop sending requests), the listener closes,
    /// in-flight requests get `SHUTDOWN_TIMEOUT_SECONDS` to finish, every WebSocket is closed
    /// with 1001, and the publishes those requests began get `PUBLISH_TIMEOUT_MS` + 2 s.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let server = Server::new(self.acceptor);
        let handle = server.handle();
        let state = self.state.clone();
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining");
            state.start_draining();
            tokio::time::sleep(state.settings.shutdown_delay).await;
            let _ = stopping.send(true);
            handle.stop_graceful(state.settings.shutdown_timeout);
        });
        tracing::info!(address = %self.local_addr, "API listening");
        server.serve(self.service).await;

        // Every request has ended; the dispatches they began may not have.
        // A dispatch is a Redis publish (a second or two while Redis reconnects) and a confirmed
        // publish (up to PUBLISH_TIMEOUT_MS).
        let timeout = self.state.settings.publish_timeout + Duration::from_secs(2);
        dispatch::finish_dispatches(&self.state, timeout).await;
        let _ = self.stopping.send(true);
        for task in self.background {
            let _ = task.await;
        }
        // The last sender of confirmed ids goes with the state: the marking then finishes.
        drop(self.state);
        if tokio::time::timeout(Duration::from_secs(5), self.mark_sent)
            .await
            .is_err()
        {
            tracing::warn!(
                "marking tasks dispatched did not finish; the relay will republish those"
            );
        }
        tracing::info!("API stopped");
        Ok(())
    }
}

fn service(state: Arc<AppState>) -> Service {
    let cors = cors(&state.settings);
    // The token check belongs to the routers that serve protected data, so any path spelling
    // the router accepts for them passes through it.
    let protected = Router::new()
        .hoop(auth::protect)
        .push(tasks::router())
        .push(stats::router())
        .push(ws::router());
    let api = Router::new()
        .push(protected)
        .push(health::router())
        .push(metrics::router());
    let doc = OpenApi::new("TaskFlow API", env!("CARGO_PKG_VERSION")).merge_router(&api);
    let mut router = Router::new()
        .hoop(salvo::affix_state::inject(state.clone()))
        .hoop(RequestId::new().overwrite(false))
        .hoop(observe::observe)
        .push(api)
        .push(doc.into_router("/openapi.json"))
        .push(
            Scalar::new("/openapi.json")
                .title("TaskFlow API")
                .into_router("/docs"),
        );
    // The built dashboard, when there is one: `/` and every other unmatched GET serve it, so a
    // deep link (`/?task=<id>`) works on the same port as the API.
    let dashboard = std::path::Path::new(&state.settings.static_dir);
    if dashboard.join("index.html").is_file() {
        router = router.push(
            Router::with_path("{**path}")
                // The bundle is text: gzip cuts its transfer by two thirds.
                .hoop(
                    salvo_compression::Compression::new()
                        .enable_gzip(salvo_compression::CompressionLevel::Default),
                )
                .get(
                    StaticDir::new([dashboard])
                        .defaults("index.html")
                        .fallback("index.html"),
                ),
        );
    }
    Service::new(router)
        .hoop(cors)
        .catcher(Catcher::default().hoop(error::envelope_catcher))
}

fn cors(settings: &ApiSettings) -> salvo::cors::CorsHandler {
    let origins = &settings.cors_allow_origins;
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| origin.parse().ok()))
    };
    Cors::new()
        .allow_origin(allow_origin)
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::POST,
            Method::OPTIONS,
        ]))
        .allow_headers(AllowHeaders::list([
            salvo::http::header::CONTENT_TYPE,
            salvo::http::header::AUTHORIZATION,
        ]))
        .expose_headers(vec![NEXT_CURSOR_HEADER, "link", "x-request-id"])
        .into_handler()
}
